"""The attendance rules, as pure functions of a session's times, one participant's events
and the series' thresholds. No database, no clock: the same events always give the same
record, whatever order they arrive in and however often one is repeated.

Evidence becomes intervals:
- a player or RTMP join or heartbeat at t: watching from t for one heartbeat period (the next
  heartbeat continues it); a leave at t ends what that source was showing at t;
- a press of the join button (a room elsewhere) at t: in the room from t to the end of the
  session, for want of a leave (an imported platform record, when there is one, is exact);
- an imported platform record: its own join and leave;
- a room check-in at t: present for the time the broadcast was live (given by the caller).
Intervals from every source and device are merged (never counted twice), gaps shorter than
the tolerance are bridged, and only the part inside the session counts.
"""

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum


class Status(StrEnum):
    PRESENT = "present"
    LATE = "late"  # present, but came in more than the late threshold after the start
    LEFT_EARLY = "left_early"  # came, but left early and stayed less than the share
    ABSENT = "absent"
    MADE_UP = "made_up"  # missed live, made up by watching the replay before the deadline (补学)
    EXCUSED = "excused"  # set by hand only


@dataclass(frozen=True)
class Thresholds:
    present_share: float = 0.8  # of the session's length
    late_minutes: int = 10
    gap_minutes: int = 2  # shorter gaps are bridged (a reconnect)
    beat_seconds: int = 30  # one heartbeat covers this long
    answer_seconds: int = 60  # a presence check not answered this soon: away until answered


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence: watching [start, end)."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Record:
    intervals: tuple[Evidence, ...]  # merged, inside the session
    seconds: float
    share: float
    first_join: datetime | None
    last_leave: datetime | None
    status: Status
    gaps: tuple[Evidence, ...] = field(default=())  # breaks longer than the tolerance
    makeup_seconds: float = 0.0  # replay watched before the deadline (when the series allows)
    away: tuple[Evidence, ...] = field(default=())  # unanswered presence checks → answer

    @property
    def minutes(self) -> int:
        return round(self.seconds / 60)


def watching_intervals(
    events: list[tuple[datetime, str, str]],
    *,
    session_end: datetime,
    beat: timedelta,
    live_intervals: tuple[Evidence, ...] = (),
) -> list[Evidence]:
    """Evidence from events (at, source, kind) of one participant in one session. Sources:
    player, rtmp, join, check_in, import (replay is made-up time, counted apart)."""
    intervals: list[Evidence] = []
    leaves: dict[str, list[datetime]] = {}
    for at, source, kind in events:
        if kind == "leave":
            leaves.setdefault(source, []).append(at)
    for at, source, kind in sorted(events):
        if kind in ("leave", "check", "answer"):
            continue
        if source in ("player", "rtmp", "replay"):
            end = at + beat
            # A leave of the same source inside the beat ends it there.
            cut = [leave for leave in leaves.get(source, ()) if at <= leave < end]
            intervals.append(Evidence(at, min(cut) if cut else end))
        elif source == "join":
            intervals.append(Evidence(at, max(at, session_end)))
        elif source == "import":
            ends = [leave for leave in leaves.get("import", ()) if leave > at]
            intervals.append(Evidence(at, min(ends) if ends else at))
        elif source == "check_in":
            intervals += [live for live in live_intervals if live.end > at] or [
                Evidence(at, max(at, session_end))
            ]
    return intervals


def merge(intervals: list[Evidence], *, bridge: timedelta) -> list[Evidence]:
    """Union of the intervals, with gaps shorter than `bridge` filled."""
    merged: list[Evidence] = []
    for interval in sorted(intervals, key=lambda i: (i.start, i.end)):
        if interval.end <= interval.start:
            continue
        if merged and interval.start - merged[-1].end < bridge:
            last = merged[-1]
            merged[-1] = Evidence(last.start, max(last.end, interval.end))
        else:
            merged.append(interval)
    return merged


def clip(intervals: list[Evidence], start: datetime, end: datetime) -> list[Evidence]:
    clipped = [Evidence(max(i.start, start), min(i.end, end)) for i in intervals]
    return [i for i in clipped if i.end > i.start]


def assess(
    events: list[tuple[datetime, str, str]],
    *,
    starts_at: datetime,
    ends_at: datetime,
    thresholds: Thresholds = Thresholds(),
    live_intervals: tuple[Evidence, ...] = (),
    makeup_deadline: datetime | None = None,
) -> Record:
    """The record of one participant in one session from their events. Where the series
    allows make-up (a deadline is given), replay watched before the deadline is added to
    the live time under the same share: enough of both makes the status made up (补学)."""
    beat = timedelta(seconds=thresholds.beat_seconds)
    bridge = timedelta(minutes=thresholds.gap_minutes)
    evidence = watching_intervals(
        [event for event in events if event[1] != "replay"],
        session_end=ends_at,
        beat=beat,
        live_intervals=live_intervals,
    )
    inside = clip(merge(evidence, bridge=bridge), starts_at, ends_at)
    away = clip(unanswered(events, thresholds, ends_at), starts_at, ends_at)
    record = summarise(
        subtract(inside, away), starts_at=starts_at, ends_at=ends_at, thresholds=thresholds
    )
    seconds, status, makeup = record.seconds, record.status, 0.0
    length = (ends_at - starts_at).total_seconds()
    if makeup_deadline is not None and status not in (Status.PRESENT, Status.LATE):
        replays = watching_intervals(
            [e for e in events if e[1] == "replay" and ends_at <= e[0] < makeup_deadline],
            session_end=ends_at,
            beat=beat,
        )
        watched = clip(merge(replays, bridge=bridge), ends_at, makeup_deadline)
        makeup = min(sum((i.end - i.start).total_seconds() for i in watched), length - seconds)
        if length > 0 and (seconds + makeup) / length + 1e-9 >= thresholds.present_share:
            status = Status.MADE_UP
    return replace(record, status=status, makeup_seconds=max(makeup, 0.0), away=tuple(away))


def summarise(
    inside: list[Evidence], *, starts_at: datetime, ends_at: datetime, thresholds: Thresholds
) -> Record:
    """The record of the merged intervals inside the session (time, share, first join, last
    leave, breaks and the status they give), before make-up and presence checks."""
    seconds = sum((i.end - i.start).total_seconds() for i in inside)
    length = (ends_at - starts_at).total_seconds()
    share = seconds / length if length > 0 else 0.0
    first_join = inside[0].start if inside else None
    last_leave = inside[-1].end if inside else None
    return Record(
        intervals=tuple(inside),
        seconds=seconds,
        share=share,
        first_join=first_join,
        last_leave=last_leave,
        status=status_of(share, first_join, last_leave, starts_at, ends_at, thresholds),
        gaps=tuple(Evidence(a.end, b.start) for a, b in zip(inside, inside[1:], strict=False)),
    )


def unanswered(events, thresholds: Thresholds, session_end: datetime) -> list[Evidence]:
    """Presence checks not answered within the answer window: away from the check until
    the next answer (or the end)."""
    window = timedelta(seconds=thresholds.answer_seconds)
    answers = sorted(at for at, _source, kind in events if kind == "answer")
    away = []
    for at in sorted({at for at, _source, kind in events if kind == "check"}):
        later = [answer for answer in answers if answer >= at]
        if later and later[0] <= at + window:
            continue
        away.append(Evidence(at, later[0] if later else max(at, session_end)))
    return merge(away, bridge=timedelta(0))


def subtract(intervals: list[Evidence], holes: list[Evidence]) -> list[Evidence]:
    """The intervals with the holes cut out."""
    result = []
    for interval in intervals:
        pieces = [interval]
        for hole in holes:
            next_pieces = []
            for piece in pieces:
                if hole.end <= piece.start or hole.start >= piece.end:
                    next_pieces.append(piece)
                    continue
                if piece.start < hole.start:
                    next_pieces.append(Evidence(piece.start, hole.start))
                if hole.end < piece.end:
                    next_pieces.append(Evidence(hole.end, piece.end))
            pieces = next_pieces
        result += pieces
    return result


def status_of(share, first_join, last_leave, starts_at, ends_at, thresholds) -> Status:
    """Present with at least the share (late when the first join came after the late
    threshold); below the share: left early when they came in time and left before the
    end, else absent."""
    if first_join is None:
        return Status.ABSENT
    late = first_join > starts_at + timedelta(minutes=thresholds.late_minutes)
    if share + 1e-9 >= thresholds.present_share:
        return Status.LATE if late else Status.PRESENT
    if not late and last_leave is not None and last_leave < ends_at:
        return Status.LEFT_EARLY
    return Status.ABSENT
