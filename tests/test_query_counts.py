"""Every list page runs a fixed number of SQL statements, whatever the number of rows: the
same count with 1 row as with 200."""

from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from tests.conftest import empty_all_tables
from tests.helpers import NOW, QueryCounter, count_queries, log_in
from webapp.db import db
from webapp.people.models import Role, Unit, UnitKind, User
from webapp.people.speakers import (
    create_speaker,
)
from webapp.people.units import (
    add_liaison,
    create_unit,
)
from webapp.reminders.models import (
    Channel,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    ReminderRule,
)
from webapp.series.models import Enrollment, EnrollmentSource, EnrollmentStatus
from webapp.sessions.lectures import (
    add_lecture,
)
from webapp.sessions.services import (
    create_session,
)


def add_people(count: int, *, unit: Unit | None = None) -> list[User]:
    start = db.session.scalar(select(db.func.count()).select_from(User))
    db.session.execute(
        insert(User),
        [
            {
                "email": f"many{start + n}@example.org",
                "display_name": f"学员{start + n}",
                "unit_id": unit.id if unit else None,
                "is_active": True,
                "email_reminders": True,
                "login_epoch": 0,
                "created_at": NOW,
            }
            for n in range(count)
        ],
    )
    return db.session.scalars(
        select(User).where(User.email.like("many%")).order_by(User.id.desc()).limit(count)
    ).all()


def enroll_all(series, users) -> None:
    db.session.execute(
        insert(Enrollment),
        [
            {
                "user_id": user.id,
                "series_id": series.id,
                "status": EnrollmentStatus.ENROLLED,
                "source": EnrollmentSource.IMPORT,
                "enrolled_at": NOW,
                "created_at": NOW,
                "updated_at": NOW,
            }
            for user in users
        ],
    )


def grow_participants(world, count):
    enroll_all(world["series"], add_people(count, unit=world["unit"]))


def grow_sessions(world, count):
    series = world["series"]
    last = max(session.ends_at for session in series.sessions)
    for n in range(count):
        session = create_session(
            series,
            starts_at=last + timedelta(days=n + 1),
            ends_at=last + timedelta(days=n + 1, hours=2),
            title=f"加课{n}",
            now=NOW,
        )
        add_lecture(session, title=f"讲座{n}", speakers=[create_speaker(f"主讲人{n}")])


def grow_speakers(world, count):
    for n in range(count):
        create_speaker(f"讲师{n}", title="教授", affiliation="党校")


def grow_users(world, count):
    add_people(count)


def grow_units(world, count):
    people = add_people(count)
    for n, person in enumerate(people):
        unit = create_unit(f"第{n}村", UnitKind.VILLAGE, world["unit"])
        add_liaison(unit, person)


def grow_liaison_units(world, count):
    admin = world["series"].organizers[0]
    for n in range(count):
        add_liaison(create_unit(f"第{n}组", UnitKind.BRANCH, world["unit"]), admin)


def grow_failed_deliveries(world, count):
    people = add_people(count)
    enroll_all(world["series"], people)
    session = world["series"].sessions[0]
    for status in (DeliveryStatus.FAILED, DeliveryStatus.MISSED):
        db.session.execute(
            insert(Delivery),
            [
                {
                    "key": f"{status.value}:{person.id}",
                    "kind": DeliveryKind.REMINDER,
                    "channel": Channel.EMAIL,
                    "user_id": person.id,
                    "series_id": world["series"].id,
                    "session_id": session.id,
                    "due_at": NOW,
                    "status": status,
                    "last_error": "550 mailbox unavailable",
                    "taken_from": "worker-1",
                    "created_at": NOW,
                }
                for person in people
            ],
        )


def grow_rules(world, count):
    db.session.add_all(
        ReminderRule(series_id=world["series"].id, minutes_before=minutes)
        for minutes in range(1, count + 1)
    )


def grow_schedule(world, count):
    grow_sessions(world, count)


PAGES = {
    "participants": ("/series/{series}/participants", grow_participants),
    "roster": ("/series/{series}/units/{unit}/roster", grow_participants),
    "manage": ("/series/{series}/manage", grow_sessions),
    "series page": ("/series/{series}", grow_sessions),
    "my schedule": ("/my/schedule", grow_schedule),
    "home": ("/", grow_schedule),
    "speakers": ("/speakers", grow_speakers),
    "users": ("/admin/users", grow_users),
    "units": ("/admin/units", grow_units),
    "status": ("/admin/status", grow_failed_deliveries),
    "reminder rules": ("/series/{series}/reminders", grow_rules),
    "calendar links": ("/account/calendar", grow_liaison_units),
}


def page_queries(app, make_user, make_series, page: str, rows: int) -> int:
    path, grow = PAGES[page]
    unit = create_unit("大瓦窑村", UnitKind.VILLAGE)
    admin = make_user(Role.ADMIN, Role.ORGANIZER, email="admin@example.org", unit=unit)
    series = make_series(organizers=[admin], participants=[admin])
    world = {"series": series, "unit": unit}
    grow(world, rows)
    db.session.commit()
    client = app.test_client()
    log_in(client, admin.email)
    return count_queries(client, path.format(series=series.id, unit=unit.id))


@pytest.mark.parametrize("page", sorted(PAGES))
def test_a_list_page_runs_the_same_queries_for_1_and_200_rows(app, make_user, make_series, page):
    one = page_queries(app, make_user, make_series, page, 1)
    db.session.remove()
    empty_all_tables()
    many = page_queries(app, make_user, make_series, page, 200)
    assert many == one, f"{page}: {one} statements with 1 row, {many} with 200"


@pytest.mark.parametrize("lectures", [0, 2])
def test_a_cold_feed_render_runs_the_same_statements_for_5_and_60_events(
    app, make_user, make_series, lectures
):
    """Rendering a feed with nothing stored reads what it needs in a fixed number of queries
    and stores the new fragments in one statement (not a SELECT and a write per event)."""
    from sqlalchemy import delete, func

    from webapp.feeds.content import render_feed
    from webapp.feeds.models import EventFragment

    def statements(sessions: int) -> tuple[int, int]:
        speakers = [create_speaker(f"主讲人{sessions}-{n}", title="教授") for n in range(lectures)]
        series = make_series(sessions=sessions, organizers=[make_user(Role.ORGANIZER)])
        for session in series.sessions:
            for n in range(lectures):
                add_lecture(session, title=f"讲座{n}", speakers=[speakers[n]])
        db.session.execute(delete(EventFragment))
        db.session.commit()
        db.session.expire_all()
        with QueryCounter(db.engine) as counter:
            body = render_feed(f"series:{series.id}", now=NOW)
        stored = db.session.scalar(select(func.count()).select_from(EventFragment))
        assert body.count(b"BEGIN:VEVENT") == sessions == stored
        writes = [s for s in counter.statements if s.lstrip().upper().startswith("INSERT")]
        return counter.count, len(writes)

    few, many = statements(5), statements(60)
    assert few == many, (few, many)
    assert many[1] == 1  # the 60 fragments in one statement
