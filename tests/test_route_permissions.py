"""Route permissions by construction: every endpoint is in webapp/permissions.py's table, and
every route answers every kind of caller exactly as the table says, with real ids of objects
that caller does not own. A refused POST (sent with the caller's own valid CSRF token)
changes nothing in the database; an allowed POST, sent without a token, is let through to
the CSRF check (which comes after the permission check) and stops there."""

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.helpers import NOW, csrf_token_from, log_in
from webapp import permissions
from webapp.api.tokens import Scope, create_token
from webapp.db import db, utcnow
from webapp.feeds.links import (
    link_token,
    token_for,
)
from webapp.feeds.models import FeedKind
from webapp.people.models import Role, UnitKind
from webapp.people.units import (
    add_liaison,
    create_unit,
)
from webapp.permissions import ROUTES, Outcome
from webapp.reminders.models import (
    Channel,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    ReminderRule,
    Webhook,
    WebhookKind,
)
from webapp.series.models import Enrollment, ImportBatch

CALLERS = (
    "anonymous",
    "participant",  # enrolled in the series the URL names
    "other_participant",  # enrolled in another series only
    "other_liaison",  # liaison of another unit
    "other_organizer",  # organizer of another series
    "admin",
)

A, L, F, N = Outcome.ALLOW, Outcome.LOG_IN, Outcome.FORBIDDEN, Outcome.NOT_FOUND
# What each rule of the table means for each caller, written out here (not computed by the
# code under test): (anonymous, participant, other participant, other liaison, other
# organizer, admin).
EXPECTED = {
    permissions.ANYONE: (A, A, A, A, A, A),
    permissions.SIGNED_IN: (L, A, A, A, A, A),
    permissions.ADMINS: (L, F, F, F, F, A),
    permissions.ORGANIZERS: (L, F, F, F, A, A),
    permissions.SERIES_ORGANIZERS: (L, F, F, F, F, A),
    permissions.READERS: (L, A, F, F, F, A),
    permissions.READERS_ELSE_404: (N, A, F, F, F, A),
    permissions.SIGNED_IN_READERS: (L, A, F, F, F, A),
    permissions.ROSTER_KEEPERS: (L, F, F, F, F, A),
    permissions.TOKEN_OWNER: (L, N, N, N, N, N),
    permissions.FEED_CHOOSERS: (L, A, F, F, F, A),  # a calendar of the series
    # The API, each caller with a read-write token of their own (participants may not use
    # the API; someone else's series is not found).
    permissions.API_READ: (L, F, F, F, A, A),
    permissions.API_WRITE: (L, F, F, F, A, A),
    permissions.API_ADMIN_WRITE: (L, F, F, F, F, A),
    permissions.API_SERIES_READ: (L, F, F, F, N, A),
    permissions.API_SERIES_WRITE: (L, F, F, F, N, A),
}
# Routes whose URL makes the rule answer differently from the usual objects.
EXPECTED_FOR = {
    # A series calendar without saying which series: nobody may have that.
    "/account/calendar/new/<kind>": (L, F, F, F, F, F),
    # Machine-facing: nginx's callbacks and auth subrequest, the player's heartbeats. What
    # they carry decides (the callbacks' secret, an HLS path, a viewer token); a plain
    # request carries none of it, whoever sends it.
    "/streaming/rtmp": (F, F, F, F, F, F),
    "/streaming/hls-auth": (F, F, F, F, F, F),
    "/sessions/<int:session_id>/heartbeat": (F, F, F, F, F, F),
}


def test_every_endpoint_is_in_the_table(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints - set(ROUTES) == set(), "endpoints without a permission rule"
    assert set(ROUTES) - endpoints == set(), "rules for endpoints that do not exist"
    assert all(rule in EXPECTED for rule in ROUTES.values())


@pytest.fixture
def world(app, make_user, make_series):
    """A series owned by someone who is none of the callers, with one of everything."""
    owner = make_user(Role.ORGANIZER, email="owner@example.org")
    village = create_unit("大瓦窑村", UnitKind.VILLAGE)
    elsewhere = create_unit("小瓦窑村", UnitKind.VILLAGE)
    people = {
        "participant": make_user(email="cadre@example.org", unit=village),
        "other_participant": make_user(email="other@example.org", unit=elsewhere),
        "other_liaison": make_user(email="liaison@example.org", unit=elsewhere),
        "other_organizer": make_user(Role.ORGANIZER, email="organizer2@example.org"),
        "admin": make_user(Role.ADMIN, email="admin@example.org"),
    }
    add_liaison(elsewhere, people["other_liaison"])
    add_liaison(village, owner)
    series = make_series(organizers=[owner], participants=[people["participant"]])
    make_series(
        organizers=[people["other_organizer"]],
        participants=[people["other_participant"], people["other_liaison"]],
    )
    session = series.sessions[0]
    lecture = session.lectures[0]
    rule = ReminderRule(series_id=series.id, minutes_before=15)
    robot = Webhook(
        name="群机器人",
        kind=WebhookKind.GENERIC,
        url="https://example.org/hook",
        series_id=series.id,
    )
    batch = ImportBatch(series_id=series.id, filename="名单.xlsx", rows=[], created_user_ids=[])
    hook = Webhook(
        name="学籍系统",
        kind=WebhookKind.EVENTS,
        url="https://example.org/events",
        events="session.created",
        secret="whsec_test",
    )
    db.session.add_all([rule, robot, batch, hook])
    db.session.flush()
    delivery = Delivery(
        key="permissions-test",
        kind=DeliveryKind.REMINDER,
        channel=Channel.EMAIL,
        user_id=people["participant"].id,
        series_id=series.id,
        session_id=session.id,
        due_at=NOW - timedelta(hours=1),
        status=DeliveryStatus.FAILED,
    )
    token = token_for(owner, FeedKind.PERSONAL, now=NOW)
    db.session.add(delivery)
    db.session.commit()
    enrollment = db.session.scalar(select(Enrollment).where(Enrollment.series_id == series.id))
    values = {
        "series_id": series.id,
        "session_id": session.id,
        "lecture_id": lecture.id,
        "unit_id": village.id,
        "user_id": owner.id,
        "enrollment_id": enrollment.id,
        "batch_id": batch.id,
        "rule_id": rule.id,
        "webhook_id": robot.id,
        "hook_id": hook.id,
        "delivery_id": delivery.id,
        "token_id": token.id,
        "token": link_token(token),
        "speaker_id": lecture.speakers[0].id,
        "kind": FeedKind.SERIES.value,
        "target_id": series.id,
        "direction": "down",
        "how": "send",
        "action": "deactivate",
        "name": "nothing-here.eml",
        "filename": "app.css",
        "recording_id": 1,
        "note_id": 1,
        "decision": "accept",
        "import_id": 1,
        "format": "csv",
    }
    return people, values


def database_fingerprint() -> str:
    """Every row of every table, hashed: equal fingerprints, unchanged database."""
    digest = hashlib.sha256()
    db.session.expire_all()
    for table in db.metadata.sorted_tables:
        # (Feed fetch counts are written by the web process a moment after a fetch, whatever
        # request comes next: telemetry, not a write of the request under test.)
        columns = [c for c in table.columns if c.name not in TELEMETRY.get(table.name, ())]
        rows = db.session.execute(select(*columns).order_by(*table.primary_key.columns)).all()
        digest.update(f"{table.name}:{sorted(map(repr, rows))}".encode())
    return digest.hexdigest()


TELEMETRY = {
    "feed_token": ("fetch_count", "last_fetched_at", "last_user_agent"),
    "api_token": ("last_used_at", "last_used_from"),
}


def classify(response) -> Outcome:
    response.close()  # a static file is streamed from an open file
    location = response.headers.get("Location", "")
    if response.status_code == 401 or (
        response.status_code == 302 and location.startswith("/login?")
    ):
        return Outcome.LOG_IN
    if response.status_code == 403:
        return Outcome.FORBIDDEN
    if response.status_code == 404:
        return Outcome.NOT_FOUND
    return Outcome.ALLOW


def routes(app):
    # The API last: its one allowed DELETE (the admin's) really ends the enrollment.
    order = lambda rule: (rule.endpoint.startswith("api_"), rule.rule)  # noqa: E731
    for rule in sorted(app.url_map.iter_rules(), key=order):
        for method in sorted(rule.methods & {"GET", "POST", "PATCH", "DELETE"}):
            yield rule, method


def call_api(client, method: str, url: str, secret: str | None):
    """An API call with the caller's token; a body no schema accepts, so that an allowed
    write stops at validation (422) and writes nothing."""
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    if method in ("POST", "PATCH"):
        return client.open(url, method=method, headers=headers, json={"no such field": 1})
    return client.open(url, method=method, headers=headers)


def test_every_route_answers_every_caller_as_the_table_says(app, world):
    people, values = world
    clients = {"anonymous": app.test_client()}
    tokens = {"anonymous": csrf_token_from(clients["anonymous"].get("/login").text)}
    for name, user in people.items():
        client = app.test_client()
        log_in(client, user.email)
        clients[name] = client
        tokens[name] = csrf_token_from(client.get("/account/notifications").text)
    secrets = {"anonymous": None} | {
        name: create_token(user, name="test", scope=Scope.WRITE, days=30, now=utcnow())[1]
        for name, user in people.items()
    }
    db.session.commit()
    mismatches = []
    for rule, method in routes(app):
        url = rule.build({arg: values[arg] for arg in rule.arguments}, append_unknown=False)[1]
        outcomes = EXPECTED_FOR.get(rule.rule) or EXPECTED[ROUTES[rule.endpoint]]
        for caller, wanted in zip(CALLERS, outcomes, strict=True):
            client = clients[caller]
            if rule.endpoint.startswith("api_"):
                before = database_fingerprint()
                response = call_api(client, method, url, secrets[caller])
                outcome = classify(response)
                if outcome != Outcome.ALLOW and database_fingerprint() != before:
                    mismatches.append(f"{method} {url} as {caller}: refused but wrote")
            elif method == "GET":
                outcome = classify(client.get(url))
            elif wanted == Outcome.ALLOW:
                # Let through, the request meets the CSRF check next (without a token: 400),
                # so nothing is done and the next caller finds the same objects.
                response = client.post(url)
                response.close()
                outcome = Outcome.ALLOW if response.status_code == 400 else classify(response)
                if response.status_code != 400:
                    mismatches.append(f"POST {url} as {caller}: {response.status_code}, not 400")
            else:
                before = database_fingerprint()
                outcome = classify(client.post(url, data={"csrf_token": tokens[caller]}))
                if database_fingerprint() != before:
                    mismatches.append(f"POST {url} as {caller}: refused but wrote")
            # An allowed caller may still get 404 from the view (an unknown mail file, a
            # series with no public feed): it was let in, the thing is not there.
            if outcome != wanted and not (wanted == Outcome.ALLOW and outcome == N):
                mismatches.append(f"{method} {url} as {caller}: {outcome}, table says {wanted}")
    assert mismatches == [], "\n".join(mismatches)
