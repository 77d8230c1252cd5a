"""Feeds: content checked with icalendar and with vobject (an independent parser), tokens,
HTTP caching, publishing."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import vobject
from icalendar import Calendar
from sqlalchemy import select

from tests.helpers import NOW, log_in, post_form
from webapp.db import db
from webapp.feeds.content import (
    render_feed,
)
from webapp.feeds.links import (
    find_token,
    link_token,
    revoke_token,
    rotate_token,
    token_for,
)
from webapp.feeds.memory import (
    lookup_cache,
)
from webapp.feeds.models import FeedDocument, FeedKind, FeedToken
from webapp.feeds.services import (
    publish_stale_feeds,
    store_feed,
)
from webapp.feeds.serving import (
    current_document,
)
from webapp.people.models import Role
from webapp.people.units import (
    add_liaison,
)
from webapp.series.models import Series, SeriesStatus, Visibility
from webapp.sessions.models import LectureSession
from webapp.sessions.services import (
    cancel_session,
    publish_series,
    reschedule_session,
)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def cadre(make_user):
    return make_user(email="cadre@example.org", name="王建国")


def feed_url(token):
    return f"/feeds/{link_token(token)}.ics"


def parse_both(body: bytes):
    """(icalendar events, vobject events) keyed by UID → (UTC start, UTC end)."""
    ical = Calendar.from_ical(body)
    first = {
        str(e["UID"]): (e.decoded("DTSTART").astimezone(UTC), e.decoded("DTEND").astimezone(UTC))
        for e in ical.walk("VEVENT")
    }
    second = {
        e.uid.value: (e.dtstart.value.astimezone(UTC), e.dtend.value.astimezone(UTC))
        for e in vobject.readOne(body.decode()).vevent_list
    }
    return ical, first, second


def test_personal_feed_holds_my_series_only_and_both_parsers_agree(app, cadre, make_series):
    mine = make_series(
        title="研修班，第一期; 基层",
        participants=[cadre],
        sessions=3,
        first_start=utc(2026, 12, 3, 8),
    )
    make_series(title="别人的课程", sessions=2)
    body = render_feed(f"user:{cadre.id}", now=NOW)
    ical, first, second = parse_both(body)
    assert first == second
    assert set(first) == {f"session-{s.id}@localhost" for s in mine.sessions}
    assert first[f"session-{mine.sessions[0].id}@localhost"] == (
        utc(2026, 12, 3, 8),
        utc(2026, 12, 3, 10),
    )
    assert b"\xe5\x88\xab\xe4\xba\xba" not in body  # 别人的课程 is not in it
    assert ical["METHOD"] == "PUBLISH" and ical["VERSION"] == "2.0"
    assert ical["X-WR-CALNAME"] == "云课堂 · 王建国 的课表"
    assert str(ical["X-WR-TIMEZONE"]) == "Asia/Shanghai"
    assert b"REFRESH-INTERVAL;VALUE=DURATION:PT1H" in body and b"X-PUBLISHED-TTL:PT1H" in body
    event = ical.walk("VEVENT")[0]
    for name in (
        "DTSTAMP",
        "CREATED",
        "LAST-MODIFIED",
        "SEQUENCE",
        "STATUS",
        "SUMMARY",
        "DESCRIPTION",
        "URL",
        "CATEGORIES",
    ):
        assert name in event, name
    assert b"DTSTART;TZID=Asia/Shanghai:20261203T160000" in body
    # TEXT values are escaped everywhere: the comma and semicolon of the title.
    assert "研修班\\，第一期\\; 基层".encode() not in body
    assert "SUMMARY:研修班，第一期\\; 基层".encode() in body


def test_lines_are_folded_at_75_octets_without_splitting_characters(app, cadre, make_series):
    series = make_series(title="卢沟桥乡基层党员干部能力提升研修班" * 3, participants=[cadre])
    series.description = "这是一个很长的说明。" * 20
    db.session.commit()
    body = render_feed(f"user:{cadre.id}", now=NOW)
    assert body.endswith(b"\r\n") and b"\n" not in body.replace(b"\r\n", b"")
    for line in body.split(b"\r\n"):
        assert len(line) <= 75
        line.decode("utf-8")  # every physical line is whole UTF-8


def test_berlin_series_stays_at_16_local_across_the_dst_change(app, cadre, make_series):
    make_series(
        timezone="Europe/Berlin", participants=[cadre], sessions=4, first_start=utc(2027, 3, 26, 15)
    )  # 16:00 CET
    # make_series steps by 24 h in UTC; put the sessions at 16:00 local instead.
    from zoneinfo import ZoneInfo

    from webapp.sessions.models import LectureSession

    berlin = ZoneInfo("Europe/Berlin")
    for session in db.session.scalars(select(LectureSession).order_by(LectureSession.starts_at)):
        local = session.starts_at.astimezone(berlin).replace(hour=16)
        session.starts_at = local.astimezone(UTC)
        session.ends_at = (local + timedelta(hours=2)).astimezone(UTC)
    db.session.commit()
    body = render_feed(f"user:{cadre.id}", now=NOW)
    _ical, first, second = parse_both(body)
    assert first == second
    starts = sorted(start for start, _end in first.values())
    assert [s.hour for s in starts] == [15, 15, 14, 14]  # 16:00 CET, then 16:00 CEST
    assert b"RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3" in body
    assert b"RDATE" not in body
    assert body.count(b"BEGIN:VTIMEZONE") == 1


def test_reschedule_keeps_the_uid_and_raises_sequence_cancel_keeps_the_event(
    app, cadre, make_series
):
    series = make_series(participants=[cadre], sessions=2, first_start=utc(2026, 12, 3, 8))
    session = series.sessions[0]
    before = Calendar.from_ical(render_feed(f"user:{cadre.id}", now=NOW))
    reschedule_session(
        session, starts_at=utc(2026, 12, 3, 10), ends_at=utc(2026, 12, 3, 12), by=None, now=NOW
    )
    cancel_session(series.sessions[1], reason="疫情防控", by=None, now=NOW)
    db.session.commit()
    after = Calendar.from_ical(render_feed(f"user:{cadre.id}", now=NOW))
    old = {str(e["UID"]): e for e in before.walk("VEVENT")}
    new = {str(e["UID"]): e for e in after.walk("VEVENT")}
    assert old.keys() == new.keys()
    uid = f"session-{session.id}@localhost"
    assert int(new[uid]["SEQUENCE"]) == int(old[uid]["SEQUENCE"]) + 1
    assert new[uid].decoded("DTSTART").astimezone(UTC) == utc(2026, 12, 3, 10)
    cancelled = new[f"session-{series.sessions[1].id}@localhost"]
    assert cancelled["STATUS"] == "CANCELLED"


def test_calendars_that_ignore_status_still_see_a_cancellation_and_the_page(
    app, cadre, make_series
):
    """A cancelled session's title says so; the description has the join link and the
    session's page (Google shows no URL); a title typed with 《》 is not wrapped twice."""
    series = make_series(participants=[cadre], sessions=2, first_start=utc(2026, 12, 3, 8))
    online, cancelled = series.sessions
    online.join_url = "https://meeting.tencent.com/dm/abcdef"
    online.lectures[0].title = "《乡村振兴战略解读》"
    cancel_session(cancelled, reason="防汛值班", by=None, now=NOW)
    db.session.commit()
    events = {
        str(e["UID"]): e
        for e in Calendar.from_ical(render_feed(f"user:{cadre.id}", now=NOW)).walk("VEVENT")
    }
    gone = events[f"session-{cancelled.id}@localhost"]
    assert str(gone["SUMMARY"]).startswith("【已取消】")
    assert gone["STATUS"] == "CANCELLED"
    here = events[f"session-{online.id}@localhost"]
    assert not str(here["SUMMARY"]).startswith("【已取消】")
    description = str(here["DESCRIPTION"])
    page = f"http://localhost/sessions/{online.id}"
    assert "https://meeting.tencent.com/dm/abcdef" in description and page in description
    assert "《乡村振兴战略解读》" in description and "《《" not in description
    assert str(here["URL"]) == page


def test_fragments_stored_by_an_earlier_release_are_rendered_again(app, cadre, make_series):
    from webapp.feeds.models import EventFragment

    series = make_series(participants=[cadre], sessions=1, first_start=utc(2026, 12, 3, 8))
    session = series.sessions[0]
    db.session.add(EventFragment(session_id=session.id, version="1", body=b"BEGIN:VEVENT\r\n"
                                 b"UID:stale\r\nEND:VEVENT\r\n"))  # fmt: skip
    db.session.commit()
    body = render_feed(f"user:{cadre.id}", now=NOW)
    assert b"UID:stale" not in body and f"session-{session.id}@localhost".encode() in body


def test_same_data_gives_the_same_bytes(app, cadre, make_series):
    make_series(participants=[cadre], sessions=3)
    first = render_feed(f"user:{cadre.id}", now=NOW)
    second = render_feed(f"user:{cadre.id}", now=NOW + timedelta(hours=1))
    assert first == second


def test_optional_alarm_goes_into_my_feed(app, cadre, make_series):
    make_series(participants=[cadre])
    cadre.feed_alarm_minutes = 30
    db.session.commit()
    body = render_feed(f"user:{cadre.id}", now=NOW)
    alarm = Calendar.from_ical(body).walk("VALARM")[0]
    assert alarm.decoded("TRIGGER") == -timedelta(minutes=30)


def test_tokens_are_long_random_hashed_rotatable_and_revocable(app, cadre, make_series, client):
    make_series(participants=[cadre])
    token = token_for(cadre, FeedKind.PERSONAL, now=NOW)
    db.session.commit()
    raw = link_token(token)
    assert len(raw) >= 43  # 256 bits
    assert raw not in (token.nonce, token.token_hash)
    assert client.get(f"/feeds/{raw}.ics").status_code == 200
    assert client.get(f"/feeds/{raw[:-1]}x.ics").status_code == 404
    new = rotate_token(token, now=NOW)
    db.session.commit()
    assert client.get(f"/feeds/{raw}.ics").status_code == 404
    assert client.get(feed_url(new)).status_code == 200
    revoke_token(new, now=NOW)
    db.session.commit()
    assert client.get(feed_url(new)).status_code == 404
    assert find_token(link_token(new)) is None


def test_http_caching_headers_304_and_head(app, cadre, make_series, client):
    make_series(participants=[cadre])
    url = feed_url(token_for(cadre, FeedKind.PERSONAL, now=NOW))
    db.session.commit()
    response = client.get(url)
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    etag = response.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{40}"', etag)  # strong
    assert "max-age" in response.headers["Cache-Control"]
    assert response.headers["Last-Modified"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    since = response.headers["Last-Modified"]
    assert client.get(url, headers={"If-Modified-Since": since}).status_code == 304
    head = client.head(url)
    assert head.status_code == 200 and head.data == b"" and head.headers["ETag"] == etag


def test_a_change_reaches_the_stored_feed_through_the_worker_or_the_request(
    app, cadre, make_series, client
):
    series = make_series(participants=[cadre], first_start=utc(2026, 12, 3, 8))
    url = feed_url(token_for(cadre, FeedKind.PERSONAL, now=NOW))
    db.session.commit()
    etag = client.get(url).headers["ETag"]
    reschedule_session(
        series.sessions[0],
        starts_at=utc(2026, 12, 4, 8),
        ends_at=utc(2026, 12, 4, 10),
        by=None,
        now=NOW,
    )
    db.session.commit()
    document = db.session.get(FeedDocument, f"user:{cadre.id}")
    assert document.stale_since is not None  # marked in the same transaction
    # The worker's sweep renders it.
    assert publish_stale_feeds(now=datetime.now(UTC)) >= 1
    db.session.commit()
    db.session.refresh(document)
    assert document.stale_since is None and f'"{document.etag}"' != etag
    assert b"20261204T160000" in client.get(url).data
    # No worker: a stale feed older than the grace period is rendered by the request.
    reschedule_session(
        series.sessions[0],
        starts_at=utc(2026, 12, 5, 8),
        ends_at=utc(2026, 12, 5, 10),
        by=None,
        now=NOW,
    )
    db.session.commit()
    db.session.refresh(document)
    document.stale_since = datetime.now(UTC) - timedelta(seconds=10)
    db.session.commit()
    lookup_cache.clear()  # a second later: the web process's one-second memory has expired
    assert b"20261205T160000" in client.get(url).data


def test_public_series_feed_needs_no_token_private_ones_do(app, make_series, client):
    public = make_series(visibility=Visibility.PUBLIC)
    private = make_series(visibility=Visibility.ENROLLED)
    assert client.get(f"/series/{public.id}/calendar.ics").status_code == 200
    assert client.get(f"/series/{private.id}/calendar.ics").status_code == 404


def test_unit_feed_for_liaisons_and_organizer_feed(app, make_user, make_series):
    from webapp.people.models import UnitKind
    from webapp.people.units import (
        create_unit,
    )

    village = create_unit("大瓦窑村", UnitKind.VILLAGE)
    liaison = make_user(unit=village)
    add_liaison(village, liaison)
    member = make_user(unit=village)
    organizer = make_user(Role.ORGANIZER)
    series = make_series(participants=[member], organizers=[organizer])
    make_series(title="无关课程")
    unit_body = render_feed(f"unit:{village.id}", now=NOW)
    organizer_body = render_feed(f"organizer:{organizer.id}", now=NOW)
    for body in (unit_body, organizer_body):
        uids = {str(e["UID"]) for e in Calendar.from_ical(body).walk("VEVENT")}
        assert uids == {f"session-{s.id}@localhost" for s in series.sessions}


def test_subscribe_page_shows_links_qr_instructions_and_last_refresh(
    app, cadre, make_series, client
):
    make_series(participants=[cadre])
    log_in(client, "cadre@example.org")
    # Opening the page writes nothing: the link is made when asked for.
    page = client.get("/account/calendar").get_data(as_text=True)
    assert db.session.scalars(select(FeedToken)).all() == []
    assert "/account/calendar/new/personal" in page
    post_form(client, "/account/calendar", "/account/calendar/new/personal", {})
    page = client.get("/account/calendar").get_data(as_text=True)
    token = db.session.scalars(select(FeedToken)).one()
    raw = link_token(token)
    assert f"webcal://localhost/feeds/{raw}.ics" in page
    assert f"http://localhost/feeds/{raw}.ics" in page
    assert "<svg" in page and "Outlook" in page and "Thunderbird" in page
    assert "还没有日历应用获取过" in page
    client.get(f"/feeds/{raw}.ics", headers={"User-Agent": "Google-Calendar-Importer"})
    page = client.get("/account/calendar").get_data(as_text=True)
    assert "最近一次刷新" in page


def test_a_fetch_is_stored_within_seconds_with_no_later_request(app, cadre, make_user, make_series):
    """A calendar fetched once: within a few seconds the organizer's participants page and
    the late-change rule see it, without another fetch or the subscriber's own page."""
    import time

    from webapp.feeds.fetches import fetch_counter

    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = make_series(participants=[cadre], organizers=[organizer])
    raw = link_token(token_for(cadre, FeedKind.PERSONAL, now=NOW))
    db.session.commit()
    subscriber = app.test_client()
    assert subscriber.get(f"/feeds/{raw}.ics", headers={"User-Agent": "iOS/18"}).status_code == 200
    organizer_client = app.test_client()
    log_in(organizer_client, "organizer@example.org")
    deadline = time.monotonic() + fetch_counter.FLUSH_AFTER.total_seconds() + 5
    while True:
        db.session.expire_all()
        token = db.session.scalars(select(FeedToken)).one()
        if token.last_fetched_at is not None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert token.fetch_count == 1 and token.last_user_agent == "iOS/18"
    page = organizer_client.get(f"/series/{series.id}/participants").text
    row = page.split(cadre.display_name, 1)[1].split("</tr>", 1)[0]
    assert "未订阅" not in row and "前" in row  # "… 前" (that long ago)


def test_phones_get_a_copy_button_china_s_calendars_and_a_download_of_the_next_sessions(
    app, cadre, make_series, client
):
    from webapp.db import utcnow

    series = make_series(participants=[cadre], sessions=3, first_start=utcnow() - timedelta(days=1))
    _past, cancelled, coming = series.sessions
    cancel_session(cancelled, reason="改期", by=None, now=NOW)
    db.session.commit()
    log_in(client, "cadre@example.org")
    post_form(client, "/account/calendar", "/account/calendar/new/personal", {})
    page = client.get("/account/calendar").get_data(as_text=True)
    token = db.session.scalars(select(FeedToken)).one()
    assert f'data-copy="link-{token.id}"' in page and "复制链接" in page
    assert 'class="qr desktop-only"' in page and "请在电脑上打开本页" in page
    for words in ("华为", "小米", "钉钉", "企业微信", "iPhone", "中国大陆以外"):
        assert words in page, words
    response = client.get("/account/calendar/next.ics")
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    assert response.headers["Content-Disposition"].startswith("attachment")
    uids = {str(e["UID"]) for e in Calendar.from_ical(response.data).walk("VEVENT")}
    assert uids == {f"session-{coming.id}@localhost"}  # not over, not cancelled
    # Nobody else's: the download is the signed-in person's own.
    assert client_for_nobody(app).get("/account/calendar/next.ics").status_code in (302, 401)


def client_for_nobody(app):
    return app.test_client()


def test_single_session_download(app, cadre, make_series, client):
    series = make_series(participants=[cadre])
    log_in(client, "cadre@example.org")
    response = client.get(f"/sessions/{series.sessions[0].id}/calendar.ics")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert Calendar.from_ical(response.data).walk("VEVENT")
    other = make_series()
    assert client.get(f"/sessions/{other.sessions[0].id}/calendar.ics").status_code == 403


def test_documents_are_rendered_on_first_request(app, cadre, make_series):
    make_series(participants=[cadre])
    document = current_document(f"user:{cadre.id}", now=NOW)
    assert document.body.startswith(b"BEGIN:VCALENDAR")


def test_a_late_change_reaches_subscribers_whose_calendar_has_not_refreshed(
    app, make_user, make_series
):
    from webapp.reminders.models import Delivery
    from webapp.reminders.notices import (
        compose_notices,
    )

    start = NOW + timedelta(hours=6)
    stale = make_user(email="stale@example.org")
    fresh = make_user(email="fresh@example.org")
    unsubscribed = make_user(email="none@example.org")
    for user in (stale, fresh, unsubscribed):
        user.email_reminders = False
    series = make_series(participants=[stale, fresh, unsubscribed], first_start=start)
    for user in (stale, fresh):
        token_for(user, FeedKind.PERSONAL, now=NOW)
    db.session.commit()
    reschedule_session(
        series.sessions[0],
        starts_at=start + timedelta(hours=1),
        ends_at=start + timedelta(hours=3),
        by=None,
        now=NOW,
    )
    db.session.commit()
    fresh_token = db.session.scalars(select(FeedToken).where(FeedToken.user_id == fresh.id)).one()
    fresh_token.last_fetched_at = NOW + timedelta(minutes=1)
    db.session.commit()
    compose_notices(now=NOW + timedelta(minutes=3))
    db.session.commit()
    # The others are recorded as not told (they turned mail off), with the reason.
    recipients = {
        d.user_id
        for d in db.session.scalars(select(Delivery).where(Delivery.status == "pending"))
    }
    assert recipients == {stale.id}


def test_a_participant_subscribes_to_one_series_from_its_page(app, cadre, make_series, client):
    series = make_series(participants=[cadre], title="研修班")
    other = make_series(title="别人的课程")
    log_in(client, "cadre@example.org")
    from tests.helpers import post_form

    page = f"/series/{series.id}"
    assert (
        post_form(client, page, f"/account/calendar/new/series/{series.id}", {}).status_code == 302
    )
    assert (
        post_form(client, page, f"/account/calendar/new/series/{other.id}", {}).status_code == 403
    )
    token = db.session.scalars(select(FeedToken).where(FeedToken.kind == FeedKind.SERIES)).one()
    assert token.target_id == series.id
    body = client.get(feed_url(token)).data
    assert {str(e["UID"]) for e in Calendar.from_ical(body).walk("VEVENT")} == {
        f"session-{s.id}@localhost" for s in series.sessions
    }
    assert "研修班" in client.get("/account/calendar").get_data(as_text=True)


def test_feeds_hear_a_change_made_by_one_bulk_statement_and_roll_back_with_it(
    app, make_user, make_series
):
    """Publishing marks every session published with one UPDATE (no ORM object is dirtied):
    the stored feeds still go stale, in the same transaction; a rollback undoes both."""
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = make_series(organizers=[organizer], status=SeriesStatus.DRAFT, sessions=3)
    keys = [f"organizer:{organizer.id}", f"series:{series.id}"]
    for key in keys:
        store_feed(key, now=NOW)
    db.session.commit()

    publish_series(series, now=NOW)
    assert all(db.session.get(FeedDocument, key).stale_since is not None for key in keys)
    db.session.rollback()
    assert all(db.session.get(FeedDocument, key).stale_since is None for key in keys)
    assert db.session.get(Series, series.id).status == SeriesStatus.DRAFT

    publish_series(db.session.get(Series, series.id), now=NOW)
    db.session.commit()
    db.session.expire_all()
    assert all(db.session.get(FeedDocument, key).stale_since is not None for key in keys)
    published = db.session.scalars(
        select(LectureSession.published_at).where(LectureSession.series_id == series.id)
    ).all()
    assert published == [NOW] * 3
