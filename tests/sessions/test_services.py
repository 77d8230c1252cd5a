from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests.helpers import NOW
from webapp.db import db
from webapp.errors import (
    Conflict,
    InvalidInput,
    NeedsConfirmation,
)
from webapp.reminders.models import Notification, NotificationKind
from webapp.series.enrollment import (
    enroll,
)
from webapp.series.models import SeriesStatus
from webapp.series.services import (
    create_series,
)
from webapp.sessions.lectures import (
    add_lecture,
    move_lecture,
)
from webapp.sessions.models import ChangeKind, LectureSession, SessionStatus
from webapp.sessions.services import (
    cancel_session,
    create_repeated_sessions,
    create_session,
    delete_session,
    publish_series,
    reschedule_session,
    update_session,
)
from webapp.sessions.slots import (
    Frequency,
    plan_repeats,
)
from webapp.zones import (
    local_to_utc,
)

BERLIN = ZoneInfo("Europe/Berlin")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def organizer(make_user):
    from webapp.people.models import Role

    return make_user(Role.ORGANIZER, email="organizer@example.org")


@pytest.fixture
def draft(organizer):
    series = create_series(title="研修班", organizer=organizer, now=NOW)
    db.session.commit()
    return series


def test_repeat_helper_makes_three_daily_sessions_in_the_series_zone(app):
    slots = plan_repeats(date(2026, 12, 3), time(16), time(18), 3, Frequency.DAILY, "Asia/Shanghai")
    assert [(s.starts_at, s.ends_at) for s in slots] == [
        (utc(2026, 12, 3, 8), utc(2026, 12, 3, 10)),
        (utc(2026, 12, 4, 8), utc(2026, 12, 4, 10)),
        (utc(2026, 12, 5, 8), utc(2026, 12, 5, 10)),
    ]


def test_daily_berlin_series_stays_at_16_local_across_the_dst_change(app):
    slots = plan_repeats(date(2027, 3, 26), time(16), time(18), 4, Frequency.DAILY, "Europe/Berlin")
    local_starts = [s.starts_at.astimezone(BERLIN).strftime("%m-%d %H:%M") for s in slots]
    assert local_starts == ["03-26 16:00", "03-27 16:00", "03-28 16:00", "03-29 16:00"]
    assert [s.starts_at.hour for s in slots] == [15, 15, 14, 14]  # UTC shifts by an hour


def test_weekdays_only_skips_the_weekend(app):
    slots = plan_repeats(date(2026, 12, 4), time(9), time(10), 3, Frequency.WEEKDAYS, "UTC")
    assert [s.starts_at.date() for s in slots] == [
        date(2026, 12, 4),
        date(2026, 12, 7),
        date(2026, 12, 8),
    ]


def test_weekly_repeats_every_seven_days(app):
    slots = plan_repeats(date(2026, 12, 3), time(9), time(10), 2, Frequency.WEEKLY, "UTC")
    assert slots[1].starts_at - slots[0].starts_at == timedelta(days=7)


def test_a_local_time_skipped_by_dst_is_refused(app):
    with pytest.raises(InvalidInput, match="不存在"):
        local_to_utc(date(2027, 3, 28), time(2, 30), "Europe/Berlin")


def test_absurd_repeat_counts_are_refused(app):
    with pytest.raises(InvalidInput):
        plan_repeats(date(2026, 12, 3), time(9), time(10), 1000, Frequency.DAILY, "UTC")


def test_sessions_of_one_series_may_not_overlap(draft):
    create_session(draft, starts_at=utc(2026, 12, 3, 8), ends_at=utc(2026, 12, 3, 10))
    with pytest.raises(Conflict, match="与本系列的另一课次时间重叠"):
        create_session(draft, starts_at=utc(2026, 12, 3, 9), ends_at=utc(2026, 12, 3, 11))
    # Touching end to start is fine.
    create_session(draft, starts_at=utc(2026, 12, 3, 10), ends_at=utc(2026, 12, 3, 11))


def test_repeat_is_all_or_nothing(draft):
    create_session(draft, starts_at=utc(2026, 12, 5, 8), ends_at=utc(2026, 12, 5, 10))
    db.session.commit()
    slots = plan_repeats(date(2026, 12, 3), time(16), time(18), 3, Frequency.DAILY, "Asia/Shanghai")
    with pytest.raises(Conflict):
        create_repeated_sessions(
            draft, slots, title_template="第{n}次课", location=None, now=NOW, accept_warnings=True
        )
    db.session.rollback()
    assert len(db.session.scalars(select(LectureSession)).all()) == 1


def test_a_speaker_cannot_be_in_two_places_at_once(draft, organizer, factories):
    speaker = factories.speaker("刘金龙")
    first = create_session(draft, starts_at=utc(2026, 12, 3, 8), ends_at=utc(2026, 12, 3, 10))
    add_lecture(first, title="社区治理", speakers=[speaker])
    other_series = create_series(title="另一个班", organizer=organizer, now=NOW)
    other = create_session(
        other_series, starts_at=utc(2026, 12, 3, 9), ends_at=utc(2026, 12, 3, 11)
    )
    with pytest.raises(Conflict, match="刘金龙 在该时间已有安排"):
        add_lecture(other, title="乡村振兴", speakers=[speaker])


def test_lecture_own_times_decide_speaker_conflicts(draft, factories):
    speaker = factories.speaker("李文钊")
    session = create_session(draft, starts_at=utc(2026, 12, 3, 8), ends_at=utc(2026, 12, 3, 10))
    add_lecture(
        session,
        title="上半场",
        speakers=[speaker],
        starts_at=utc(2026, 12, 3, 8),
        ends_at=utc(2026, 12, 3, 9),
    )
    # The same speaker later in the same session is fine.
    add_lecture(
        session,
        title="下半场",
        speakers=[speaker],
        starts_at=utc(2026, 12, 3, 9),
        ends_at=utc(2026, 12, 3, 10),
    )
    with pytest.raises(Conflict):
        add_lecture(
            session,
            title="重叠",
            speakers=[speaker],
            starts_at=utc(2026, 12, 3, 8, 30),
            ends_at=utc(2026, 12, 3, 9, 30),
        )


def test_participant_in_two_overlapping_series_is_a_warning_not_an_error(
    draft, organizer, make_user
):
    cadre = make_user(name="王建国")
    other = create_series(title="另一个班", organizer=organizer, now=NOW)
    create_session(other, starts_at=utc(2026, 12, 3, 8), ends_at=utc(2026, 12, 3, 10))
    publish_series(other, now=NOW)
    enroll(cadre, other, now=NOW)
    enroll(cadre, draft, now=NOW)
    with pytest.raises(NeedsConfirmation) as caught:
        create_session(
            draft,
            starts_at=utc(2026, 12, 3, 9),
            ends_at=utc(2026, 12, 3, 11),
            accept_warnings=False,
        )
    assert "王建国" in " ".join(caught.value.warnings)
    session = create_session(
        draft, starts_at=utc(2026, 12, 3, 9), ends_at=utc(2026, 12, 3, 11), accept_warnings=True
    )
    assert session.id is not None


def test_publishing_marks_sessions_published_and_needs_a_session(draft):
    with pytest.raises(Conflict, match="请先添加至少一个课次"):
        publish_series(draft, now=NOW)
    create_session(draft, starts_at=utc(2026, 12, 3, 8), ends_at=utc(2026, 12, 3, 10))
    publish_series(draft, now=NOW)
    assert draft.status == SeriesStatus.PUBLISHED
    assert draft.sessions[0].published_at == NOW


def test_a_draft_session_can_be_deleted_a_published_one_only_cancelled(draft):
    session = create_session(draft, starts_at=utc(2026, 12, 3, 8), ends_at=utc(2026, 12, 3, 10))
    delete_session(session)
    session = create_session(draft, starts_at=utc(2026, 12, 3, 8), ends_at=utc(2026, 12, 3, 10))
    publish_series(draft, now=NOW)
    with pytest.raises(Conflict, match="取消"):
        delete_session(session)


def published_with_participants(draft, make_user, count=2):
    session = create_session(draft, starts_at=utc(2026, 12, 3, 8), ends_at=utc(2026, 12, 3, 10))
    add_lecture(session, title="讲座", starts_at=utc(2026, 12, 3, 8), ends_at=utc(2026, 12, 3, 9))
    publish_series(draft, now=NOW)
    users = [make_user() for _ in range(count)]
    for user in users:
        enroll(user, draft, now=NOW, notify=False)
    db.session.commit()
    return session, users


def test_reschedule_keeps_identity_raises_sequence_and_records_history(draft, make_user, organizer):
    session, users = published_with_participants(draft, make_user)
    session_id, sequence = session.id, session.sequence
    change = reschedule_session(
        session,
        starts_at=utc(2026, 12, 4, 8),
        ends_at=utc(2026, 12, 4, 10),
        by=organizer,
        now=NOW,
        reason="专家行程调整",
    )
    db.session.commit()
    assert session.id == session_id
    assert session.sequence == sequence + 1
    assert (change.kind, change.old_starts_at, change.new_starts_at) == (
        ChangeKind.RESCHEDULED,
        utc(2026, 12, 3, 8),
        utc(2026, 12, 4, 8),
    )
    assert change.changed_by == organizer and change.reason == "专家行程调整"
    # Lectures with their own times move along.
    assert session.lectures[0].starts_at == utc(2026, 12, 4, 8)
    notes = db.session.scalars(select(Notification)).all()
    assert {n.user_id for n in notes} == {u.id for u in users}
    assert all(n.kind == NotificationKind.RESCHEDULED and n.session_id == session_id for n in notes)
    assert notes[0].details["old_starts_at"] == "2026-12-03T08:00:00+00:00"


def test_cancel_keeps_the_session_with_a_reason_and_tells_participants(draft, make_user, organizer):
    session, users = published_with_participants(draft, make_user)
    with pytest.raises(InvalidInput):
        cancel_session(session, reason="  ", by=organizer, now=NOW)
    cancel_session(session, reason="疫情防控需要", by=organizer, now=NOW)
    db.session.commit()
    assert session.status == SessionStatus.CANCELLED and session.cancel_reason == "疫情防控需要"
    assert db.session.get(LectureSession, session.id) is not None
    kinds = [n.kind for n in db.session.scalars(select(Notification))]
    assert kinds == [NotificationKind.CANCELLED] * len(users)
    with pytest.raises(Conflict):
        reschedule_session(
            session,
            starts_at=utc(2026, 12, 5, 8),
            ends_at=utc(2026, 12, 5, 9),
            by=organizer,
            now=NOW,
        )


def test_published_session_time_changes_only_by_rescheduling(draft, make_user):
    session, _users = published_with_participants(draft, make_user)
    with pytest.raises(Conflict, match="改期"):
        update_session(
            session,
            title="新标题",
            location=None,
            starts_at=utc(2026, 12, 5, 8),
            ends_at=utc(2026, 12, 5, 10),
            accept_warnings=True,
        )


def test_reschedule_refuses_a_slot_that_no_longer_fits_its_lectures(draft, make_user, organizer):
    session, _users = published_with_participants(draft, make_user)
    with pytest.raises(InvalidInput, match="讲座"):
        reschedule_session(
            session,
            starts_at=utc(2026, 12, 4, 8),
            ends_at=utc(2026, 12, 4, 8, 30),
            by=organizer,
            now=NOW,
        )


def test_lectures_can_be_reordered(draft):
    session = create_session(draft, starts_at=utc(2026, 12, 3, 8), ends_at=utc(2026, 12, 3, 10))
    first = add_lecture(session, title="一")
    second = add_lecture(session, title="二")
    move_lecture(second, -1)
    db.session.expire_all()
    assert [lec.title for lec in db.session.get(LectureSession, session.id).lectures] == [
        "二",
        "一",
    ]
    assert first.position == 1
