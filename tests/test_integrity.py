"""The database itself guards integrity; the services refuse the same with a readable message."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError, StatementError

from tests.helpers import NOW
from webapp.db import db
from webapp.errors import (
    Conflict,
    InvalidInput,
)
from webapp.people.models import User
from webapp.series.enrollment import (
    enroll,
)
from webapp.series.models import Enrollment, EnrollmentSource, Series
from webapp.sessions.lectures import (
    add_lecture,
)
from webapp.sessions.models import Lecture, LectureSession
from webapp.sessions.services import (
    create_session,
)


def test_database_refuses_a_session_that_ends_before_it_starts(make_series):
    series = make_series(sessions=0)
    with pytest.raises(IntegrityError):
        db.session.execute(
            insert(LectureSession).values(
                series_id=series.id,
                title="",
                starts_at=NOW,
                ends_at=NOW - timedelta(hours=1),
                status="scheduled",
                sequence=0,
                created_at=NOW,
                updated_at=NOW,
            )
        )
    db.session.rollback()


def test_service_refuses_a_session_that_ends_before_it_starts_in_chinese(make_series):
    series = make_series(sessions=0)
    with pytest.raises(InvalidInput) as caught:
        create_session(series, starts_at=NOW, ends_at=NOW - timedelta(hours=1))
    assert caught.value.message == "结束时间必须晚于开始时间。"
    assert caught.value.field == "ends_at"
    db.session.rollback()
    assert db.session.scalars(select(LectureSession)).all() == []


def test_database_refuses_a_duplicate_enrollment(make_series, make_user):
    user = make_user()
    series = make_series(participants=[user])
    with pytest.raises(IntegrityError):
        db.session.execute(
            insert(Enrollment).values(
                user_id=user.id,
                series_id=series.id,
                status="enrolled",
                source="individual",
                created_at=NOW,
                updated_at=NOW,
            )
        )
    db.session.rollback()


def test_service_refuses_a_duplicate_enrollment_with_a_readable_message(make_series, make_user):
    user = make_user(name="王建国")
    series = make_series(participants=[user])
    with pytest.raises(Conflict) as caught:
        enroll(user, series, source=EnrollmentSource.INDIVIDUAL, now=NOW)
    assert caught.value.message == "王建国 已报名本系列课程。"


def test_lecture_outside_its_session_is_refused(make_series):
    session = make_series().sessions[0]
    with pytest.raises(InvalidInput, match="讲座时间必须在所属课次的时间之内"):
        add_lecture(
            session,
            title="越界",
            starts_at=session.starts_at - timedelta(minutes=5),
            ends_at=session.starts_at + timedelta(minutes=30),
        )


def test_database_refuses_lecture_times_out_of_order(make_series):
    session = make_series().sessions[0]
    with pytest.raises(IntegrityError):
        db.session.execute(
            insert(Lecture).values(
                session_id=session.id, title="x", position=9, starts_at=NOW, ends_at=None
            )
        )
    db.session.rollback()


def test_foreign_keys_are_enforced(app):
    with pytest.raises(IntegrityError):
        db.session.execute(insert(Lecture).values(session_id=999999, title="x", position=0))
    db.session.rollback()


def test_database_refuses_an_unknown_status(make_series):
    series = make_series(sessions=0)
    with pytest.raises((IntegrityError, StatementError)):
        db.session.execute(
            text("UPDATE series SET status = 'deleted' WHERE id = :id"), {"id": series.id}
        )
        db.session.flush()
    db.session.rollback()


def test_database_refuses_an_account_without_email_or_phone(app):
    with pytest.raises(IntegrityError):
        db.session.execute(
            insert(User).values(display_name="无名", is_active=True, login_epoch=0, created_at=NOW)
        )
    db.session.rollback()


def test_database_refuses_a_duplicate_email(make_user):
    make_user(email="same@example.org")
    other = make_user(email="other@example.org")
    with pytest.raises(IntegrityError):
        db.session.execute(update(User).where(User.id == other.id).values(email="same@example.org"))
    db.session.rollback()


def test_times_are_stored_in_utc_and_come_back_aware(make_series):
    shanghai_four_pm = (
        datetime(2026, 12, 3, 16, 0)
        .astimezone(UTC)
        .replace(year=2026, month=12, day=3, hour=8, minute=0)
    )
    series = make_series(sessions=1, first_start=shanghai_four_pm)
    series_id = series.id
    db.session.expire_all()
    reloaded = db.session.get(Series, series_id).sessions[0]
    assert reloaded.starts_at == datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    assert reloaded.starts_at.tzinfo is not None
    raw = db.session.execute(
        text("SELECT starts_at FROM lecture_session WHERE id = :id"), {"id": reloaded.id}
    ).scalar_one()
    assert str(raw).startswith("2026-12-03 08:00:00")


def test_naive_datetimes_are_refused(make_series):
    series = make_series(sessions=0)
    with pytest.raises(StatementError, match="naive datetime"):
        create_session(
            series, starts_at=datetime(2026, 12, 3, 8), ends_at=datetime(2026, 12, 3, 10)
        )
    db.session.rollback()


def test_sqlite_runs_with_foreign_keys_and_wal(app):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas; PostgreSQL always enforces foreign keys")
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
