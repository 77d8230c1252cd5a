"""Finalising a session's attendance: a configurable time after it ends the worker freezes
every participant's record and announces it (the organizers get a summary through their
channel); events that come later are kept and count only when an organizer recomputes."""

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, select

from webapp import events
from webapp.attendance.models import AttendanceFinal, AttendanceRecord
from webapp.attendance.reports import session_rows, status_counts
from webapp.db import copy_rows, db
from webapp.sessions.models import LectureSession, SessionStatus


def finalise(session: LectureSession, *, now: datetime, by_id: int | None = None) -> dict:
    """Freeze the session's records as the rules give them now (again, when recomputed);
    returns the status counts."""
    rows = session_rows(
        session, beat_seconds=current_app.config["HEARTBEAT_SECONDS"], computed=True
    )
    db.session.execute(delete(AttendanceRecord).where(AttendanceRecord.session_id == session.id))
    copy_rows(
        AttendanceRecord,
        ["session_id", "user_id", "status", "first_join", "last_leave", "seconds", "share",
         "makeup_seconds", "intervals", "away"],
        [
            (session.id, row.user.id, row.record.status, row.record.first_join,
             row.record.last_leave, row.record.seconds, row.record.share,
             row.record.makeup_seconds, _spans(row.record.intervals), _spans(row.record.away))
            for row in rows
        ],
    )  # fmt: skip
    final = db.session.get(AttendanceFinal, session.id)
    if final is None:
        db.session.add(AttendanceFinal(session_id=session.id, finalized_at=now, by_id=by_id))
    else:
        final.finalized_at, final.by_id = now, by_id
    db.session.flush()
    counts = {str(status): count for status, count in status_counts(rows).items()}
    events.attendance_finalized.send(
        session_id=session.id, series_id=session.series_id, counts=counts, by_hand=by_id is not None
    )
    return counts


def _spans(intervals) -> list[list[str]]:
    return [[i.start.isoformat(), i.end.isoformat()] for i in intervals]


def finalise_due(*, now: datetime, limit: int = 20) -> int:
    """The worker's round: sessions over for FINALISE_MINUTES and not yet final."""
    after = timedelta(minutes=current_app.config["ATTENDANCE_FINALISE_MINUTES"])
    due = db.session.scalars(
        select(LectureSession)
        .outerjoin(AttendanceFinal, AttendanceFinal.session_id == LectureSession.id)
        .where(
            AttendanceFinal.session_id.is_(None),
            LectureSession.published_at.is_not(None),
            LectureSession.status != SessionStatus.CANCELLED,
            LectureSession.ends_at <= now - after,
        )
        .order_by(LectureSession.ends_at)
        .limit(limit)
    ).all()
    for session in due:
        finalise(session, now=now)
        db.session.commit()
    return len(due)
