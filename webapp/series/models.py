from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.db import db, utcnow
from webapp.enums import checked_enum
from webapp.people.models import Unit, User  # noqa: F401
from webapp.text import LineText, ParagraphText


class SeriesStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class Visibility(StrEnum):
    PUBLIC = "public"
    ENROLLED = "enrolled"  # only enrolled participants, organizers and admins


class EnrollmentStatus(StrEnum):
    ENROLLED = "enrolled"
    WAITLISTED = "waitlisted"
    CANCELLED = "cancelled"


class EnrollmentSource(StrEnum):
    INDIVIDUAL = "individual"
    UNIT = "unit"
    IMPORT = "import"
    SELF = "self"


series_organizer = sa.Table(
    "series_organizer",
    db.metadata,
    sa.Column("series_id", sa.ForeignKey("series.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True),
)


class Series(db.Model):
    __tablename__ = "series"
    __table_args__ = (
        sa.CheckConstraint("length(title) > 0", name="title_not_empty"),
        sa.CheckConstraint("capacity IS NULL OR capacity > 0", name="capacity_positive"),
        sa.CheckConstraint(
            "attendance_share BETWEEN 1 AND 100", name="attendance_share_is_a_percentage"
        ),
        sa.CheckConstraint(
            "attendance_late_minutes BETWEEN 0 AND 600", name="attendance_late_minutes_bounded"
        ),
        sa.CheckConstraint(
            "attendance_gap_minutes BETWEEN 0 AND 60", name="attendance_gap_minutes_bounded"
        ),
        sa.CheckConstraint(
            "makeup_days IS NULL OR makeup_days BETWEEN 1 AND 365", name="makeup_days_bounded"
        ),
        sa.CheckConstraint("presence_checks BETWEEN 0 AND 10", name="presence_checks_bounded"),
        sa.CheckConstraint("credit_minutes BETWEEN 10 AND 240", name="credit_minutes_bounded"),
        sa.CheckConstraint(
            "presence_answer_seconds BETWEEN 10 AND 600", name="presence_answer_seconds_bounded"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(LineText(200))
    description: Mapped[str] = mapped_column(ParagraphText, default="")
    timezone: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[SeriesStatus] = mapped_column(
        checked_enum(SeriesStatus, "series_status"), default=SeriesStatus.DRAFT
    )
    visibility: Mapped[Visibility] = mapped_column(
        checked_enum(Visibility, "visibility"), default=Visibility.ENROLLED
    )
    capacity: Mapped[int | None]  # None: no limit; beyond it participants wait in line
    allows_self_enrollment: Mapped[bool] = mapped_column(default=False)
    # Attendance rules (webapp/attendance/rules.py): present with this share of a session
    # (percent), late after this many minutes, gaps shorter than this bridged.
    attendance_share: Mapped[int] = mapped_column(default=80, server_default="80")
    attendance_late_minutes: Mapped[int] = mapped_column(default=10, server_default="10")
    attendance_gap_minutes: Mapped[int] = mapped_column(default=2, server_default="2")
    # Make-up by replay (补学): replay watched within this many days after a session counts
    # toward it; None: not allowed.
    makeup_days: Mapped[int | None]
    # Presence checks ("还在听课吗？") the player asks during a live session (0: off), and
    # how long an answer may take before the time until it counts as away.
    presence_checks: Mapped[int] = mapped_column(default=0, server_default="0")
    presence_answer_seconds: Mapped[int] = mapped_column(default=60, server_default="60")
    # Credit hours (学时): one for every this many minutes of a session attended (present,
    # late or made up); the closing workbook adds them up.
    credit_minutes: Mapped[int] = mapped_column(default=45, server_default="45")
    first_published_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    organizers: Mapped[list[User]] = relationship(secondary=series_organizer, order_by=User.id)
    sessions: Mapped[list["LectureSession"]] = relationship(  # noqa: F821
        back_populates="series",
        order_by="LectureSession.starts_at",
        cascade="all, delete-orphan",
    )

    @property
    def is_published(self) -> bool:
        return self.status == SeriesStatus.PUBLISHED

    def __repr__(self) -> str:
        return f"<Series {self.id} {self.title}>"


class Enrollment(db.Model):
    """A participant in a series; one row per pair, whatever happens to it later."""

    __tablename__ = "enrollment"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "series_id", name="uq_enrollment_user_id_series_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    series_id: Mapped[int] = mapped_column(
        sa.ForeignKey("series.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[EnrollmentStatus] = mapped_column(
        checked_enum(EnrollmentStatus, "enrollment_status"), default=EnrollmentStatus.ENROLLED
    )
    source: Mapped[EnrollmentSource] = mapped_column(
        checked_enum(EnrollmentSource, "enrollment_source"),
        default=EnrollmentSource.INDIVIDUAL,
    )
    # The waitlist is served in this order; also the time of (re-)enrollment.
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A unit liaison (联络员) confirmed this participant on the unit's roster.
    confirmed_at: Mapped[datetime | None]
    confirmed_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    series: Mapped[Series] = relationship()
    confirmed_by: Mapped[User | None] = relationship(foreign_keys=[confirmed_by_id])


class UnitQuota(db.Model):
    """How many seats of a series one unit (with its sub-units) may fill."""

    __tablename__ = "unit_quota"
    __table_args__ = (sa.CheckConstraint("quota >= 0", name="quota_not_negative"),)

    series_id: Mapped[int] = mapped_column(
        sa.ForeignKey("series.id", ondelete="CASCADE"), primary_key=True
    )
    unit_id: Mapped[int] = mapped_column(
        sa.ForeignKey("unit.id", ondelete="CASCADE"), primary_key=True
    )
    quota: Mapped[int]

    unit: Mapped["Unit"] = relationship()  # noqa: F821


class ImportBatch(db.Model):
    """An uploaded participant sheet between preview and confirmation."""

    __tablename__ = "import_batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(sa.ForeignKey("series.id", ondelete="CASCADE"))
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(LineText(255))
    rows: Mapped[list] = mapped_column(sa.JSON)  # parsed rows, see series.importing
    # Accounts the import created, for handing out their log-in links.
    created_user_ids: Mapped[list] = mapped_column(sa.JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None]
