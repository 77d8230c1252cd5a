"""What each kind of user sees on the pages of the foundation."""

import re
from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import log_in
from webapp.db import db
from webapp.people.models import Role, UnitKind
from webapp.people.units import (
    create_unit,
)
from webapp.series.models import SeriesStatus
from webapp.sessions.models import SessionStatus

TEMPLATES = Path(__file__).resolve().parent.parent / "webapp" / "templates"


def test_participant_home_lists_upcoming_sessions_with_lectures(client, make_user, make_series):
    cadre = make_user(email="cadre@example.org")
    series = make_series(
        title="研修班",
        participants=[cadre],
        first_start=datetime(2026, 12, 3, 8, 0, tzinfo=UTC),
        sessions=2,
    )
    make_series(title="别人的课程")  # not enrolled: must not show
    log_in(client, "cadre@example.org")
    page = client.get("/").get_data(as_text=True)
    assert "我的近期课程" in page
    # The reader's own zone goes without saying.
    assert "2026年12月3日星期四 16:00–18:00" in page and "GMT+08:00" not in page
    assert "2026年12月4日星期五 16:00–18:00" in page
    assert series.sessions[0].lectures[0].title in page
    assert "别人的课程" not in page
    assert "我组织的系列课程" not in page


def test_participant_home_hides_sessions_of_draft_series(client, make_user, make_series):
    cadre = make_user(email="cadre@example.org")
    make_series(title="草稿课程", participants=[cadre], status=SeriesStatus.DRAFT)
    log_in(client, "cadre@example.org")
    assert "草稿课程" not in client.get("/").get_data(as_text=True)


def test_participant_sees_their_own_time_when_their_zone_differs(client, make_user, make_series):
    abroad = make_user(email="abroad@example.org", timezone="Europe/Berlin")
    make_series(participants=[abroad], first_start=datetime(2026, 12, 3, 8, 0, tzinfo=UTC))
    log_in(client, "abroad@example.org")
    page = client.get("/").get_data(as_text=True)
    assert "16:00–18:00 (GMT+08:00 Asia/Shanghai)" in page  # not theirs: named
    assert "您所在时区：2026年12月3日星期四 09:00–11:00" in page
    assert "GMT+01:00" not in page  # theirs: not named


def test_organizer_home_lists_their_series_only(client, make_user, make_series):
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    make_series(title="我的研修班", organizers=[organizer], status=SeriesStatus.DRAFT)
    make_series(title="他人的研修班")
    log_in(client, "organizer@example.org")
    page = client.get("/").get_data(as_text=True)
    assert "我组织的系列课程" in page
    assert "我的研修班" in page and "草稿" in page
    assert "他人的研修班" not in page


def test_admin_home_links_to_admin_areas(client, make_user):
    make_user(Role.ADMIN, email="admin@example.org")
    log_in(client, "admin@example.org")
    page = client.get("/").get_data(as_text=True)
    assert 'href="/admin/users"' in page and 'href="/admin/units"' in page


def test_series_page_lists_sessions_lectures_and_speakers(client, make_user, make_series):
    cadre = make_user(email="cadre@example.org")
    series = make_series(
        title="卢沟桥乡研修班",
        participants=[cadre],
        sessions=3,
        first_start=datetime(2026, 12, 3, 8, 0, tzinfo=UTC),
    )
    log_in(client, "cadre@example.org")
    page = client.get(f"/series/{series.id}").get_data(as_text=True)
    assert "卢沟桥乡研修班" in page
    assert page.count('class="session card') == 3
    speaker = series.sessions[2].lectures[0].speakers[0]
    assert speaker.name in page and "中国人民大学" in page
    assert "时区：Asia/Shanghai" in page
    assert "已报名 1 人" in page


def test_admin_lists_users_and_the_unit_tree(client, make_user):

    township = create_unit("卢沟桥乡", UnitKind.TOWNSHIP)
    village = create_unit("大瓦窑村", UnitKind.VILLAGE, township)
    make_user(Role.ADMIN, email="admin@example.org")
    make_user(phone="13910000001", name="王建国", unit=village)
    db.session.commit()
    log_in(client, "admin@example.org")
    users = client.get("/admin/users").get_data(as_text=True)
    assert "王建国" in users and "+8613910000001" in users and "大瓦窑村" in users
    units = client.get("/admin/units").get_data(as_text=True)
    assert units.index("卢沟桥乡") < units.index("大瓦窑村")
    assert '<li class="depth-1"><a href="/admin/units/' in units


def test_pages_use_no_external_assets_and_fit_phones():
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        assert not re.search(r'(src|href)="(https?:)?//', text), template
    assert 'name="viewport" content="width=device-width' in (TEMPLATES / "base.html").read_text()


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert "页面不存在" in response.get_data(as_text=True)


def test_admins_add_and_remove_unit_liaisons(client, make_user):
    from tests.helpers import post_form

    village = create_unit("大瓦窑村", UnitKind.VILLAGE)
    make_user(Role.ADMIN, email="admin@example.org")
    cadre = make_user(phone="13910000002", name="李春梅", unit=village)
    db.session.commit()
    log_in(client, "admin@example.org")
    response = post_form(
        client,
        "/admin/units",
        "/admin/units",
        {"unit_id": str(village.id), "identifier": "nobody@example.org"},
    )
    assert "没有使用该电子邮箱或手机号的账号" in response.get_data(as_text=True)
    post_form(
        client,
        "/admin/units",
        "/admin/units",
        {"unit_id": str(village.id), "identifier": "139 1000 0002"},
    )
    db.session.refresh(village)
    assert village.liaisons == [cadre]
    assert "联络员: 李春梅" in client.get("/admin/units").get_data(as_text=True)
    post_form(client, "/admin/units", f"/admin/units/{village.id}/liaisons/{cadre.id}/remove", {})
    db.session.refresh(village)
    assert village.liaisons == []


def test_a_participant_s_home_leads_with_the_next_session_and_its_join_button(
    app, make_user, make_series
):
    from datetime import timedelta

    from webapp.db import utcnow

    cadre = make_user(email="cadre@example.org")
    later = make_series(title="远期课程", participants=[cadre],
                        first_start=utcnow() + timedelta(days=3))  # fmt: skip
    client = app.test_client()
    log_in(client, "cadre@example.org")
    page = client.get("/").get_data(as_text=True)
    assert "下一次课" in page and "远期课程" in page and "data-countdown" in page
    assert "3天后" in page or "3 天后" in page
    assert "开课前不久，这里会出现进入按钮" in page
    soon = make_series(title="马上开课", participants=[cadre],
                       first_start=utcnow() + timedelta(minutes=10))  # fmt: skip
    soon.sessions[0].join_url = "https://meeting.tencent.com/dm/abc"
    db.session.commit()
    page = client.get("/").get_data(as_text=True)
    assert "马上开课" in page.split("下一次课")[1].split("</section>")[0]
    assert f'action="/sessions/{soon.sessions[0].id}/join"' in page
    # Begun: no countdown, it says so; over early (the broadcast ended): the next one leads.
    started = soon.sessions[0]
    started.starts_at, started.ends_at = (
        utcnow() - timedelta(minutes=20),
        utcnow() + timedelta(hours=1),
    )
    db.session.commit()
    card = client.get("/").get_data(as_text=True).split("下一次课")[1].split("</section>")[0]
    assert "马上开课" in card and "已开始" in card and "data-countdown" not in card
    started.status = SessionStatus.ENDED
    db.session.commit()
    card = client.get("/").get_data(as_text=True).split("下一次课")[1].split("</section>")[0]
    assert "远期课程" in card and "马上开课" not in card
    _ = later


def test_an_organizer_s_home_says_what_each_series_needs(app, make_user, make_series):
    from datetime import timedelta

    from webapp.db import utcnow
    from webapp.sessions.services import reschedule_session

    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    cadre = make_user(email="cadre@example.org")
    draft = make_series(title="草稿班", organizers=[organizer], status=SeriesStatus.DRAFT)
    running = make_series(title="进行中的班", organizers=[organizer], participants=[cadre],
                          first_start=utcnow() + timedelta(hours=5), sessions=2)  # fmt: skip
    session = running.sessions[1]
    reschedule_session(session, starts_at=session.starts_at + timedelta(hours=1),
                       ends_at=session.ends_at + timedelta(hours=1), by=organizer, now=utcnow(),
                       accept_warnings=True)  # fmt: skip
    db.session.commit()
    client = app.test_client()
    log_in(client, "organizer@example.org")
    page = client.get("/").get_data(as_text=True)
    items = re.findall(r'<div class="attention attention-(\w+)">([^<]*)</div>', page)
    assert ("draft", "草稿：发布前学员看不到") in items
    assert ("soon", "24 小时内有 1 个课次") in items
    assert ("waiting", "1 条变更通知尚未发出") in items
    _ = draft
