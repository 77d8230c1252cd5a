from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.db import db, utcnow
from webapp.enums import checked_enum
from webapp.text import LineText, ParagraphText


class Role(StrEnum):
    ADMIN = "admin"
    ORGANIZER = "organizer"
    PARTICIPANT = "participant"


class UnitKind(StrEnum):
    TOWNSHIP = "township"
    OFFICE = "office"
    COMMUNITY = "community"
    VILLAGE = "village"
    BRANCH = "branch"
    OTHER = "other"


# Liaisons (联络员) see and confirm their unit's roster for a series.
unit_liaison = sa.Table(
    "unit_liaison",
    db.metadata,
    sa.Column("unit_id", sa.ForeignKey("unit.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True),
)


class Unit(db.Model):
    """An organisation in a tree: township → community, village or party branch."""

    __tablename__ = "unit"
    __table_args__ = (
        sa.UniqueConstraint("parent_id", "name", name="uq_unit_parent_id_name"),
        sa.CheckConstraint("parent_id IS NULL OR parent_id <> id", name="not_own_parent"),
        sa.CheckConstraint("length(name) > 0", name="name_not_empty"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("unit.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(LineText(200))
    kind: Mapped[UnitKind] = mapped_column(checked_enum(UnitKind, "unit_kind"))
    # A deactivated unit keeps its members and history but is offered nowhere.
    is_active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    parent: Mapped["Unit | None"] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list["Unit"]] = relationship(back_populates="parent", order_by="Unit.id")
    liaisons: Mapped[list["User"]] = relationship(secondary=unit_liaison, order_by="User.id")

    def __repr__(self) -> str:
        return f"<Unit {self.id} {self.name}>"


class User(UserMixin, db.Model):
    """An account; logs in with its email address or its mobile number."""

    __tablename__ = "user"
    __table_args__ = (
        sa.CheckConstraint("email IS NOT NULL OR phone IS NOT NULL", name="email_or_phone"),
        sa.CheckConstraint("length(display_name) > 0", name="display_name_not_empty"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str | None] = mapped_column(sa.String(254), unique=True)
    phone: Mapped[str | None] = mapped_column(sa.String(20), unique=True)  # E.164
    display_name: Mapped[str] = mapped_column(LineText(100))
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    locale: Mapped[str | None] = mapped_column(sa.String(10))  # None: follow the browser
    timezone: Mapped[str | None] = mapped_column(sa.String(64))  # None: the site default
    unit_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("unit.id", ondelete="SET NULL"), index=True
    )
    job_title: Mapped[str | None] = mapped_column(LineText(100))
    is_active: Mapped[bool] = mapped_column(default=True)
    email_reminders: Mapped[bool] = mapped_column(default=True)  # reminders and notices by mail
    # Personal channels besides email the person turned off (comma-separated: sms,wecom,...).
    muted_channels: Mapped[str | None] = mapped_column(sa.String(100))
    feed_alarm_minutes: Mapped[int | None]  # an alarm in their calendar feed; None: none
    # Raised on every password change so that other logged-in sessions end.
    login_epoch: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]

    unit: Mapped[Unit | None] = relationship()
    role_rows: Mapped[list["UserRole"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def roles(self) -> set[Role]:
        return {row.role for row in self.role_rows}

    def has_role(self, role: Role) -> bool:
        return role in self.roles

    @property
    def is_admin(self) -> bool:
        return self.has_role(Role.ADMIN)

    @property
    def is_organizer(self) -> bool:
        return self.has_role(Role.ORGANIZER)

    # The device's log-in session token, set while a request is logged in (see get_id).
    login_session_token = None  # str | None; a plain attribute, not a column

    def get_id(self) -> str:
        """What the session cookie holds: the account, its login epoch and the device's
        log-in session (people.services.load_user_for_session checks all three)."""
        return f"{self.id}.{self.login_epoch}.{self.login_session_token or ''}"

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email or self.phone}>"


class UserRole(db.Model):
    __tablename__ = "user_role"

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[Role] = mapped_column(checked_enum(Role, "role"), primary_key=True)

    user: Mapped[User] = relationship(back_populates="role_rows")


class Speaker(db.Model):
    """A lecturer; may or may not have an account."""

    __tablename__ = "speaker"
    __table_args__ = (sa.CheckConstraint("length(name) > 0", name="name_not_empty"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(LineText(100))
    title: Mapped[str | None] = mapped_column(LineText(100))
    affiliation: Mapped[str | None] = mapped_column(LineText(200))
    bio: Mapped[str | None] = mapped_column(ParagraphText)
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user.id", ondelete="SET NULL"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User | None] = relationship()

    def __repr__(self) -> str:
        return f"<Speaker {self.id} {self.name}>"


class LoginToken(db.Model):
    """A one-time log-in link for a new account; only its hash is stored."""

    __tablename__ = "login_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship()


class LoginSession(db.Model):
    """One log-in on one device. The cookie carries a random token whose hash is stored
    here; logging out ends the row, so a copy of the cookie stops working at once."""

    __tablename__ = "login_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class LoginAttempt(db.Model):
    """Failed log-ins counted per account name and per client address (`key`), so that
    guessing is slowed down and then locked for a while, on every web process alike."""

    __tablename__ = "login_attempt"

    key: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failed_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]


class LoginCodePurpose(StrEnum):
    LOGIN = "login"  # 验证码登录
    RESET = "reset"  # forgot password: the code lets one set a new password


class LoginCode(db.Model):
    """A six-digit code sent by SMS to sign in or to set a new password; only its hash is
    stored. Valid for a few minutes and a few tries; one code per number at a time."""

    __tablename__ = "login_code"
    __table_args__ = (
        sa.Index("ix_login_code_phone_created_at", "phone", "created_at"),
        sa.CheckConstraint("tries >= 0", name="tries_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(sa.String(20))
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    purpose: Mapped[LoginCodePurpose] = mapped_column(
        checked_enum(LoginCodePurpose, "login_code_purpose")
    )
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    client: Mapped[str] = mapped_column(sa.String(64))  # the client address that asked
    tries: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    sent: Mapped[bool] = mapped_column(default=False)  # False: no SMS went (no such number)
    cost: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserChange(db.Model):
    """Who changed which account, when, and what (field: [old, new])."""

    __tablename__ = "user_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    changed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(sa.String(30))  # edited, deactivated, link_sent ...
    changes: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    changed_by: Mapped["User | None"] = relationship(foreign_keys=[changed_by_id])
