"""The database's merging of streamed watching (gaps and islands in SQL) gives exactly the
records the rules give in Python, on arbitrary events (order, duplicates, overlapping
devices, leaves, events outside the session, microsecond times, gaps right at the bridge),
with participants who also have other evidence mixed in; on SQLite and PostgreSQL."""

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert

from webapp.attendance.reports import computed_records, thresholds_of
from webapp.attendance.rules import assess
from webapp.db import db
from webapp.sessions.models import AttendanceEvent

SECOND = 1_000_000  # microseconds
# Offsets from the start in microseconds: whole seconds on the heartbeat's grid (so gaps
# land exactly on the bridge) or anywhere.
offsets = st.one_of(
    st.integers(-120, 300).map(lambda n: n * 30 * SECOND),
    st.integers(-3600 * SECOND, 3 * 3600 * SECOND),
)
streamed = st.tuples(
    offsets, st.sampled_from(["player", "rtmp"]), st.sampled_from(["join", "heartbeat", "leave"])
)
# A player beating every `step` seconds for a while, perhaps ending with a leave: steps
# equal to the beat touch, steps of 150 s leave gaps right at a two-minute bridge after a
# 30 s beat, a leave at the time of a beat cuts it to nothing.
runs = st.tuples(
    offsets,
    st.integers(1, 8),
    st.sampled_from([5, 30, 45, 60, 150, 165]),
    st.sampled_from(["player", "rtmp"]),
    st.sampled_from([None, 0, 10]),  # a leave at the last beat, 10 s after it, or none
).map(
    lambda run: (
        [(run[0] + n * run[2] * SECOND, run[3], "heartbeat") for n in range(run[1])]
        + (
            []
            if run[4] is None
            else [(run[0] + ((run[1] - 1) * run[2] + run[4]) * SECOND, run[3], "leave")]
        )
    )  # fmt: skip
)
other = st.tuples(
    offsets,
    st.sampled_from(["join", "import", "check_in", "replay", "player"]),
    st.sampled_from(["join", "heartbeat", "leave", "check", "answer"]),
)
person_events = st.tuples(
    st.tuples(st.lists(streamed, max_size=12), st.lists(runs, max_size=3)).map(
        lambda parts: parts[0] + [event for run in parts[1] for event in run]
    ),
    st.lists(other, max_size=2),
)


@pytest.fixture
def course(app, make_series, make_user):
    """Two sessions and four participants, kept through every example (their events are
    replaced each time)."""
    users = [make_user(email=f"p{n}@example.org") for n in range(4)]
    series = make_series(participants=users, sessions=2)
    db.session.commit()
    return series, users


@given(
    people=st.lists(st.tuples(person_events, st.sampled_from([0, 1])), min_size=1, max_size=4),
    together=st.booleans(),  # both sessions worked out at once (a series' report), or one
    gap_minutes=st.integers(0, 4),
    beat_seconds=st.sampled_from([5, 30, 45]),
    makeup_days=st.sampled_from([None, 7]),
    rng=st.randoms(use_true_random=False),
)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_database_merges_exactly_as_the_rules_do(
    course, people, together, gap_minutes, beat_seconds, makeup_days, rng
):
    series, users = course
    series.attendance_gap_minutes, series.makeup_days = gap_minutes, makeup_days
    db.session.execute(delete(AttendanceEvent))
    expected_events = {}
    rows = []
    for user, ((watching, rest), which) in zip(users, people, strict=False):
        session = series.sessions[which]
        events = [
            (session.starts_at + timedelta(microseconds=offset), source, kind)
            for offset, source, kind in watching + rest
        ]
        expected_events[(session.id, user.id)] = events
        rows += [dict(session_id=session.id, user_id=user.id, source=source, kind=kind, at=at)
                 for at, source, kind in events]  # fmt: skip
    rng.shuffle(rows)  # in any order they arrived in
    if rows:
        db.session.execute(insert(AttendanceEvent), rows)
    db.session.flush()
    thresholds = thresholds_of(series, beat_seconds=beat_seconds)
    if together:
        records = computed_records(series.sessions, thresholds)
    else:
        records = {}
        for session in series.sessions:
            records.update(computed_records([session], thresholds))
    sessions = {session.id: session for session in series.sessions}
    for (session_id, user_id), events in expected_events.items():
        session = sessions[session_id]
        expected = assess(
            events,
            starts_at=session.starts_at,
            ends_at=session.ends_at,
            thresholds=thresholds,
            makeup_deadline=session.ends_at + timedelta(days=makeup_days) if makeup_days else None,
        )
        found = records.get((session.id, user_id))
        if found is None:  # no evidence at all: the reports show the empty record
            assert expected.intervals == () and expected.makeup_seconds == 0
        else:
            assert found == expected


EDGES = {
    "a leave at the last beat, after a bridged gap longer than a beat": [
        (0, "player", "heartbeat"), (150, "player", "heartbeat"), (150, "player", "leave")],
    "a gap of exactly a beat and the bridge": [
        (0, "player", "heartbeat"), (210, "player", "heartbeat")],
    "a leave before the last beat (the player closed and opened again)": [
        (0, "player", "heartbeat"), (10, "player", "leave"), (100, "player", "heartbeat")],
    "two streams, one leaving": [
        (0, "player", "heartbeat"), (20, "rtmp", "join"), (25, "rtmp", "leave")],
    "only a leave": [(0, "player", "leave")],
}  # fmt: skip


@pytest.mark.parametrize("events", EDGES.values(), ids=EDGES.keys())
def test_edge_cases_the_database_gets_right(course, events):
    series, users = course
    session = series.sessions[0]
    series.attendance_gap_minutes = 3
    thresholds = thresholds_of(series, beat_seconds=30)
    timed = [(session.starts_at + timedelta(seconds=s), source, kind) for s, source, kind in events]
    db.session.execute(
        insert(AttendanceEvent),
        [dict(session_id=session.id, user_id=users[0].id, source=source, kind=kind, at=at)
         for at, source, kind in timed],
    )  # fmt: skip
    db.session.flush()
    expected = assess(timed, starts_at=session.starts_at, ends_at=session.ends_at,
                      thresholds=thresholds)  # fmt: skip
    found = computed_records([session], thresholds).get((session.id, users[0].id))
    assert (found or expected) == expected and (found is not None or not expected.intervals)
