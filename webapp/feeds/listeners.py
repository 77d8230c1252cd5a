"""What feeds do when something happens elsewhere (webapp/events.py): the stored event
fragments of what changed are dropped and every stored feed that shows it is marked stale,
in the transaction of the change; the worker (or the next fetch) renders them again.

Which feeds show a change: a session or series shows in the series feed, its organizers'
feeds, its participants' personal feeds and their units' feeds (and every unit above); an
enrollment changes the person's feed and their units'; a person's preferences change the
title, zone and alarm of their own feeds."""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select, update

from webapp import events
from webapp.db import db, utcnow
from webapp.feeds.memory import lookup_cache
from webapp.feeds.models import EventFragment, FeedDocument, FeedKind, FeedToken
from webapp.people.models import Unit, User
from webapp.series.models import Enrollment, series_organizer
from webapp.sessions.models import Lecture, LectureSession, lecture_speaker
from webapp.wakeups import Wake, wake


def mark_stale(keys: Iterable[str], *, now: datetime) -> None:
    keys = sorted(set(keys))
    if keys:
        wake(Wake.FEEDS)  # the workers render them as soon as this change commits
    for start in range(0, len(keys), 500):
        db.session.execute(
            update(FeedDocument)
            .where(
                FeedDocument.feed_key.in_(keys[start : start + 500]),
                FeedDocument.stale_since.is_(None),
            )
            .values(stale_since=now)
            .execution_options(synchronize_session=False)
        )


def keys_for_series(series_ids: set[int]) -> set[str]:
    """Every feed a change in these series shows up in."""
    if not series_ids:
        return set()
    keys = {f"series:{sid}" for sid in series_ids}
    keys.update(
        f"organizer:{uid}"
        for uid in db.session.scalars(
            select(series_organizer.c.user_id).where(series_organizer.c.series_id.in_(series_ids))
        )
    )
    members = db.session.execute(
        select(Enrollment.user_id, User.unit_id)
        .join(User, User.id == Enrollment.user_id)
        .where(Enrollment.series_id.in_(series_ids))
    ).all()
    keys.update(f"user:{uid}" for uid, _unit in members)
    keys.update(unit_keys({unit for _uid, unit in members if unit}))
    return keys


def unit_keys(unit_ids: set[int]) -> set[str]:
    """The feeds of these units and of every unit above them."""
    if not unit_ids:
        return set()
    parents = dict(db.session.execute(select(Unit.id, Unit.parent_id)).all())
    keys = set()
    for unit_id in unit_ids:
        current = unit_id
        while current is not None and f"unit:{current}" not in keys:
            keys.add(f"unit:{current}")
            current = parents.get(current)
    return keys


def keys_for_users(user_ids: set[int]) -> set[str]:
    """An enrollment started or ended: the person's feed and their units' feeds."""
    user_ids = {uid for uid in user_ids if uid is not None}
    if not user_ids:
        return set()
    units = set(
        db.session.scalars(
            select(User.unit_id).where(User.id.in_(user_ids), User.unit_id.is_not(None))
        )
    )
    return {f"user:{uid}" for uid in user_ids} | unit_keys(units)


def sessions_changed(session_ids: set[int], series_ids: set[int]) -> None:
    """Drop the stored events of these sessions (given only series: of every session of
    them) and mark every feed that shows them stale."""
    if session_ids:
        db.session.execute(delete(EventFragment).where(EventFragment.session_id.in_(session_ids)))
        series_ids = series_ids | set(
            db.session.scalars(
                select(LectureSession.series_id).where(LectureSession.id.in_(session_ids))
            )
        )
    elif series_ids:
        in_series = select(LectureSession.id).where(LectureSession.series_id.in_(series_ids))
        db.session.execute(delete(EventFragment).where(EventFragment.session_id.in_(in_series)))
    if series_ids:
        mark_stale(keys_for_series(series_ids), now=utcnow())


# --- listeners ---------------------------------------------------------------------------------


@events.session_created.connect
@events.session_moved.connect
@events.session_cancelled.connect
@events.session_renamed.connect
@events.session_deleted.connect
@events.lecture_changed.connect
def _session(_sender, *, session_id: int, series_id: int, **_facts) -> None:
    sessions_changed({session_id}, {series_id})


@events.series_changed.connect
@events.series_published.connect
@events.series_archived.connect
@events.series_unarchived.connect
def _series(_sender, *, series_id: int, **_facts) -> None:
    sessions_changed(set(), {series_id})


@events.speaker_changed.connect
def _speaker(_sender, *, speaker_id: int, **_facts) -> None:
    session_ids = set(
        db.session.scalars(
            select(Lecture.session_id)
            .join(lecture_speaker, lecture_speaker.c.lecture_id == Lecture.id)
            .where(lecture_speaker.c.speaker_id == speaker_id)
        )
    )
    sessions_changed(session_ids, set())


@events.enrollment_started.connect
@events.enrollment_ended.connect
def _enrollment(_sender, *, user_id: int, **_facts) -> None:
    mark_stale(keys_for_users({user_id}), now=utcnow())


@events.preferences_changed.connect
def _preferences(_sender, *, user_id: int, **_facts) -> None:
    mark_stale({f"user:{user_id}", f"organizer:{user_id}"}, now=utcnow())


@events.unit_moved.connect
def _unit_moved(_sender, *, unit_id: int, old_parent_id: int | None, **_facts) -> None:
    # The unit's sessions leave the feeds of the units it was under and join the new ones'.
    mark_stale(unit_keys({unit_id} | ({old_parent_id} if old_parent_id else set())), now=utcnow())


@events.units_merged.connect
def _units_merged(_sender, *, source_id: int, target_id: int, **_facts) -> None:
    # A calendar link of the merged unit shows the unit it was merged into from now on.
    db.session.execute(
        update(FeedToken)
        .where(FeedToken.kind == FeedKind.UNIT, FeedToken.target_id == source_id)
        .values(target_id=target_id)
        .execution_options(synchronize_session=False)
    )
    db.session.execute(delete(FeedDocument).where(FeedDocument.feed_key == f"unit:{source_id}"))
    lookup_cache.clear()
    wake(Wake.TOKENS)
    mark_stale(unit_keys({target_id}), now=utcnow())
