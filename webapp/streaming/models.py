from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.db import db, utcnow
from webapp.enums import checked_enum
from webapp.text import LineText


class Stream(db.Model):
    """A self-hosted session's stream. `name` is public (it names the playlist, the segments
    and the recordings); the publish key is derived from the app's secret and `key_salt`, so
    it is stored nowhere, and a new salt revokes the old key at once."""

    __tablename__ = "stream"

    session_id: Mapped[int] = mapped_column(
        sa.ForeignKey("lecture_session.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(sa.String(32), unique=True)
    key_salt: Mapped[str] = mapped_column(sa.String(32))
    key_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    key_changed_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user.id", ondelete="SET NULL")
    )
    # The organizer ended the session by hand: no publish is taken until they mark it live
    # again (a studio's encoder that reconnects by itself stays off the air).
    stopped_at: Mapped[datetime | None]


class Broadcast(db.Model):
    """One broadcast of a stream: from the first accepted publish until the publisher has
    been gone longer than the reconnect grace period. A studio that drops for 20 s and
    comes back stays one broadcast."""

    __tablename__ = "broadcast"
    __table_args__ = (sa.Index("ix_broadcast_session_id_started_at", "session_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("lecture_session.id", ondelete="CASCADE"))
    started_at: Mapped[datetime]
    # The publisher's connection now (nginx's client id), None while it is away.
    client_id: Mapped[str | None] = mapped_column(sa.String(20))
    last_seen_at: Mapped[datetime]  # the latest publish or update callback
    dropped_at: Mapped[datetime | None]  # the publisher left; the grace period runs
    reconnects: Mapped[int] = mapped_column(default=0)
    ended_at: Mapped[datetime | None]


class RecordingState(StrEnum):
    RECORDED = "recorded"  # nginx closed the FLV file; it is to be made playable
    READY = "ready"  # remuxed to MP4 with the index in front: replay works
    FAILED = "failed"


class Recording(db.Model):
    """A file nginx-rtmp recorded. Paths are relative to RECORDINGS_FOLDER and made of the
    stream's public name, never its key."""

    __tablename__ = "recording"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        sa.ForeignKey("lecture_session.id", ondelete="CASCADE"), index=True
    )
    source_path: Mapped[str] = mapped_column(LineText(300))
    path: Mapped[str | None] = mapped_column(LineText(300))  # the playable MP4
    state: Mapped[RecordingState] = mapped_column(
        checked_enum(RecordingState, "recording_state"), default=RecordingState.RECORDED
    )
    error: Mapped[str | None] = mapped_column(LineText(500))
    recorded_at: Mapped[datetime]
    seconds: Mapped[float | None]
    size: Mapped[int | None] = mapped_column(sa.BigInteger)


class ViewerSample(db.Model):
    """How many watched a live session at one moment (the worker counts every 30 s while it
    is live): the organizer's viewers-over-time chart and the peak."""

    __tablename__ = "viewer_sample"

    session_id: Mapped[int] = mapped_column(
        sa.ForeignKey("lecture_session.id", ondelete="CASCADE"), primary_key=True
    )
    at: Mapped[datetime] = mapped_column(primary_key=True)
    viewers: Mapped[int]
