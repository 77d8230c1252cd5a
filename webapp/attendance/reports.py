"""Attendance worked out for reports: one session's participants with their records, a
participant's own history. A fixed number of queries however many events there are."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from webapp.attendance.models import (
    AttendanceFinal,
    AttendanceOverride,
    AttendanceRecord,
    ExcuseNote,
)
from webapp.attendance.rules import Evidence, Record, Status, Thresholds, assess
from webapp.db import db
from webapp.people.models import Unit, User
from webapp.series.models import Enrollment, EnrollmentStatus, Series
from webapp.sessions.models import AttendanceEvent, LectureSession, SessionStatus


@dataclass(frozen=True)
class Row:
    user: User
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


def events_by_user(session_id: int, user_ids=None) -> dict[int, list[tuple]]:
    query = select(
        AttendanceEvent.user_id, AttendanceEvent.at, AttendanceEvent.source, AttendanceEvent.kind
    ).where(AttendanceEvent.session_id == session_id)
    if user_ids is not None:
        query = query.where(AttendanceEvent.user_id.in_(user_ids))
    grouped: dict[int, list[tuple]] = defaultdict(list)
    for user_id, at, source, kind in db.session.execute(query):
        grouped[user_id].append((at, str(source), str(kind)))
    return grouped


def latest_overrides(session_id: int) -> dict[int, AttendanceOverride]:
    latest = (
        select(func.max(AttendanceOverride.id))
        .where(AttendanceOverride.session_id == session_id)
        .group_by(AttendanceOverride.user_id)
    )
    return {
        override.user_id: override
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
    people = select(User, Unit.name).join(Enrollment, Enrollment.user_id == User.id)
    people = people.outerjoin(Unit, Unit.id == User.unit_id).where(
        Enrollment.series_id == session.series_id,
        Enrollment.status == EnrollmentStatus.ENROLLED,
    )
    if unit_id is not None:
        people = people.where(User.unit_id == unit_id)
    people = people.order_by(Unit.name.is_(None), Unit.name, User.display_name, User.id)
    thresholds = thresholds_of(session.series, beat_seconds=beat_seconds)
    frozen = {} if computed else frozen_records(session.id)
    # A final session's events are read only for someone without a frozen record (enrolled
    # after it became final).
    events = events_by_user(session.id) if not frozen else {}
    overrides = latest_overrides(session.id)
    live = _live_intervals(session)
    deadline = makeup_deadline(session)
    rows = []
    for user, unit_name in db.session.execute(people):
        if frozen and user.id not in frozen and not events:
            events = events_by_user(session.id)
        record = frozen.get(user.id) or assess(
            events.get(user.id, []),
            starts_at=session.starts_at,
            ends_at=session.ends_at,
            thresholds=thresholds,
            live_intervals=live,
            makeup_deadline=deadline,
        )
        row = Row(user, unit_name or "", record, overrides.get(user.id))
        if status is None or row.status == status:
            rows.append(row)
    return rows


def frozen_records(session_id: int) -> dict[int, Record]:
    """The records frozen when the session's attendance was finalised ({} if it is not)."""
    if db.session.get(AttendanceFinal, session_id) is None:
        return {}
    records = {}
    for row in db.session.scalars(
        select(AttendanceRecord).where(AttendanceRecord.session_id == session_id)
    ):
        intervals = tuple(
            Evidence(datetime.fromisoformat(start), datetime.fromisoformat(end))
            for start, end in row.intervals
        )
        records[row.user_id] = Record(
            intervals=intervals,
            seconds=row.seconds,
            share=row.share,
            first_join=intervals[0].start if intervals else None,
            last_leave=intervals[-1].end if intervals else None,
            status=row.status,
            gaps=tuple(
                Evidence(a.end, b.start) for a, b in zip(intervals, intervals[1:], strict=False)
            ),
            makeup_seconds=row.makeup_seconds,
        )
    return records


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
    result = []
    for session in sessions:
        events = events_by_user(session.id, [user.id]).get(user.id, [])
        record = frozen_records(session.id).get(user.id) or assess(
            events,
            starts_at=session.starts_at,
            ends_at=session.ends_at,
            thresholds=thresholds_of(session.series, beat_seconds=beat_seconds),
            live_intervals=_live_intervals(session),
            makeup_deadline=makeup_deadline(session),
        )
        result.append((session, record, latest_overrides(session.id).get(user.id)))
    return result


@dataclass(frozen=True)
class SeriesMatrix:
    sessions: list[LectureSession]
    people: list[tuple[User, str]]  # (participant, unit name)
    cells: dict[tuple[int, int], Row]  # (user id, session id) → row

    def attended(self, user_id: int) -> int:
        return sum(
            1 for session in self.sessions if self.cells[(user_id, session.id)].status in ATTENDED
        )

    def minutes(self, user_id: int) -> int:
        return sum(self.cells[(user_id, s.id)].record.minutes for s in self.sessions)


ATTENDED = (Status.PRESENT, Status.LATE, Status.MADE_UP)


def series_matrix(series: Series, *, now: datetime, beat_seconds: int = 30) -> SeriesMatrix:
    """Participants × the series' sessions that have started (cancelled ones left out)."""
    sessions = [
        session
        for session in sorted(series.sessions, key=lambda s: s.starts_at)
        if session.starts_at <= now and not session.is_cancelled
    ]
    cells: dict[tuple[int, int], Row] = {}
    people: dict[int, tuple[User, str]] = {}
    for session in sessions:
        for row in session_rows(session, beat_seconds=beat_seconds):
            cells[(row.user.id, session.id)] = row
            people.setdefault(row.user.id, (row.user, row.unit_name))
    if not sessions:
        people = {}
    ordered = sorted(people.values(), key=lambda p: (p[1] == "", p[1], p[0].display_name))
    return SeriesMatrix(sessions=sessions, people=ordered, cells=cells)


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
    return sorted(lines, key=lambda line: (-line.rate, line.unit))


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
