"""Feeds under unusual input: escaped header text, one bad feed fails alone, one VTIMEZONE
per zone, settings reach the feed, a link stops when its owner loses access, one Date."""

import http.client
import threading
from datetime import UTC, datetime, timedelta

import vobject
from icalendar import Calendar
from sqlalchemy import select, text, update
from werkzeug.serving import make_server

from tests.helpers import NOW, log_in, post_form
from webapp.db import db
from webapp.feeds.content import (
    render_feed,
)
from webapp.feeds.links import (
    link_token,
    token_for,
)
from webapp.feeds.memory import (
    lookup_cache,
)
from webapp.feeds.models import FeedDocument, FeedKind
from webapp.feeds.services import (
    publish_stale_feeds,
    store_feed,
)
from webapp.people.models import Role, UnitKind, User
from webapp.people.units import (
    add_liaison,
    create_unit,
    remove_liaison,
)
from webapp.series.enrollment import (
    enroll,
    remove_enrollment,
)
from webapp.series.models import Enrollment, Series


def feed_url(token):
    return f"/feeds/{link_token(token)}.ics"


def test_calendar_name_and_description_are_escaped_text(app, make_series):
    series = make_series(title="研修班, 第一期; 卢沟桥", participants=[])
    series.description = "第一行\n第二行, 含逗号; 分号\\反斜杠"
    db.session.commit()
    body = render_feed(f"series:{series.id}", now=NOW)
    assert b"NAME:\xe7\xa0\x94\xe4\xbf\xae\xe7\x8f\xad\\, " in body  # the comma escaped
    calendar = Calendar.from_ical(body)
    # icalendar keeps properties it has no type for as written: escaped TEXT.
    for name in ("NAME", "X-WR-CALNAME"):
        assert calendar[name] == "研修班\\, 第一期\\; 卢沟桥"
    assert calendar["X-WR-CALDESC"] == "第一行\\n第二行\\, 含逗号\\; 分号\\\\反斜杠"
    second = vobject.readOne(body.decode())
    assert second.contents["x-wr-calname"][0].value == "研修班, 第一期; 卢沟桥"
    assert second.contents["x-wr-caldesc"][0].value == "第一行\n第二行, 含逗号; 分号\\反斜杠"


def test_one_vtimezone_per_zone_covering_every_year(app, make_user, make_series):
    cadre = make_user()
    make_series(
        timezone="Europe/Berlin",
        participants=[cadre],
        first_start=datetime(2026, 12, 30, 15, tzinfo=UTC),
        sessions=4,
    )  # 30 Dec 2026 … 2 Jan 2027
    body = render_feed(f"user:{cadre.id}", now=NOW)
    calendar = Calendar.from_ical(body)
    zones = [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")]
    assert zones.count("Europe/Berlin") == 1
    assert zones.count("Asia/Shanghai") <= 1
    # Both parsers read the same times from it.
    starts = sorted(e.decoded("DTSTART").astimezone(UTC) for e in calendar.walk("VEVENT"))
    other = sorted(
        e.dtstart.value.astimezone(UTC) for e in vobject.readOne(body.decode()).vevent_list
    )
    assert starts == other and starts[0] == datetime(2026, 12, 30, 15, tzinfo=UTC)


def test_a_feed_that_cannot_be_rendered_fails_alone_and_the_other_100_publish(
    app, make_user, make_series
):
    organizer = make_user(Role.ORGANIZER)
    series = [make_series(organizers=[organizer], sessions=1) for _ in range(101)]
    for each in series:
        store_feed(f"series:{each.id}", now=NOW)
    db.session.commit()
    poison = series[0]
    # A zone the time-zone database does not know, stored by an older version.
    db.session.execute(
        text("UPDATE series SET timezone = 'Mars/Olympus_Mons' WHERE id = :id"), {"id": poison.id}
    )
    later = datetime.now(UTC)
    db.session.execute(
        update(FeedDocument)
        .where(FeedDocument.feed_key.like("series:%"))
        .values(stale_since=later - timedelta(seconds=1))
    )
    db.session.commit()
    db.session.expire_all()
    assert publish_stale_feeds(now=later) == 101
    db.session.commit()
    documents = {d.feed_key: d for d in db.session.scalars(select(FeedDocument))}
    bad = documents[f"series:{poison.id}"]
    assert bad.failed_at is not None and "Mars/Olympus_Mons" in bad.publish_error
    assert bad.stale_since is None  # the sweep does not spin on it
    good = [documents[f"series:{s.id}"] for s in series[1:]]
    assert all(d.stale_since is None and d.failed_at is None for d in good)
    assert all(d.rendered_at == later for d in good)
    assert publish_stale_feeds(now=later) == 0
    # The admin sees it and sends it round again.
    admin = make_user(Role.ADMIN, email="admin@example.org")
    db.session.commit()
    client = app.test_client()
    log_in(client, admin.email)
    assert "Mars/Olympus_Mons" in client.get("/admin/status").get_data(as_text=True)
    post_form(client, "/admin/status", "/admin/feeds/retry-failed", {})
    db.session.expire_all()
    assert db.session.get(FeedDocument, f"series:{poison.id}").stale_since is not None


def test_changing_my_feed_settings_or_language_republishes_my_feed(app, make_user, make_series):
    cadre = make_user(email="cadre@example.org")
    make_series(participants=[cadre])
    store_feed(f"user:{cadre.id}", now=NOW)
    db.session.commit()
    client = app.test_client()
    log_in(client, cadre.email)
    post_form(
        client,
        "/account/notifications",
        "/account/notifications",
        {"email_reminders": "y", "feed_alarm_minutes": "30"},
    )
    db.session.expire_all()
    assert db.session.get(FeedDocument, f"user:{cadre.id}").stale_since is not None
    publish_stale_feeds(now=datetime.now(UTC))
    db.session.commit()
    body = db.session.get(FeedDocument, f"user:{cadre.id}").body
    assert Calendar.from_ical(body).walk("VALARM")[0].decoded("TRIGGER") == -timedelta(minutes=30)
    # The language of the calendar's name follows the person's language.
    post_form(client, "/account/notifications", "/language", {"locale": "en"})
    db.session.expire_all()
    assert db.session.get(User, cadre.id).locale == "en"
    assert db.session.get(FeedDocument, f"user:{cadre.id}").stale_since is not None
    publish_stale_feeds(now=datetime.now(UTC))
    db.session.commit()
    assert b"schedule" in db.session.get(FeedDocument, f"user:{cadre.id}").body


def test_series_and_unit_links_stop_when_access_ends_and_work_when_it_returns(
    app, make_user, make_series, client
):
    cadre = make_user()
    series = make_series(participants=[cadre])
    series_url = feed_url(token_for(cadre, FeedKind.SERIES, series.id, now=NOW))
    village = create_unit("大瓦窑村", UnitKind.VILLAGE)
    liaison = make_user(unit=village)
    add_liaison(village, liaison)
    unit_url = feed_url(token_for(liaison, FeedKind.UNIT, village.id, now=NOW))
    db.session.commit()
    assert client.get(series_url).status_code == 200
    assert client.get(unit_url).status_code == 200
    enrollment = db.session.scalars(select(Enrollment)).one()
    remove_enrollment(enrollment, now=NOW)
    remove_liaison(village, liaison)
    db.session.commit()
    lookup_cache.clear()
    assert client.get(series_url).status_code == 404
    assert client.get(unit_url).status_code == 404
    enroll(cadre, db.session.get(Series, series.id), now=NOW)
    add_liaison(village, liaison)
    db.session.commit()
    assert client.get(series_url).status_code == 200
    assert client.get(unit_url).status_code == 200


def test_calendar_responses_carry_one_date_header(app, make_user, make_series):
    cadre = make_user()
    make_series(participants=[cadre])
    path = feed_url(token_for(cadre, FeedKind.PERSONAL, now=NOW))
    db.session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        assert len(response.msg.get_all("Date")) == 1
        connection.close()
    finally:
        server.shutdown()
        server.server_close()
