from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.attendance.rules import Status
from webapp.db import db, utcnow
from webapp.enums import checked_enum
from webapp.people.models import User
from webapp.text import ParagraphText


class AttendanceOverride(db.Model):
    """A status set by hand (an organizer or an admin) with its reason; appended, never
    changed: the latest for a participant and session counts, the rest is the audit trail.
    A row without a status hands the record back to the rules."""

    __tablename__ = "attendance_override"
    __table_args__ = (
        sa.CheckConstraint("length(reason) > 0", name="reason_not_empty"),
        sa.Index("ix_attendance_override_session_id_user_id", "session_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("lecture_session.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    status: Mapped[Status | None] = mapped_column(checked_enum(Status, "attendance_status"))
    reason: Mapped[str] = mapped_column(ParagraphText)
    set_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)

    set_by: Mapped[User | None] = relationship(foreign_keys=[set_by_id])


class ExcuseNote(db.Model):
    """A participant's excuse for a session (请假说明); an organizer accepts it (the status
    becomes excused, with the note as the reason) or rejects it."""

    __tablename__ = "excuse_note"
    __table_args__ = (
        sa.CheckConstraint("length(text) > 0", name="text_not_empty"),
        sa.Index("ix_excuse_note_session_id_user_id", "session_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("lecture_session.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(ParagraphText)
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    accepted: Mapped[bool | None]  # None: waiting for an organizer
    decided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])


class AttendanceFinal(db.Model):
    """A session whose attendance is final: its records are frozen in AttendanceRecord.
    Events that come later are kept and change the result only when an organizer
    recomputes it."""

    __tablename__ = "attendance_final"

    session_id: Mapped[int] = mapped_column(
        sa.ForeignKey("lecture_session.id", ondelete="CASCADE"), primary_key=True
    )
    finalized_at: Mapped[datetime]
    by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))

    by: Mapped[User | None] = relationship()


class AttendanceRecord(db.Model):
    """One participant's frozen record of a final session (see rules.Record)."""

    __tablename__ = "attendance_record"

    session_id: Mapped[int] = mapped_column(
        sa.ForeignKey("lecture_session.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[Status] = mapped_column(checked_enum(Status, "attendance_record_status"))
    first_join: Mapped[datetime | None]  # the start of the first interval (kept apart so the
    last_leave: Mapped[datetime | None]  # series' reports need not read the intervals)
    seconds: Mapped[float]
    share: Mapped[float]
    makeup_seconds: Mapped[float] = mapped_column(default=0.0)
    # The merged intervals inside the session: [[start, end], …] as ISO text.
    intervals: Mapped[list] = mapped_column(sa.JSON)
    # Away after an unanswered presence check (cut out of the intervals), the same way.
    away: Mapped[list] = mapped_column(sa.JSON, default=list, server_default=sa.text("'[]'"))


class AttendanceImport(db.Model):
    """A platform's participant export, read and matched, waiting for the organizer to
    confirm the preview (then applied once)."""

    __tablename__ = "attendance_import"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        sa.ForeignKey("lecture_session.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(sa.String(200))
    platform: Mapped[str] = mapped_column(sa.String(40))
    rows: Mapped[list] = mapped_column(sa.JSON)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    applied_at: Mapped[datetime | None]
