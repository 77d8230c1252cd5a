from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.db import db, utcnow
from webapp.enums import checked_enum
from webapp.people.models import Speaker, User
from webapp.series.models import Series
from webapp.text import LineText, ParagraphText


class SessionStatus(StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"
    CANCELLED = "cancelled"


class StreamMode(StrEnum):
    EXTERNAL = "external"  # a meeting or live room elsewhere: the join link leads there
    HOSTED = "hosted"  # RTMP ingest through the product's nginx-rtmp, watched in its player


class LectureSession(db.Model):
    """One time slot of a series, e.g. day 1, 16:00–18:00 (named so as not to clash with
    the database session)."""

    __tablename__ = "lecture_session"
    __table_args__ = (
        sa.CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        sa.CheckConstraint("sequence >= 0", name="sequence_not_negative"),
        sa.Index("ix_lecture_session_series_id_starts_at", "series_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(sa.ForeignKey("series.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(LineText(200), default="")
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[SessionStatus] = mapped_column(
        checked_enum(SessionStatus, "session_status"), default=SessionStatus.SCHEDULED
    )
    # iCalendar SEQUENCE: raised on every change that calendar clients must pick up.
    sequence: Mapped[int] = mapped_column(default=0)
    location: Mapped[str | None] = mapped_column(LineText(200))
    # Where participants join (a live room or a meeting link); the join button leads there.
    join_url: Mapped[str | None] = mapped_column(LineText(1000))
    stream_mode: Mapped[StreamMode] = mapped_column(
        checked_enum(StreamMode, "stream_mode"), default=StreamMode.EXTERNAL
    )
    # When the broadcast really started and ended (the stream's first publish, or the
    # organizer's "live now"; its end after the reconnect grace period, or by hand).
    live_started_at: Mapped[datetime | None]
    live_ended_at: Mapped[datetime | None]
    # Set when participants could first see the session; from then on it is never deleted.
    published_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(ParagraphText)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    series: Mapped[Series] = relationship(back_populates="sessions")
    lectures: Mapped[list["Lecture"]] = relationship(
        back_populates="session",
        order_by="Lecture.position",
        cascade="all, delete-orphan",
    )

    changes: Mapped[list["SessionChange"]] = relationship(
        back_populates="session",
        order_by="SessionChange.changed_at.desc()",
        cascade="all, delete-orphan",
    )

    @property
    def is_cancelled(self) -> bool:
        return self.status == SessionStatus.CANCELLED

    @property
    def is_published(self) -> bool:
        return self.published_at is not None

    def __repr__(self) -> str:
        return f"<LectureSession {self.id} {self.starts_at:%Y-%m-%d %H:%M}Z>"


lecture_speaker = sa.Table(
    "lecture_speaker",
    db.metadata,
    sa.Column("lecture_id", sa.ForeignKey("lecture.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("speaker_id", sa.ForeignKey("speaker.id", ondelete="RESTRICT"), primary_key=True),
)


class Lecture(db.Model):
    """An agenda item inside a session, with its speakers and optionally its own times."""

    __tablename__ = "lecture"
    __table_args__ = (
        sa.CheckConstraint("length(title) > 0", name="title_not_empty"),
        sa.CheckConstraint(
            "(starts_at IS NULL AND ends_at IS NULL) "
            "OR (starts_at IS NOT NULL AND ends_at IS NOT NULL AND ends_at > starts_at)",
            name="own_times_ordered",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        sa.ForeignKey("lecture_session.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(LineText(200))
    position: Mapped[int] = mapped_column(default=0)
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]

    session: Mapped[LectureSession] = relationship(back_populates="lectures")
    speakers: Mapped[list[Speaker]] = relationship(secondary=lecture_speaker, order_by=Speaker.id)


class ChangeKind(StrEnum):
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"


class SessionChange(db.Model):
    """The history of a published session: who moved or cancelled it, when, old → new."""

    __tablename__ = "session_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        sa.ForeignKey("lecture_session.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[ChangeKind] = mapped_column(checked_enum(ChangeKind, "change_kind"))
    changed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    changed_at: Mapped[datetime]
    old_starts_at: Mapped[datetime]
    old_ends_at: Mapped[datetime]
    new_starts_at: Mapped[datetime]
    new_ends_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(ParagraphText)
    sequence: Mapped[int]  # the session's sequence number after the change
    # When participants were first told of it (a change notice went out, reminders announce
    # `change_notice_composed`); None while the notice waits or if nobody could be told.
    announced_at: Mapped[datetime | None]

    session: Mapped[LectureSession] = relationship(back_populates="changes")
    changed_by: Mapped[User | None] = relationship()


class SessionJoin(db.Model):
    """A participant pressed “join” for a session (the first and the latest time)."""

    __tablename__ = "session_join"

    session_id: Mapped[int] = mapped_column(
        sa.ForeignKey("lecture_session.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True
    )
    first_joined_at: Mapped[datetime]
    last_joined_at: Mapped[datetime]


class AttendanceSource(StrEnum):
    JOIN = "join"  # the product's join button (an external room)
    RTMP = "rtmp"  # an RTMP viewer (nginx-rtmp on_play / on_play_done)
    PLAYER = "player"  # the product's HLS player (heartbeats)
    CHECK_IN = "check_in"  # a room check-in code
    IMPORT = "import"  # a platform's participant export
    REPLAY = "replay"  # the product's player, watching a recording (apart from live time)


class AttendanceKind(StrEnum):
    JOIN = "join"
    LEAVE = "leave"
    HEARTBEAT = "heartbeat"
    CHECK = "check"  # the player asked "still listening?" (a presence check)
    ANSWER = "answer"  # … and the participant answered


class AttendanceEvent(db.Model):
    """One thing a participant did in a session, as it happened: appended, never changed.
    Attendance reports are worked out from these (who, how long, when)."""

    __tablename__ = "attendance_event"
    __table_args__ = (
        # Each participant's events of a session in time order: the attendance rules read
        # them in this order without sorting (see attendance/islands.py).
        # (On PostgreSQL with the source and kind beside them: read from the index alone.)
        sa.Index(
            "ix_attendance_event_session_id_user_id_at",
            "session_id",
            "user_id",
            "at",
            postgresql_include=["source", "kind"],
        ),
        sa.Index("ix_attendance_event_session_id_at", "session_id", "at"),
    )

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True
    )
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("lecture_session.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    source: Mapped[AttendanceSource] = mapped_column(
        checked_enum(AttendanceSource, "attendance_source")
    )
    kind: Mapped[AttendanceKind] = mapped_column(checked_enum(AttendanceKind, "attendance_kind"))
    at: Mapped[datetime]
