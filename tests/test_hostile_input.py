"""Hostile and unusual input: text cleaned at the boundary, safe encoders, bounded dates, ids
and uploads, access that ends when it should, log-in limits, an honest import preview."""

import io
import time
import zipfile
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
import vobject
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from icalendar import Calendar
from sqlalchemy import select

from tests.helpers import NOW, PASSWORD, csrf_token_from, log_in, post_form, xlsx_bytes
from webapp import events
from webapp.db import db
from webapp.feeds.content import (
    render_feed,
)
from webapp.outgoing import ForbiddenAddress, check_url
from webapp.people.models import Role, UnitKind
from webapp.people.units import (
    add_liaison,
    create_unit,
)
from webapp.reminders.channels import DeliveryError, RobotMessage, WebhookChannel
from webapp.reminders.messages import personalise, render_reminder
from webapp.reminders.models import Webhook, WebhookKind
from webapp.reminders.rules import (
    add_webhook,
)
from webapp.series.models import ImportBatch, SeriesStatus
from webapp.series.sheets import (
    read_sheet,
)
from webapp.text import clean_line, clean_text

# --- 1. text is clean at the boundary; every encoder is safe ----------------------------


def test_single_line_fields_lose_breaks_and_controls_multi_line_keep_breaks():
    assert clean_line("研修班\r\nBcc: x@y.z\x00\u202e") == "研修班 Bcc: x@y.z"
    assert clean_line("  a\t\tb  ") == "a b"
    assert clean_text("一\r\n二\r三\x00\x07") == "一\n二\n三"
    assert clean_line(None) is None


def test_models_clean_on_assignment_whatever_path_sets_them(app, make_series, make_user):
    series = make_series(title="ok")
    series.title = "卢沟桥\n乡\x00研修班"
    series.description = "一\r\n二\x00"
    user = make_user(name="王\r\n建国")
    db.session.commit()
    db.session.expire_all()
    assert (series.title, series.description, user.display_name) == (
        "卢沟桥 乡研修班",
        "一\n二",
        "王 建国",
    )


def test_a_hand_made_post_with_line_breaks_is_stored_as_one_line(app, make_user):
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    client = app.test_client()
    log_in(client, organizer.email)
    response = post_form(
        client,
        "/series/new",
        "/series/new",
        {
            "title": "第一期\r\nBcc: evil@example.org",
            "timezone": "Asia/Shanghai",
            "visibility": "enrolled",
            "description": "一\r\n二",
        },
    )
    assert response.status_code == 302
    from webapp.series.models import Series

    series = db.session.scalars(select(Series)).one()
    assert series.title == "第一期 Bcc: evil@example.org" and series.description == "一\n二"


def test_a_hostile_name_cannot_add_email_headers(app):
    from webapp.reminders.messages import SharedMail

    shared = SharedMail(b"Subject: x\r\nContent-Type: text/plain\r\n\r\nbody\r\n")
    raw = personalise(shared, "Evil\r\nBcc: victim@example.org", "a@example.org", "r:1:2")
    message = message_from_bytes(raw, policy=policy.default)
    assert message["Bcc"] is None
    assert message["To"].addresses[0].display_name == "Evil Bcc: victim@example.org"


HOSTILE = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from('\r\n\x00,;:\\"<>'),
    min_size=1,
    max_size=40,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(title=HOSTILE, place=HOSTILE, name=HOSTILE, description=HOSTILE, lecture=HOSTILE)
def test_any_text_renders_pages_feeds_and_emails(
    app, make_user, make_series, title, place, name, description, lecture
):
    """Arbitrary Unicode in every user-settable field: no page answers 5xx, the feed parses
    with icalendar and vobject with the same text back, the email parses with the same
    subject."""
    if not hasattr(app, "_hostile"):
        organizer = make_user(Role.ORGANIZER, Role.ADMIN, email="organizer@example.org")
        unit = create_unit("大瓦窑村", UnitKind.VILLAGE)
        cadre = make_user(email="cadre@example.org", unit=unit)
        series = make_series(organizers=[organizer], participants=[cadre])
        app._hostile = (organizer.id, cadre.id, series.id)
    from webapp.people.models import User
    from webapp.series.models import Series

    organizer_id, cadre_id, series_id = app._hostile
    series = db.session.get(Series, series_id)
    cadre = db.session.get(User, cadre_id)
    session = series.sessions[0]
    lecture_row, speaker = session.lectures[0], session.lectures[0].speakers[0]
    with db.session.no_autoflush:
        # Required fields that clean to nothing are refused by forms; keep them non-empty.
        series.title = title if clean_line(title) else "x"
        series.description = description
        session.title = title
        session.location = place
        lecture_row.title = lecture if clean_line(lecture) else "x"
        speaker.name = name if clean_line(name) else "x"
        cadre.display_name = name if clean_line(name) else "x"
        cadre.unit.name = place if clean_line(place) else "x"
        speaker.title, speaker.affiliation, speaker.bio = lecture, place, description
        session.cancel_reason = description
    # Written past the services (which would clean the text): announce it as they would.
    events.series_changed.send(series_id=series.id)
    db.session.commit()
    client = app.test_client()
    log_in(client, "organizer@example.org")
    for page in (
        f"/series/{series.id}",
        f"/series/{series.id}/manage",
        f"/series/{series.id}/participants",
        f"/sessions/{session.id}",
        f"/sessions/{session.id}/calendar.ics",
        "/speakers",
        f"/series/{series.id}/units/{cadre.unit_id}/roster",
        "/admin/units",
    ):
        assert client.get(page).status_code == 200, page
    unit_feed = render_feed(f"unit:{cadre.unit_id}", now=NOW)
    assert (
        vobject.readOne(unit_feed.decode())
        .contents["x-wr-calname"][0]
        .value.endswith(cadre.unit.name)
    )
    body = render_feed(f"user:{cadre.id}", now=NOW)
    [event] = Calendar.from_ical(body).walk("VEVENT")
    [other] = vobject.readOne(body.decode()).vevent_list
    assert str(event["SUMMARY"]) == other.summary.value
    expected = f"{series.title} — {session.title}" if session.title else series.title
    assert str(event["SUMMARY"]) == expected
    if session.location:
        assert str(event["LOCATION"]) == other.location.value == session.location
    assert str(event["DESCRIPTION"]) == other.description.value
    shared = render_reminder(session, "zh_CN", "Asia/Shanghai", now=NOW)
    raw = personalise(shared, cadre.display_name, cadre.email, "r:1")
    message = message_from_bytes(raw, policy=policy.default)
    assert clean_line(series.title) in message["Subject"]
    assert message["To"].addresses[0].addr_spec == cadre.email
    assert set(message.keys()) >= {"To", "Subject", "From", "Message-ID"}
    assert message["Bcc"] is None


# --- 3. bounds -------------------------------------------------------------------------------


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1999-12-31", "2101-01-01"])
def test_dates_outside_the_supported_years_are_refused_with_a_message(
    app, make_user, make_series, day
):
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = make_series(organizers=[organizer])
    client = app.test_client()
    log_in(client, organizer.email)
    page = f"/series/{series.id}/sessions/new"
    response = post_form(
        client,
        page,
        page,
        {"mode": "one", "one-day": day, "one-start": "16:00", "one-end": "18:00"},
    )
    assert response.status_code in (200, 400)
    assert "2000 年至 2100 年" in response.get_data(as_text=True)
    assert len(series.sessions) == 1


def test_services_refuse_dates_outside_the_supported_years(app, make_series):
    from webapp.errors import (
        InvalidInput,
    )
    from webapp.sessions.services import (
        create_session,
    )

    series = make_series()
    with pytest.raises(InvalidInput):
        create_session(
            series,
            starts_at=datetime(9999, 12, 31, 8, tzinfo=UTC),
            ends_at=datetime(9999, 12, 31, 9, tzinfo=UTC),
            title="x",
        )


def _upload(client, series, data: bytes, filename: str):
    page = f"/series/{series.id}/import"
    return client.post(
        page,
        data={
            "csrf_token": csrf_token_from(client.get(page).get_data(as_text=True)),
            "sheet": (io.BytesIO(data), filename),
        },
        content_type="multipart/form-data",
    )


@pytest.mark.parametrize(
    "path",
    ["/series/9223372036854775808", "/sessions/99999999999", "/series/2147483648/manage"],
)
def test_ids_beyond_the_integer_range_are_404(app, make_user, path):
    admin = make_user(Role.ADMIN, email="admin@example.org")
    client = app.test_client()
    log_in(client, admin.email)
    assert client.get(path).status_code == 404


def test_oversized_csv_cells_and_mail_names_answer_400(app, make_user, make_series):
    organizer = make_user(Role.ADMIN, email="admin@example.org")
    series = make_series(organizers=[organizer])
    client = app.test_client()
    log_in(client, organizer.email)
    data = ("姓名,手机号\n" + "王" * 140_000 + ",13910000001\n").encode()
    response = _upload(client, series, data, "big.csv")
    assert response.status_code == 400
    assert "300" in response.get_data(as_text=True)
    assert client.get("/admin/mail/" + "a" * 5000 + ".eml").status_code == 400


# --- 4. uploads cost what they weigh -----------------------------------------------------


def _with_dimension(data: bytes, ref: str) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                start = content.index(b"<dimension ref=")
                end = content.index(b"/>", start)
                content = content[:start] + f'<dimension ref="{ref}"'.encode() + content[end:]
            target.writestr(item, content)
    return out.getvalue()


def test_a_workbook_declaring_a_huge_sheet_is_read_for_what_it_holds():
    data = _with_dimension(
        xlsx_bytes([("姓名", "手机号"), ("王建国", "13910000001")]), "A1:XFD1048576"
    )
    assert len(data) < 10_000
    started = time.perf_counter()
    rows = read_sheet("a.xlsx", data, max_rows=5000)
    elapsed = time.perf_counter() - started
    assert [row["name"] for row in rows] == ["王建国"]
    assert elapsed < 10  # a hang guard only: trusting the dimension took minutes


def test_a_workbook_of_one_huge_shared_string_is_refused_and_stores_nothing(
    app, make_user, make_series
):
    huge = "长" * 200_000
    data = xlsx_bytes([("姓名", "手机号"), *[(huge, f"139100{n:05d}") for n in range(200)]])
    assert len(data) < 50_000  # one shared string, referenced by every row
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = make_series(organizers=[organizer])
    client = app.test_client()
    log_in(client, organizer.email)
    response = _upload(client, series, data, "huge.xlsx")
    assert response.status_code == 400
    assert len(response.get_data()) < 1_000_000
    assert db.session.scalars(select(ImportBatch)).all() == []


# --- 5. access ------------------------------------------------------------------------------


def test_a_liaison_opens_rosters_only_of_published_series_with_their_members(
    app, make_user, make_series
):
    village = create_unit("大瓦窑村", UnitKind.VILLAGE)
    liaison = make_user(email="liaison@example.org", unit=village)
    add_liaison(village, liaison)
    member = make_user(unit=village)
    with_members = make_series(participants=[member])
    draft = make_series(participants=[member], status=SeriesStatus.DRAFT)
    without = make_series(participants=[make_user()])
    client = app.test_client()
    log_in(client, liaison.email)
    url = "/series/{}/units/" + str(village.id) + "/roster"
    assert client.get(url.format(with_members.id)).status_code == 200
    assert client.get(url.format(draft.id)).status_code == 403
    assert client.get(url.format(without.id)).status_code == 403


def test_organizers_manage_only_their_own_robots_and_units_need_an_admin_or_liaison(
    app, make_user, make_series
):
    village = create_unit("大瓦窑村", UnitKind.VILLAGE)
    member = make_user(unit=village)
    admin = make_user(Role.ADMIN, email="admin@example.org")
    mine = make_user(Role.ORGANIZER, email="mine@example.org")
    series = make_series(organizers=[mine], participants=[member])
    unit_robot = add_webhook(
        by=admin,
        name="村群",
        kind=WebhookKind.WECOM,
        url="https://qyapi.example.cn/x",
        secret=None,
        unit=village,
    )
    db.session.commit()
    client = app.test_client()
    log_in(client, mine.email)
    page = f"/series/{series.id}/reminders"
    response = post_form(client, page, f"/series/{series.id}/robots/{unit_robot.id}/delete", {})
    assert response.status_code == 403
    assert db.session.get(Webhook, unit_robot.id) is not None
    response = post_form(
        client,
        page,
        f"/series/{series.id}/robots",
        {
            "robot-name": "x",
            "robot-kind": "wecom",
            "robot-url": "https://qyapi.example.cn/y",
            "robot-scope": str(village.id),
        },
    )
    assert response.status_code == 400
    assert db.session.scalars(select(Webhook)).all() == [unit_robot]


def test_join_works_only_for_published_sessions_the_user_may_see(app, make_user, make_series):
    cadre = make_user(email="cadre@example.org")
    draft = make_series(participants=[cadre], status=SeriesStatus.DRAFT)
    draft.sessions[0].join_url = "https://meeting.example.cn/1"
    db.session.commit()
    client = app.test_client()
    log_in(client, cadre.email)
    page = client.get("/").get_data(as_text=True)
    response = client.post(
        f"/sessions/{draft.sessions[0].id}/join", data={"csrf_token": csrf_token_from(page)}
    )
    assert response.status_code == 403


# --- 6. outgoing addresses -----------------------------------------------------------------


def test_robot_addresses_must_be_https_and_public(app):
    app.config["OUTGOING_ALLOWED_HOSTS"] = ""
    for url in (
        "http://qyapi.example.cn/x",
        "https://127.0.0.1/x",
        "https://10.0.0.1/x",
        "https://[::1]/x",
        "https://169.254.169.254/latest",
        "ftp://example.cn/",
    ):
        with pytest.raises(ForbiddenAddress):
            check_url(url)
    check_url("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=x")
    app.config["OUTGOING_ALLOW_HTTP"] = True
    check_url("http://qyapi.example.cn/x")


def test_the_connected_address_is_checked_so_a_name_cannot_lead_inside(app, make_series):
    """`localhost` is a name: it passes the form check and is caught on connecting."""
    from tests.reminders.test_webhooks import Receiver

    receiver = Receiver()
    try:
        series = make_series()
        webhook = Webhook(
            name="x",
            kind=WebhookKind.GENERIC,
            series_id=series.id,
            url=f"http://localhost:{receiver.server.server_port}/hook",
        )
        app.config["OUTGOING_ALLOWED_HOSTS"] = ""
        app.config["OUTGOING_ALLOW_HTTP"] = True
        with WebhookChannel(timeout=5) as channel, pytest.raises(DeliveryError) as caught:
            channel.send(webhook, RobotMessage("hi", now=NOW))
        assert caught.value.permanent and "not allowed" in str(caught.value)
        assert receiver.requests == []
        app.config["OUTGOING_ALLOWED_HOSTS"] = "localhost"
        with WebhookChannel(timeout=5) as channel:
            channel.send(webhook, RobotMessage("hi", now=NOW))
        assert len(receiver.requests) == 1
    finally:
        receiver.close()


# --- 7. log-in ----------------------------------------------------------------------------


def test_failed_log_ins_lock_the_account_name_with_the_same_message(app, make_user):
    user = make_user(email="cadre@example.org")
    client = app.test_client()
    for _ in range(5):
        assert log_in(client, user.email, "wrong password", expect_success=False).status_code == 401
    locked = log_in(client, user.email, PASSWORD, expect_success=False)
    assert locked.status_code == 429
    assert "分钟后再试" in locked.get_data(as_text=True)
    for _ in range(5):
        log_in(client, "nobody@example.org", "wrong password", expect_success=False)
    unknown = log_in(client, "nobody@example.org", "wrong password", expect_success=False)
    assert unknown.status_code == 429
    assert "分钟后再试" in unknown.get_data(as_text=True)


def test_a_copied_session_cookie_stops_working_after_logout(app, make_user):
    user = make_user(email="cadre@example.org")
    client = app.test_client()
    log_in(client, user.email)
    cookie = client.get_cookie("ykt_session").value
    assert client.get("/my/schedule").status_code == 200
    page = client.get("/").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_token_from(page)})
    thief = app.test_client()
    thief.set_cookie("ykt_session", cookie)
    assert thief.get("/my/schedule").status_code == 302


def test_changing_the_password_asks_for_the_current_one(app, make_user):
    user = make_user(email="cadre@example.org")
    client = app.test_client()
    log_in(client, user.email)
    data = {
        "current_password": "not mine",
        "password": "a new password 1",
        "confirm": "a new password 1",
    }
    response = post_form(client, "/account/password", "/account/password", data)
    assert response.status_code == 200 and "当前密码不正确" in response.get_data(as_text=True)
    data["current_password"] = PASSWORD
    assert post_form(client, "/account/password", "/account/password", data).status_code == 302


def test_personal_pages_are_not_stored_by_caches(app, make_user):
    user = make_user(email="cadre@example.org")
    client = app.test_client()
    log_in(client, user.email)
    assert client.get("/my/schedule").headers["Cache-Control"] == "no-store"


# --- 9. the import preview and the import agree ------------------------------------------


def test_the_preview_says_what_the_import_does_row_by_row(app, make_user, make_series):
    from webapp.series.importing import (
        UnitChoice,
        confirm_import,
        preview_import,
        store_batch,
    )

    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = make_series(organizers=[organizer])
    series.capacity = 2
    existing = make_user(phone="13910000009", name="老学员")
    db.session.commit()
    rows = [
        {
            "line": 2,
            "name": "王建国",
            "phone": "13910000001",
            "email": "",
            "unit": "大瓦窑村",
            "role": "联络员",
        },
        {
            "line": 3,
            "name": "老学员",
            "phone": "13910000009",
            "email": "",
            "unit": "新村",
            "role": "",
        },
        {"line": 4, "name": "李春梅", "phone": "13910000002", "email": "", "unit": "", "role": ""},
        {
            "line": 5,
            "name": "赵",
            "phone": "13910000003",
            "email": "",
            "unit": "",
            "role": "联络员",
        },
    ]
    batch = store_batch(series, "a.csv", rows, by=organizer, now=NOW)
    db.session.commit()
    new = {"大瓦窑村": UnitChoice(create=True), "新村": UnitChoice(create=True)}
    for units in (new, None):
        preview = preview_import(batch, series, units=units, now=NOW)
        said = [(row.line, row.outcome, row.notes, row.problems) for row in preview.rows]
        db.session.rollback()
    assert db.session.get(ImportBatch, batch.id).confirmed_at is None  # nothing was written
    preview = preview_import(batch, series, units=new, now=NOW)
    said = [(row.line, row.outcome, row.notes, row.problems) for row in preview.rows]
    assert [outcome for _line, outcome, _n, _p in said] == ["enrol", "enrol", "waitlist", "skip"]
    result = confirm_import(batch, series, units=new, now=NOW)
    done = [(r.line, r.outcome, tuple(r.notes), tuple(r.problems)) for r in result.rows]
    assert done == said
    assert (result.enrolled, result.waitlisted, result.skipped) == (2, 1, 1)
    _ = existing
    _ = timedelta
