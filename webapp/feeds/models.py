from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.db import db, utcnow
from webapp.enums import checked_enum
from webapp.people.models import User


class FeedKind(StrEnum):
    PERSONAL = "personal"  # every session of every series the user is enrolled in
    SERIES = "series"  # one series (public ones also without a token)
    UNIT = "unit"  # every session a unit's members are enrolled in (liaisons, admins)
    ORGANIZER = "organizer"  # every session of the series the user organizes


class FeedToken(db.Model):
    """A private subscription link. The link's token is derived from the nonce with the
    server's secret key and never stored; the database holds only its SHA-256 (to find the
    row) and the nonce (so the owner can see the link again). Rotating replaces the nonce,
    revoking ends it: either way the old link answers 404."""

    __tablename__ = "feed_token"
    __table_args__ = (sa.Index("ix_feed_token_user_id_kind", "user_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    kind: Mapped[FeedKind] = mapped_column(checked_enum(FeedKind, "feed_kind"))
    target_id: Mapped[int | None]  # the series or unit, for those kinds
    nonce: Mapped[str] = mapped_column(sa.String(64))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_fetched_at: Mapped[datetime | None]
    last_user_agent: Mapped[str | None] = mapped_column(sa.String(300))
    fetch_count: Mapped[int] = mapped_column(default=0)

    user: Mapped[User] = relationship()


class FeedDocument(db.Model):
    """A rendered feed, served as it is. `stale_since` is set when something in it changed;
    the worker renders it again, and a request renders it itself once it has waited too
    long (no worker running)."""

    __tablename__ = "feed_document"

    feed_key: Mapped[str] = mapped_column(sa.String(50), primary_key=True)  # e.g. user:12
    body: Mapped[bytes] = mapped_column(sa.LargeBinary)
    etag: Mapped[str] = mapped_column(sa.String(64))
    last_modified: Mapped[datetime]
    rendered_at: Mapped[datetime]
    stale_since: Mapped[datetime | None] = mapped_column(index=True)
    # The last render failed (its content made the builder fail): the stored body stays as
    # it was, the error is shown on /admin/status, and an admin retries it by hand.
    failed_at: Mapped[datetime | None]
    publish_error: Mapped[str | None] = mapped_column(sa.Text)


class EventFragment(db.Model):
    """One session's VEVENT as the icalendar library rendered it, reused by every feed that
    holds the session until the session changes."""

    __tablename__ = "event_fragment"

    session_id: Mapped[int] = mapped_column(
        sa.ForeignKey("lecture_session.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[str] = mapped_column(sa.String(64))  # what it was rendered from
    body: Mapped[bytes] = mapped_column(sa.LargeBinary)
