"""Factories that return callables, so tests say only what matters to them."""

from datetime import datetime, timedelta
from itertools import count

from tests.helpers import PASSWORD
from webapp.db import db
from webapp.people.models import Role, Speaker, Unit
from webapp.people.services import (
    create_user,
)
from webapp.people.speakers import (
    create_speaker,
)
from webapp.series.enrollment import (
    enroll,
)
from webapp.series.models import EnrollmentSource, Series, SeriesStatus, Visibility
from webapp.sessions.lectures import (
    add_lecture,
)
from webapp.sessions.services import (
    create_session,
)


class Factories:
    def __init__(self, *, now: datetime):
        self.now = now
        self._numbers = count(1)

    def user(
        self,
        *roles: Role,
        email: str | None = None,
        phone: str | None = None,
        name: str | None = None,
        unit: Unit | None = None,
        password: str | None = PASSWORD,
        locale: str | None = None,
        timezone: str | None = None,
    ):
        n = next(self._numbers)
        if email is None and phone is None:
            email = f"user{n}@example.org"
        user = create_user(
            display_name=name or f"用户{n}",
            email=email,
            phone=phone,
            password=password,
            roles=roles or (Role.PARTICIPANT,),
            unit=unit,
            locale=locale,
            timezone=timezone,
        )
        db.session.commit()
        return user

    def series(
        self,
        *,
        title: str | None = None,
        organizers=(),
        timezone="Asia/Shanghai",
        status=SeriesStatus.PUBLISHED,
        visibility=Visibility.ENROLLED,
        sessions: int = 1,
        first_start: datetime | None = None,
        duration=timedelta(hours=2),
        participants=(),
    ) -> Series:
        n = next(self._numbers)
        series = Series(
            title=title or f"系列课程{n}",
            timezone=timezone,
            status=status,
            visibility=visibility,
            organizers=list(organizers),
        )
        db.session.add(series)
        start = first_start or self.now + timedelta(days=2)
        for day in range(sessions):
            session = create_session(
                series,
                starts_at=start + timedelta(days=day),
                ends_at=start + timedelta(days=day) + duration,
                title=f"第{day + 1}天",
                now=self.now,
            )
            add_lecture(session, title=f"讲座{n}-{day + 1}", speakers=[self.speaker()])
        for user in participants:
            enroll(user, series, source=EnrollmentSource.INDIVIDUAL, now=self.now)
        db.session.commit()
        return series

    def speaker(self, name: str | None = None) -> Speaker:
        n = next(self._numbers)
        return create_speaker(name or f"主讲人{n}", title="教授", affiliation="中国人民大学")
