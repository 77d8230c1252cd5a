"""Speakers (主讲人): the directory organizers book lectures with."""

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from webapp import events
from webapp.db import db
from webapp.errors import Conflict, InvalidInput
from webapp.people.models import (
    Speaker,
    User,
)
from webapp.text import clean_line


def create_speaker(
    name: str,
    *,
    title: str | None = None,
    affiliation: str | None = None,
    bio: str | None = None,
    user: User | None = None,
) -> Speaker:
    """Add a speaker to the directory."""
    name = clean_line(name)
    if not name:
        raise InvalidInput(_("Please enter a name."), field="name")
    if user is not None and db.session.scalar(select(Speaker.id).where(Speaker.user_id == user.id)):
        raise Conflict(
            _("This account is already linked to another speaker."), field="user_identifier"
        )
    speaker = Speaker(name=name, title=title, affiliation=affiliation, bio=bio, user=user)
    db.session.add(speaker)
    db.session.flush()
    return speaker


def update_speaker(
    speaker: Speaker,
    *,
    name: str,
    title: str | None,
    affiliation: str | None,
    bio: str | None,
    user: User | None,
) -> None:
    """Change a speaker's details or the account they are linked to."""
    name = clean_line(name)
    if not name:
        raise InvalidInput(_("Please enter a name."), field="name")
    if user is not None:
        other = db.session.scalar(
            select(Speaker).where(Speaker.user_id == user.id, Speaker.id != speaker.id)
        )
        if other is not None:
            raise Conflict(
                _("This account is already linked to the speaker %(name)s.", name=other.name),
                field="user_identifier",
            )
    speaker.name, speaker.title, speaker.affiliation, speaker.bio = name, title, affiliation, bio
    speaker.user = user
    db.session.flush()
    events.speaker_changed.send(speaker_id=speaker.id)


def list_speakers() -> list[Speaker]:
    """The speaker directory, by name."""
    return list(
        db.session.scalars(
            select(Speaker).options(selectinload(Speaker.user)).order_by(Speaker.name)
        ).all()
    )
