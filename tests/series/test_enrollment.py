from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from tests.helpers import NOW
from webapp.db import db
from webapp.errors import Conflict, PermissionDenied
from webapp.people.models import Role, UnitKind
from webapp.people.units import (
    add_liaison,
    create_unit,
    is_liaison_for,
)
from webapp.reminders.models import Notification, NotificationKind
from webapp.series.access import (
    active_enrollment,
    can_view_series,
)
from webapp.series.enrollment import (
    enroll,
    enroll_unit,
    leave_series,
    promote_from_waitlist,
    remove_enrollment,
    self_enroll,
    set_unit_quota,
)
from webapp.series.models import EnrollmentStatus, Visibility
from webapp.series.rosters import (
    confirm_roster,
    unit_roster,
)
from webapp.series.services import (
    create_series,
    update_series,
)
from webapp.sessions.services import (
    create_session,
    publish_series,
)


@pytest.fixture
def series(make_user):
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = create_series(title="研修班", organizer=organizer, now=NOW, capacity=2)
    create_session(
        series,
        starts_at=datetime(2026, 12, 3, 8, tzinfo=UTC),
        ends_at=datetime(2026, 12, 3, 10, tzinfo=UTC),
    )
    publish_series(series, now=NOW)
    db.session.commit()
    return series


@pytest.fixture
def units(app):
    township = create_unit("卢沟桥乡", UnitKind.TOWNSHIP)
    village = create_unit("大瓦窑村", UnitKind.VILLAGE, township)
    branch = create_unit("第一临时党支部", UnitKind.BRANCH, village)
    other = create_unit("小瓦窑村", UnitKind.VILLAGE, township)
    db.session.commit()
    return {"township": township, "village": village, "branch": branch, "other": other}


def kinds_for(user):
    return [
        n.kind
        for n in db.session.scalars(
            select(Notification).where(Notification.user_id == user.id).order_by(Notification.id)
        )
    ]


def test_beyond_capacity_participants_wait_and_a_freed_seat_promotes_the_first(series, make_user):
    first, second, third, fourth = (make_user() for _ in range(4))
    assert enroll(first, series, now=NOW).status == EnrollmentStatus.ENROLLED
    assert enroll(second, series, now=NOW).status == EnrollmentStatus.ENROLLED
    waiting = enroll(third, series, now=datetime(2026, 12, 1, 3, tzinfo=UTC))
    later = enroll(fourth, series, now=datetime(2026, 12, 1, 4, tzinfo=UTC))
    assert (waiting.status, later.status) == (EnrollmentStatus.WAITLISTED,) * 2
    first_enrollment = active_enrollment(first, series)
    promoted = remove_enrollment(first_enrollment, now=NOW)
    assert [e.user for e in promoted] == [third]
    assert later.status == EnrollmentStatus.WAITLISTED
    assert kinds_for(third) == [NotificationKind.PROMOTED]
    assert kinds_for(second) == [NotificationKind.ENROLLED]


def test_raising_the_capacity_lets_waiting_people_in(series, make_user):
    people = [make_user() for _ in range(3)]
    for person in people:
        enroll(person, series, now=NOW)
    update_series(
        series,
        title=series.title,
        description="",
        timezone=series.timezone,
        visibility=series.visibility,
        capacity=3,
        allows_self_enrollment=False,
        now=NOW,
    )
    statuses = [active_enrollment(p, series).status for p in people]
    assert statuses == [EnrollmentStatus.ENROLLED] * 3


def test_duplicate_enrollment_is_refused_but_a_cancelled_one_comes_back(series, make_user):
    user = make_user()
    enrollment = enroll(user, series, now=NOW)
    with pytest.raises(Conflict):
        enroll(user, series, now=NOW)
    remove_enrollment(enrollment, now=NOW)
    again = enroll(user, series, now=NOW)
    assert again.id == enrollment.id and again.status == EnrollmentStatus.ENROLLED


def test_enrolling_a_unit_takes_its_sub_units_too(series, make_user, units):
    series.capacity = None
    members = [
        make_user(unit=units["village"]),
        make_user(unit=units["branch"]),
        make_user(unit=units["other"]),
    ]
    enroll(members[0], series, now=NOW)
    counts = enroll_unit(units["village"], series, now=NOW)
    assert counts == {"enrolled": 1, "waitlisted": 0, "already": 1}
    assert active_enrollment(members[2], series) is None


def test_unit_quota_sends_the_extra_members_to_the_waitlist(series, make_user, units):
    series.capacity = None
    set_unit_quota(series, units["village"], 1, now=NOW)
    a, b = make_user(unit=units["village"]), make_user(unit=units["branch"])
    outsider = make_user(unit=units["other"])
    assert enroll(a, series, now=NOW).status == EnrollmentStatus.ENROLLED
    assert enroll(b, series, now=NOW).status == EnrollmentStatus.WAITLISTED  # sub-unit counts
    assert enroll(outsider, series, now=NOW).status == EnrollmentStatus.ENROLLED
    set_unit_quota(series, units["village"], 2, now=NOW)
    assert active_enrollment(b, series).status == EnrollmentStatus.ENROLLED


def test_self_enrollment_only_where_the_series_allows_it(series, make_user):
    user = make_user()
    with pytest.raises(PermissionDenied):
        self_enroll(user, series, now=NOW)
    series.visibility = Visibility.PUBLIC
    series.allows_self_enrollment = True
    self_enroll(user, series, now=NOW)
    leave_series(user, series, now=NOW)
    assert active_enrollment(user, series) is None


def test_participants_enrolled_by_organizers_cannot_just_leave(series, make_user):
    user = make_user()
    enroll(user, series, now=NOW)
    with pytest.raises(PermissionDenied):
        leave_series(user, series, now=NOW)


def test_liaisons_see_and_confirm_their_units_roster(series, make_user, units):
    series.capacity = None
    liaison = make_user(unit=units["village"])
    add_liaison(units["village"], liaison)
    member = make_user(unit=units["branch"])
    stranger = make_user(unit=units["other"])
    enroll(member, series, now=NOW)
    enroll(stranger, series, now=NOW)
    assert is_liaison_for(liaison, units["branch"])
    assert not is_liaison_for(liaison, units["other"])
    assert [e.user for e in unit_roster(series, units["village"])] == [member]
    assert confirm_roster(series, units["village"], by=liaison, now=NOW) == 1
    roster = unit_roster(series, units["village"])
    assert roster[0].confirmed_at == NOW and roster[0].confirmed_by_id == liaison.id
    assert can_view_series(liaison, series)
    other_liaison = make_user(unit=units["other"])
    add_liaison(units["other"], other_liaison)
    remove_enrollment(active_enrollment(stranger, series), now=NOW)
    assert not can_view_series(other_liaison, series)  # nobody of theirs is in it


def test_waitlist_promotion_skips_someone_whose_unit_is_full(series, make_user, units):
    series.capacity = 2
    set_unit_quota(series, units["village"], 1, now=NOW)
    a = make_user(unit=units["village"])
    b = make_user(unit=units["other"])
    waiting_same_unit = make_user(unit=units["village"])
    waiting_other = make_user(unit=units["other"])
    for user in (a, b, waiting_same_unit, waiting_other):
        enroll(user, series, now=NOW)
    promoted = remove_enrollment(active_enrollment(b, series), now=NOW)
    assert [e.user for e in promoted] == [waiting_other]
    assert promote_from_waitlist(series, now=NOW) == []
