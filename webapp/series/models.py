from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.db import db, utcnow
from webapp.enums import checked_enum
from webapp.people.models import User


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
    __table_args__ = (sa.CheckConstraint("length(title) > 0", name="title_not_empty"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    timezone: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[SeriesStatus] = mapped_column(
        checked_enum(SeriesStatus, "series_status"), default=SeriesStatus.DRAFT
    )
    visibility: Mapped[Visibility] = mapped_column(
        checked_enum(Visibility, "visibility"), default=Visibility.ENROLLED
    )
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
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    user: Mapped[User] = relationship()
    series: Mapped[Series] = relationship()
