"""The common case of the attendance rules worked out by the database: the player's and
RTMP viewers' joins, heartbeats and leaves merged into runs of watching ("gaps and
islands" with window functions), so that a session's 20,000 heartbeats come back as a
thousand rows instead of being turned into intervals one by one in Python.

The result is the same as `rules.watching_intervals` followed by `rules.merge` for those
sources (a test checks it on arbitrary events, on both databases): each join or heartbeat
covers one heartbeat period, cut short by the next leave of the same source; runs whose gap
is shorter than the bridge are one. The arithmetic and the comparisons are exact on both
databases: PostgreSQL's timestamps and intervals are whole microseconds, and on SQLite
(text) the times become whole microseconds since the epoch.

Participants with any other evidence (the join button, room check-ins, imported records,
replays, presence checks) are rare; their events are read as they are and go through the
rules in Python (`special_events`)."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, and_, case, func, literal, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from webapp.attendance.rules import Evidence
from webapp.db import db
from webapp.sessions.models import AttendanceEvent, AttendanceKind, AttendanceSource

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STREAMED = (AttendanceSource.PLAYER, AttendanceSource.RTMP)
WATCHING = (AttendanceKind.JOIN, AttendanceKind.HEARTBEAT, AttendanceKind.LEAVE)


class epoch_us(FunctionElement):  # noqa: N801 (an SQL function)
    """A UTC timestamp column as whole microseconds since 1970."""

    type = BigInteger()
    inherit_cache = True


@compiles(epoch_us, "postgresql")
def _epoch_us_postgresql(element, compiler, **kw) -> str:
    return (
        f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) * 1000000 AS BIGINT)"
    )


@compiles(epoch_us, "sqlite")
def _epoch_us_sqlite(element, compiler, **kw) -> str:
    # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (naive UTC, see db.UTCDateTime); the whole
    # seconds and the microseconds apart (strftime would round the fraction).
    value = compiler.process(element.clauses, **kw)
    return (
        f"(CAST(strftime('%s', substr({value}, 1, 19)) AS INTEGER) * 1000000"
        f" + CAST(substr({value}, 21, 6) AS INTEGER))"
    )


def moment(microseconds: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(microseconds))


def islands(
    session_ids: list[int],
    *,
    beat: timedelta,
    bridge: timedelta,
    user_ids: list[int] | None = None,
) -> dict[tuple[int, int], list[Evidence]]:
    """(session id, user id) → the merged runs of player and RTMP watching, in time order
    (not yet clipped to the session). One statement whatever the number of events."""
    if not session_ids:
        return {}
    event = AttendanceEvent
    native = db.session.get_bind().dialect.name == "postgresql"
    # PostgreSQL computes with its own timestamps and intervals (exact microseconds);
    # SQLite, which has neither, with whole microseconds since the epoch.
    at = event.at if native else epoch_us(event.at)
    beat_us, bridge_us = (literal(beat), literal(bridge)) if native else (_us(beat), _us(bridge))
    # The first leave of the same source at or after each event: a running minimum from
    # the end backwards (the default frame takes in the events at the same time too).
    leave = func.min(case((event.kind == AttendanceKind.LEAVE, at))).over(
        partition_by=(event.session_id, event.user_id, event.source), order_by=at.desc()
    )
    mine = event.user_id.in_(user_ids) if user_ids is not None else True
    beats = (
        select(
            event.id,
            event.session_id,
            event.user_id,
            event.kind,
            at.label("start"),
            (at + beat_us).label("full"),
            leave.label("leave"),
        )
        .where(event.session_id.in_(session_ids), event.source.in_(STREAMED), mine)
        .subquery()
    )
    end = case((beats.c.leave < beats.c.full, beats.c.leave), else_=beats.c.full)
    spans = (
        select(beats.c.id, beats.c.session_id, beats.c.user_id, beats.c.start, end.label("end"))
        .where(beats.c.kind != AttendanceKind.LEAVE, end > beats.c.start)
        .subquery()
    )
    person = (spans.c.session_id, spans.c.user_id)
    order = (spans.c.start, spans.c.end, spans.c.id)
    # A span starts a new run unless it begins less than the bridge after the furthest end
    # so far (the previous spans of the same person).
    reach = func.max(spans.c.end).over(partition_by=person, order_by=order, rows=(None, -1))
    flagged = select(
        spans, case((spans.c.start - reach < bridge_us, 0), else_=1).label("new")
    ).subquery()
    run = func.sum(flagged.c.new).over(
        partition_by=(flagged.c.session_id, flagged.c.user_id),
        order_by=(flagged.c.start, flagged.c.end, flagged.c.id),
        rows=(None, 0),
    )
    numbered = select(
        flagged.c.session_id, flagged.c.user_id, flagged.c.start, flagged.c.end, run.label("run")
    ).subquery()
    merged = (
        select(
            numbered.c.session_id,
            numbered.c.user_id,
            func.min(numbered.c.start).label("start"),
            func.max(numbered.c.end).label("end"),
        )
        .group_by(numbered.c.session_id, numbered.c.user_id, numbered.c.run)
        .order_by(numbered.c.session_id, numbered.c.user_id, "start")
    )
    found: dict[tuple[int, int], list[Evidence]] = defaultdict(list)
    for session_id, user_id, start, stop in db.session.execute(merged):
        if not native:
            start, stop = moment(start), moment(stop)
        found[(session_id, user_id)].append(Evidence(start, stop))
    return found


def runs(
    session_ids: list[int],
    *,
    beat: timedelta,
    bridge: timedelta,
    user_ids: list[int] | None = None,
) -> tuple[dict[tuple[int, int], list[Evidence]], set[int] | None]:
    """The same as `islands`, faster on PostgreSQL for the usual participant: one player or
    RTMP stream whose leaves (if any) all come after its last beat. Their events are read
    once in the index's order (session, participant, time) with the time of the previous
    event beside each, and grouped: a run ends where the next beat comes a heartbeat and a
    bridge or more after the one before. Other streamed watching goes through `islands`.
    Also returns who has evidence of other kinds (for `special_events`; None: not known)."""
    if not session_ids:
        return {}, set()
    if db.session.get_bind().dialect.name != "postgresql":
        return islands(session_ids, beat=beat, bridge=bridge, user_ids=user_ids), None
    event = AttendanceEvent
    # One session: by participant alone, so that PostgreSQL reads the index in its order
    # and groups what it reads without sorting again.
    person = (event.user_id,) if len(session_ids) == 1 else (event.session_id, event.user_id)
    previous = func.lag(event.at).over(partition_by=person, order_by=event.at)
    mine = event.user_id.in_(user_ids) if user_ids is not None else True
    ordered = (
        select(event.session_id, event.user_id, event.source, event.kind, event.at,
               previous.label("previous"))
        .where(event.session_id.in_(session_ids), mine)
        .subquery()
    )  # fmt: skip
    row = ordered.c
    beating = row.kind != AttendanceKind.LEAVE
    split = and_(beating, row.at - row.previous >= literal(beat + bridge))
    summary = select(
        row.session_id,
        row.user_id,
        func.count().filter(or_(row.source.not_in(STREAMED), row.kind.not_in(WATCHING))),
        func.count().filter(row.source == AttendanceSource.PLAYER),
        func.count().filter(row.source == AttendanceSource.RTMP),
        func.min(row.at).filter(beating),
        func.max(row.at).filter(beating),
        func.min(row.at).filter(row.kind == AttendanceKind.LEAVE),
        func.array_agg(row.at).filter(split),
        func.array_agg(row.previous).filter(split),
    )
    if len(session_ids) == 1:
        summary = summary.group_by(row.user_id, row.session_id)
    else:
        summary = summary.group_by(row.session_id, row.user_id)
    found: dict[tuple[int, int], list[Evidence]] = {}
    others: set[int] = set()
    odd_ones: set[int] = set()
    for (
        session_id,
        user_id,
        odd,
        player,
        rtmp,
        first,
        last,
        leave,
        starts,
        befores,
    ) in db.session.execute(summary):
        key = (session_id, user_id)
        if odd:
            odd_ones.add(user_id)
        elif (player and rtmp) or (leave is not None and last is not None and leave <= last):
            others.add(user_id)
        elif first is not None:
            ends = [before + beat for before in befores or ()]
            ends.append(last + beat if leave is None else min(last + beat, leave))
            found[key] = [
                Evidence(a, b) for a, b in zip([first, *(starts or ())], ends, strict=True)
            ]
    if others:
        rest = islands(session_ids, beat=beat, bridge=bridge, user_ids=sorted(others))
        found.update((key, spans) for key, spans in rest.items() if key[1] in others)
    return found, odd_ones


def special_events(
    session_ids: list[int], *, user_ids: list[int] | None = None
) -> dict[tuple[int, int], list[tuple]]:
    """(session id, user id) → every event (at, source, kind) of the participants who have
    evidence other than streamed watching: the rules take those as they are."""
    if not session_ids:
        return {}
    event = AttendanceEvent
    special = (
        select(event.session_id, event.user_id)
        .where(
            event.session_id.in_(session_ids),
            event.user_id.in_(user_ids) if user_ids is not None else True,
            or_(event.source.not_in(STREAMED), event.kind.not_in(WATCHING)),
        )
        .distinct()
        .subquery()
    )
    query = select(event.session_id, event.user_id, event.at, event.source, event.kind).join(
        special,
        and_(event.session_id == special.c.session_id, event.user_id == special.c.user_id),
    )
    found: dict[tuple[int, int], list[tuple]] = defaultdict(list)
    for session_id, user_id, at, source, kind in db.session.execute(query):
        found[(session_id, user_id)].append((at, str(source), str(kind)))
    return found


def _us(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)
