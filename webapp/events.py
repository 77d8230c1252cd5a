"""Domain events: what happened, announced by the domain it happened in and heard by the
domains that react to it. Sessions and series announce; reminders and feeds listen (and
streaming and attendance will). No domain imports another to tell it something.

Each event is a blinker signal with a fixed set of keyword arguments, all plain ids and
values (never ORM objects), so a listener needs nothing from the announcer but this module.
Listeners run synchronously inside the announcing service's transaction: what they write
commits or rolls back with the change itself (the outbox guarantee). A service announces
after its own writes are flushed, so a listener may query the new state.

Listeners are connected when their module is imported; `webapp.create_app` imports
`webapp.feeds.listeners` and `webapp.reminders.listeners`, so every process that builds the
app (web, worker, CLI) hears every event. docs/architecture.md has the table of who
announces what and who listens.
"""

from blinker import Namespace

_events = Namespace()

# --- series ----------------------------------------------------------------------------------
series_created = _events.signal("series-created", doc="series_id")
series_changed = _events.signal(
    "series-changed", doc="series_id: title, description, zone, visibility or capacity"
)
series_published = _events.signal("series-published", doc="series_id, session_ids")
series_archived = _events.signal("series-archived", doc="series_id")
series_unarchived = _events.signal("series-unarchived", doc="series_id")

# --- enrollment ------------------------------------------------------------------------------
enrollment_started = _events.signal(
    "enrollment-started",
    doc="series_id, user_id, waitlisted: bool, promoted: bool (from the waitlist), "
    "quiet: bool (the participant is not to be told, e.g. demo data)",
)
enrollment_ended = _events.signal("enrollment-ended", doc="series_id, user_id")

# --- sessions --------------------------------------------------------------------------------
session_created = _events.signal("session-created", doc="session_id, series_id")
session_moved = _events.signal(
    "session-moved",
    doc="session_id, series_id, old_starts_at, old_ends_at, new_starts_at, new_ends_at, "
    "sequence, published: bool, reason (or None)",
)
session_cancelled = _events.signal(
    "session-cancelled", doc="session_id, series_id, reason, sequence, published: bool"
)
session_renamed = _events.signal(
    "session-renamed", doc="session_id, series_id: title, place or join link changed"
)
session_deleted = _events.signal("session-deleted", doc="session_id, series_id, title")
session_live = _events.signal(
    "session-live",
    doc="session_id, series_id, started_at, by_hand: bool (the organizer's override, not the "
    "stream)",
)
session_ended = _events.signal(
    "session-ended", doc="session_id, series_id, ended_at, by_hand: bool"
)
change_notice_composed = _events.signal(
    "change-notice-composed",
    doc="session_id, series_id, sequence (the latest change of the session the notice tells "
    "of), at: participants are being told of the session's changes up to that sequence",
)
attendance_finalized = _events.signal(
    "attendance-finalized",
    doc="session_id, series_id, counts: {status: number}, by_hand: bool (recomputed by an "
    "organizer, not the worker's first finalisation)",
)
lecture_changed = _events.signal(
    "lecture-changed",
    doc="session_id, series_id, lecture (its title), old_speakers, new_speakers (names), "
    "published: bool; added, edited, removed or moved in the agenda",
)

# --- people ----------------------------------------------------------------------------------
speaker_changed = _events.signal("speaker-changed", doc="speaker_id")
preferences_changed = _events.signal(
    "preferences-changed", doc="user_id: language, zone, reminder mail or calendar alarm"
)

unit_moved = _events.signal(
    "unit-moved", doc="unit_id, old_parent_id, new_parent_id (None: the top level)"
)
units_merged = _events.signal(
    "units-merged",
    doc="source_id, target_id: the source's members, liaisons and sub-units are the "
    "target's now; what other domains keep for the source is to move over before it is "
    "deleted (right after this event, in the same transaction)",
)

ALL = (
    series_created,
    series_changed,
    series_published,
    series_archived,
    series_unarchived,
    enrollment_started,
    enrollment_ended,
    session_created,
    session_moved,
    session_cancelled,
    session_renamed,
    session_deleted,
    session_live,
    session_ended,
    change_notice_composed,
    attendance_finalized,
    lecture_changed,
    speaker_changed,
    preferences_changed,
    unit_moved,
    units_merged,
)
