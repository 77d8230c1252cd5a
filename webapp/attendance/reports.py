"""Attendance worked out for reports: one session's participants with their records, a
participant's own history. A fixed number of queries however many events there are."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import func, select

from webapp import audit
from webapp.attendance.islands import runs, special_events
from webapp.attendance.models import (
    AttendanceFinal,
    AttendanceOverride,
    AttendanceRecord,
    ExcuseNote,
)
from webapp.attendance.rules import Evidence, Record, Status, Thresholds, assess, clip, summarise
from webapp.db import db
from webapp.people.models import Unit, User
from webapp.series.models import Enrollment, EnrollmentStatus, Series
from webapp.sessions.models import AttendanceEvent, LectureSession, SessionStatus
from webapp.text import natural_key


class Person(NamedTuple):
    """An enrolled participant as the reports show them (read as plain rows, not objects)."""

    id: int
    display_name: str
    phone: str | None
    unit_id: int | None


@dataclass(frozen=True)
class Row:
    user: Person
    unit_name: str
    record: Record
    override: AttendanceOverride | None

    @property
    def status(self) -> Status:
        if self.override is not None and self.override.status is not None:
            return self.override.status
        return self.record.status


def thresholds_of(series: Series, *, beat_seconds: int = 30) -> Thresholds:
    return Thresholds(
        present_share=series.attendance_share / 100,
        late_minutes=series.attendance_late_minutes,
        gap_minutes=series.attendance_gap_minutes,
        beat_seconds=beat_seconds,
        answer_seconds=series.presence_answer_seconds,
    )


def makeup_deadline(session: LectureSession) -> datetime | None:
    """Until when the replay counts (补学), where the series allows it."""
    days = session.series.makeup_days
    return session.ends_at + timedelta(days=days) if days else None


def _live_intervals(session: LectureSession) -> tuple[Evidence, ...]:
    """When the broadcast was on the air (what a room check-in counts for)."""
    if session.live_started_at is None:
        return ()
    end = session.live_ended_at or session.ends_at
    return (Evidence(session.live_started_at, max(end, session.live_started_at)),)


def enrolled_people(series_id: int, *, unit_id: int | None = None) -> list[tuple[Person, str]]:
    """The series' enrolled participants with their unit's name (units in natural order,
    people in name order)."""
    query = (
        select(User.id, User.display_name, User.phone, User.unit_id, Unit.name)
        .join(Enrollment, Enrollment.user_id == User.id)
        .outerjoin(Unit, Unit.id == User.unit_id)
        .where(Enrollment.series_id == series_id, Enrollment.status == EnrollmentStatus.ENROLLED)
        .order_by(Unit.name.is_(None), Unit.name, User.display_name, User.id)
    )
    if unit_id is not None:
        query = query.where(User.unit_id == unit_id)
    people = [
        (Person(user_id, name, phone, unit), unit_name or "")
        for user_id, name, phone, unit, unit_name in db.session.execute(query)
    ]
    # Units in natural order (第二 before 第十), those without one last; the sort is stable,
    # so people stay in name order within their unit.
    order = {unit: natural_key(unit) for unit in {unit for _person, unit in people}}
    return sorted(people, key=lambda person: (person[1] == "", order[person[1]]))


Key = tuple[int, int]  # (session id, user id)


def computed_records(
    sessions: list[LectureSession], thresholds: Thresholds, *, user_ids: list[int] | None = None
) -> dict[Key, Record]:
    """What the rules give now for everyone with evidence in the sessions (all of one
    series; only `user_ids` if given): streamed watching merged by the database, anything
    else by the rules."""
    by_id = {session.id: session for session in sessions}
    found_runs, odd = runs(
        list(by_id),
        beat=timedelta(seconds=thresholds.beat_seconds),
        bridge=timedelta(minutes=thresholds.gap_minutes),
        user_ids=user_ids,
    )
    special = (
        special_events(list(by_id), user_ids=user_ids if odd is None else sorted(odd))
        if odd is None or odd
        else {}
    )
    records = {}
    for (session_id, user_id), found in found_runs.items():
        if (session_id, user_id) not in special:
            session = by_id[session_id]
            inside = clip(found, session.starts_at, session.ends_at)
            records[(session_id, user_id)] = summarise(
                inside, starts_at=session.starts_at, ends_at=session.ends_at, thresholds=thresholds
            )
    for (session_id, user_id), events in special.items():
        session = by_id[session_id]
        records[(session_id, user_id)] = assess(
            events,
            starts_at=session.starts_at,
            ends_at=session.ends_at,
            thresholds=thresholds,
            live_intervals=_live_intervals(session),
            makeup_deadline=makeup_deadline(session),
        )
    return records


def records_of(
    sessions: list[LectureSession],
    people: list[tuple[Person, str]],
    thresholds: Thresholds,
    *,
    computed: bool = False,
    user_ids: list[int] | None = None,
    detail: bool = True,
) -> dict[Key, Record]:
    """Every person's record in every session (all of one series): the frozen one where the
    session is final (unless `computed`), else what the rules give now. A fixed number of
    queries however many sessions, people and events."""
    final = set() if computed else final_session_ids([s.id for s in sessions])
    records = frozen_records(final, user_ids=user_ids, detail=detail)
    open_sessions = [s for s in sessions if s.id not in final]
    records.update(computed_records(open_sessions, thresholds, user_ids=user_ids))
    # Someone enrolled after a session became final has no frozen record there.
    late = [s for s in sessions if s.id in final and any((s.id, p.id) not in records
                                                         for p, _unit in people)]  # fmt: skip
    for key, record in computed_records(late, thresholds, user_ids=user_ids).items():
        records.setdefault(key, record)
    for session in sessions:
        nothing = summarise([], starts_at=session.starts_at, ends_at=session.ends_at,
                            thresholds=thresholds)  # fmt: skip
        for person, _unit in people:
            records.setdefault((session.id, person.id), nothing)
    return records


def latest_overrides(
    session_ids: list[int], *, user_ids: list[int] | None = None
) -> dict[Key, AttendanceOverride]:
    if not session_ids:
        return {}
    latest = (
        select(func.max(AttendanceOverride.id))
        .where(AttendanceOverride.session_id.in_(session_ids))
        .group_by(AttendanceOverride.session_id, AttendanceOverride.user_id)
    )
    if user_ids is not None:
        latest = latest.where(AttendanceOverride.user_id.in_(user_ids))
    return {
        (override.session_id, override.user_id): override
        for override in db.session.scalars(
            select(AttendanceOverride).where(AttendanceOverride.id.in_(latest))
        )
    }


def session_rows(
    session: LectureSession,
    *,
    beat_seconds: int = 30,
    unit_id: int | None = None,
    status: Status | None = None,
    computed: bool = False,
) -> list[Row]:
    """Every participant enrolled in the session's series, with their record (units in name
    order, people in name order), optionally of one unit or one status. A final session's
    records are the frozen ones (unless `computed`: what the rules give now)."""
    people = enrolled_people(session.series_id, unit_id=unit_id)
    thresholds = thresholds_of(session.series, beat_seconds=beat_seconds)
    records = records_of([session], people, thresholds, computed=computed)
    overrides = latest_overrides([session.id])
    rows = [
        Row(person, unit_name, records[(session.id, person.id)],
            overrides.get((session.id, person.id)))
        for person, unit_name in people
    ]  # fmt: skip
    return [row for row in rows if status is None or row.status == status]


def final_session_ids(session_ids: list[int]) -> set[int]:
    if not session_ids:
        return set()
    return set(
        db.session.scalars(
            select(AttendanceFinal.session_id).where(AttendanceFinal.session_id.in_(session_ids))
        )
    )


def frozen_records(
    session_ids, *, user_ids: list[int] | None = None, detail: bool = True
) -> dict[Key, Record]:
    """The records frozen when the sessions' attendance was finalised (as plain rows).
    Without `detail` only their summary is read (status, time, first join, last leave:
    what the series' reports show), not the intervals."""
    if not session_ids:
        return {}
    record = AttendanceRecord
    columns = [record.session_id, record.user_id, record.status, record.seconds, record.share,
               record.makeup_seconds, record.first_join, record.last_leave]  # fmt: skip
    query = select(*columns, *((record.intervals, record.away) if detail else ()))
    query = query.where(record.session_id.in_(list(session_ids)))
    if user_ids is not None:
        query = query.where(record.user_id.in_(user_ids))
    records = {}
    for (
        session_id,
        user_id,
        status,
        seconds,
        share,
        makeup,
        first,
        last,
        *spans,
    ) in db.session.execute(query):
        intervals = away = ()
        if detail:
            intervals, away = (_evidence(found) for found in spans)
        records[(session_id, user_id)] = Record(
            intervals=intervals,
            seconds=seconds,
            share=share,
            first_join=first,
            last_leave=last,
            status=status,
            gaps=tuple(
                Evidence(a.end, b.start) for a, b in zip(intervals, intervals[1:], strict=False)
            ),
            makeup_seconds=makeup,
            away=away,
        )
    return records


def _evidence(spans) -> tuple[Evidence, ...]:
    parse = datetime.fromisoformat
    return tuple(Evidence(parse(start), parse(end)) for start, end in spans or ())


def status_counts(rows: list[Row]) -> dict[Status, int]:
    counts = dict.fromkeys(Status, 0)
    for row in rows:
        counts[row.status] += 1
    return counts


def override_status(
    session: LectureSession,
    user: User,
    status: Status | None,
    reason: str,
    *,
    by: User,
    now: datetime,
) -> AttendanceOverride:
    """Set a participant's status by hand (None: back to the rules), with a reason; kept."""
    override = AttendanceOverride(
        session_id=session.id,
        user_id=user.id,
        status=status,
        reason=reason,
        set_by_id=by.id,
        set_at=now,
    )
    db.session.add(override)
    audit.record(
        "attendance.decided",
        object_type="user",
        object_id=user.id,
        label=f"{user.display_name} · {session.series.title} · {session.title}",
        series_id=session.series_id,
        details={"session_id": session.id, "status": str(status or ""), "reason": reason},
        by=by,
        now=now,
    )
    db.session.flush()
    return override


def override_history(session_id: int) -> list[AttendanceOverride]:
    return list(
        db.session.scalars(
            select(AttendanceOverride)
            .where(AttendanceOverride.session_id == session_id)
            .order_by(AttendanceOverride.set_at.desc(), AttendanceOverride.id.desc())
        )
    )


def my_records(user: User, *, now: datetime, beat_seconds: int = 30) -> list[tuple]:
    """The participant's own record in every session of their series that has started:
    (session, record, override)."""
    sessions = db.session.scalars(
        select(LectureSession)
        .join(Enrollment, Enrollment.series_id == LectureSession.series_id)
        .where(
            Enrollment.user_id == user.id,
            Enrollment.status == EnrollmentStatus.ENROLLED,
            LectureSession.published_at.is_not(None),
            LectureSession.starts_at <= now,
        )
        .order_by(LectureSession.starts_at.desc())
        .limit(200)
    ).all()
    me = [(Person(user.id, user.display_name, user.phone, user.unit_id), "")]
    by_series: dict[int, list[LectureSession]] = defaultdict(list)
    for session in sessions:
        by_series[session.series_id].append(session)
    records: dict[Key, Record] = {}
    for group in by_series.values():
        thresholds = thresholds_of(group[0].series, beat_seconds=beat_seconds)
        records.update(records_of(group, me, thresholds, user_ids=[user.id]))
    overrides = latest_overrides([session.id for session in sessions], user_ids=[user.id])
    return [
        (session, records[(session.id, user.id)], overrides.get((session.id, user.id)))
        for session in sessions
    ]


@dataclass(frozen=True)
class SeriesMatrix:
    sessions: list[LectureSession]
    people: list[tuple[Person, str]]  # (participant, unit name)
    # (user id, session id) → row. A final session's records here are the frozen summary
    # (status, time, first join, last leave) without their intervals.
    cells: dict[tuple[int, int], Row]

    def attended(self, user_id: int) -> int:
        return sum(
            1 for session in self.sessions if self.cells[(user_id, session.id)].status in ATTENDED
        )

    def minutes(self, user_id: int) -> int:
        return sum(self.cells[(user_id, s.id)].record.minutes for s in self.sessions)


ATTENDED = (Status.PRESENT, Status.LATE, Status.MADE_UP)


def series_matrix(series: Series, *, now: datetime, beat_seconds: int = 30) -> SeriesMatrix:
    """Participants × the series' sessions that have started (cancelled ones left out), in
    a fixed number of queries: the people once, the frozen records of the final sessions
    at once, the others worked out together, the overrides at once."""
    sessions = [
        session
        for session in sorted(series.sessions, key=lambda s: s.starts_at)
        if session.starts_at <= now and not session.is_cancelled
    ]
    people = enrolled_people(series.id) if sessions else []
    thresholds = thresholds_of(series, beat_seconds=beat_seconds)
    records = records_of(sessions, people, thresholds, detail=False)
    overrides = latest_overrides([session.id for session in sessions])
    cells = {
        (person.id, session.id): Row(person, unit_name, records[(session.id, person.id)],
                                     overrides.get((session.id, person.id)))
        for session in sessions
        for person, unit_name in people
    }  # fmt: skip
    return SeriesMatrix(sessions=sessions, people=people, cells=cells)


def not_joined_live(matrix: SeriesMatrix) -> list[tuple[LectureSession, list[str]]]:
    """For each of the matrix's sessions on the air now: who of its people has not joined
    it yet (no attendance event of any source)."""
    missing = []
    for session in matrix.sessions:
        if session.status != SessionStatus.LIVE:
            continue
        came = set(
            db.session.scalars(
                select(AttendanceEvent.user_id)
                .where(AttendanceEvent.session_id == session.id)
                .distinct()
            )
        )
        missing.append(
            (session, [user.display_name for user, _unit in matrix.people if user.id not in came])
        )
    return missing


@dataclass(frozen=True)
class UnitLine:
    unit: str
    people: int
    expected: int  # people × sessions
    attended: int
    absent_names: list[str]  # who missed at least one session (not excused)

    @property
    def rate(self) -> int:
        return round(100 * self.attended / self.expected) if self.expected else 0


def unit_report(matrix: SeriesMatrix) -> list[UnitLine]:
    """Each unit's attendance rate over the series, best first, with who was absent."""
    units: dict[str, list[User]] = {}
    for user, unit in matrix.people:
        units.setdefault(unit, []).append(user)
    lines = []
    for unit, users in units.items():
        attended = sum(matrix.attended(user.id) for user in users)
        absent = [
            user.display_name
            for user in users
            if any(
                matrix.cells[(user.id, s.id)].status in (Status.ABSENT, Status.LEFT_EARLY)
                for s in matrix.sessions
            )
        ]
        lines.append(
            UnitLine(unit, len(users), len(users) * len(matrix.sessions), attended, absent)
        )
    return sorted(lines, key=lambda line: (-line.rate, natural_key(line.unit or "")))


# --- excuse notes -----------------------------------------------------------------------


def submit_excuse(session: LectureSession, user: User, text: str, *, now: datetime):
    note = ExcuseNote(session_id=session.id, user_id=user.id, text=text, submitted_at=now)
    db.session.add(note)
    db.session.flush()
    return note


def decide_excuse(note, *, accept: bool, by: User, now: datetime, reason: str) -> None:
    """Accepting sets the status to excused, with the note as the reason (in the trail)."""
    note.accepted, note.decided_by_id, note.decided_at = accept, by.id, now
    if accept:
        session = db.session.get(LectureSession, note.session_id)
        override_status(session, note.user, Status.EXCUSED, reason, by=by, now=now)
    db.session.flush()


def excuse_notes(session_id: int, *, user_id: int | None = None) -> list:
    query = select(ExcuseNote).where(ExcuseNote.session_id == session_id)
    if user_id is not None:
        query = query.where(ExcuseNote.user_id == user_id)
    return list(db.session.scalars(query.order_by(ExcuseNote.submitted_at)))
