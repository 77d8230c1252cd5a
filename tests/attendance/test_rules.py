"""The attendance rules as properties (hypothesis): event order, duplicates, overlapping
devices, events outside the session and clock skew; and the thresholds."""

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.attendance.rules import Status, Thresholds, assess

START = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)  # 16:00 in Shanghai
END = START + timedelta(hours=2)
LENGTH = (END - START).total_seconds()

offsets = st.integers(min_value=-3600, max_value=3 * 3600 + 1800)  # seconds from the start
sources = st.sampled_from(["player", "rtmp", "join", "import"])
kinds = st.sampled_from(["join", "heartbeat", "leave"])
events_strategy = st.lists(st.tuples(offsets, sources, kinds), max_size=60)


def to_events(raw):
    return [(START + timedelta(seconds=offset), source, kind) for offset, source, kind in raw]


def seconds(events, **kwargs):
    return assess(events, starts_at=START, ends_at=END, **kwargs).seconds


@given(events_strategy, st.randoms())
def test_the_order_events_arrive_in_does_not_matter(raw, rng):
    events = to_events(raw)
    shuffled = list(events)
    rng.shuffle(shuffled)
    assert assess(events, starts_at=START, ends_at=END) == assess(
        shuffled, starts_at=START, ends_at=END
    )


@given(events_strategy)
def test_a_repeated_event_changes_nothing(raw):
    events = to_events(raw)
    assert assess(events + events, starts_at=START, ends_at=END) == assess(
        events, starts_at=START, ends_at=END
    )


@given(events_strategy)
def test_time_is_never_counted_twice_nor_outside_the_session(raw):
    record = assess(to_events(raw), starts_at=START, ends_at=END)
    assert 0 <= record.seconds <= LENGTH
    for interval in record.intervals:
        assert START <= interval.start < interval.end <= END
    for before, after in zip(record.intervals, record.intervals[1:], strict=False):
        assert after.start - before.end >= timedelta(minutes=2)  # shorter gaps bridged


@given(st.lists(st.integers(min_value=0, max_value=7200), min_size=1, max_size=40))
def test_two_devices_watching_together_count_once(beats):
    one = [(START + timedelta(seconds=b), "player", "heartbeat") for b in beats]
    other = [(at + timedelta(seconds=7), source, kind) for at, source, kind in one]
    exact = Thresholds(gap_minutes=0)  # no bridging, to bound the sum by hand
    alone = seconds(one, thresholds=exact)
    both = seconds(one + other, thresholds=exact)
    assert alone <= both <= alone + 7 * len(beats)
    assert both <= LENGTH


@given(events_strategy, st.lists(st.tuples(st.integers(-7200, -3600), sources, kinds)))
def test_events_long_before_the_session_add_nothing(raw, early):
    events = [e for e in to_events(raw) if e[1] != "join" and e[1] != "import"]
    before = [e for e in to_events(early) if e[1] in ("player", "rtmp")]
    assert seconds(events + before) == seconds(events)


@given(
    st.lists(st.integers(min_value=-600, max_value=7800), max_size=40),
    st.integers(min_value=-300, max_value=300),
)
def test_clock_skew_moves_the_time_by_at_most_the_skew(beats, skew):
    events = [(START + timedelta(seconds=b), "player", "heartbeat") for b in beats]
    skewed = [(at + timedelta(seconds=skew), s, k) for at, s, k in events]
    assert abs(seconds(events) - seconds(skewed)) <= abs(skew) + 1e-6


@given(events_strategy, st.floats(min_value=0.1, max_value=1.0), st.integers(0, 60))
@settings(max_examples=200)
def test_the_status_follows_the_thresholds(raw, share, late):
    thresholds = Thresholds(present_share=share, late_minutes=late)
    record = assess(to_events(raw), starts_at=START, ends_at=END, thresholds=thresholds)
    if record.first_join is None:
        assert record.status == Status.ABSENT
    elif record.share + 1e-9 >= share:
        late_join = record.first_join > START + timedelta(minutes=late)
        assert record.status == (Status.LATE if late_join else Status.PRESENT)
    else:
        assert record.status in (Status.LEFT_EARLY, Status.ABSENT)


def test_the_issue_s_example_a_late_join_a_break_and_an_early_leave():
    """16:07 in, 16:40–16:44 away, 17:55 out (heartbeats every 30 s), with a series that
    calls five minutes late: 104 of 120 minutes, 87 % → present, but late."""
    beats = []
    t = START + timedelta(minutes=7)
    while t < START + timedelta(minutes=115):
        if not (START + timedelta(minutes=40) <= t < START + timedelta(minutes=44)):
            beats.append((t, "player", "heartbeat"))
        t += timedelta(seconds=30)
    beats.append((START + timedelta(minutes=115), "player", "leave"))
    random.shuffle(beats)
    thresholds = Thresholds(late_minutes=5)
    record = assess(beats, starts_at=START, ends_at=END, thresholds=thresholds)
    assert record.first_join == START + timedelta(minutes=7)
    assert record.last_leave == START + timedelta(minutes=115)
    assert [(g.start, g.end) for g in record.gaps] == [
        (START + timedelta(minutes=40), START + timedelta(minutes=44))
    ]
    assert record.minutes == 104
    assert record.status == Status.LATE


def test_a_short_reconnect_is_bridged():
    beats = [(START + timedelta(seconds=s), "player", "heartbeat") for s in range(0, 7200, 30)
             if not 600 <= s < 690]  # fmt: skip
    record = assess(beats, starts_at=START, ends_at=END)
    assert len(record.intervals) == 1 and record.status == Status.PRESENT


def test_a_join_press_counts_until_the_end_and_an_import_by_its_own_times():
    join = [(START + timedelta(minutes=30), "join", "join")]
    assert assess(join, starts_at=START, ends_at=END).minutes == 90
    imported = [
        (START + timedelta(minutes=5), "import", "join"),
        (START + timedelta(minutes=65), "import", "leave"),
    ]
    record = assess(imported, starts_at=START, ends_at=END)
    assert record.minutes == 60 and record.status == Status.LEFT_EARLY


def test_replay_before_the_deadline_makes_up_for_a_missed_session():
    """补学: 30 live minutes and 70 of replay within the deadline make 100 of 120 (83 %)."""
    live = [(START + timedelta(seconds=s), "player", "heartbeat") for s in range(0, 1800, 30)]
    later = END + timedelta(days=1)
    replay = [(later + timedelta(seconds=s), "replay", "heartbeat") for s in range(0, 4200, 30)]
    deadline = END + timedelta(days=7)
    record = assess(live + replay, starts_at=START, ends_at=END, makeup_deadline=deadline)
    assert record.status == Status.MADE_UP and round(record.makeup_seconds / 60) == 70
    assert record.minutes == 30  # live time stays live time
    not_allowed = assess(live + replay, starts_at=START, ends_at=END)
    assert not_allowed.status == Status.LEFT_EARLY and not_allowed.makeup_seconds == 0
    too_late = assess(live + replay, starts_at=START, ends_at=END,
                      makeup_deadline=END + timedelta(hours=12))  # fmt: skip
    assert too_late.status == Status.LEFT_EARLY
    short = assess(live + replay[:60], starts_at=START, ends_at=END, makeup_deadline=deadline)
    assert short.status == Status.LEFT_EARLY  # 30 + 30 minutes: not enough


@given(events_strategy, st.lists(st.integers(0, 7 * 86400), max_size=80))
def test_make_up_never_counts_more_than_the_session(raw, replay_offsets):
    replay = [(END + timedelta(seconds=o), "replay", "heartbeat") for o in replay_offsets]
    record = assess(to_events(raw) + replay, starts_at=START, ends_at=END,
                    makeup_deadline=END + timedelta(days=7))  # fmt: skip
    assert 0 <= record.seconds + record.makeup_seconds <= LENGTH + 1e-6


def test_an_unanswered_presence_check_counts_as_away_until_the_answer():
    """Watching all along, but the 16:40 "still listening?" is answered only at 16:55:
    those 15 minutes count as away, and the explanation says why."""
    beats = [(START + timedelta(seconds=s), "player", "heartbeat") for s in range(0, 7200, 30)]
    check = START + timedelta(minutes=40)
    late = beats + [(check, "player", "check"), (check + timedelta(minutes=15), "player", "answer")]
    record = assess(late, starts_at=START, ends_at=END)
    assert record.minutes == 105 and [(a.start, a.end) for a in record.away] == [
        (check, check + timedelta(minutes=15))
    ]
    in_time = beats + [
        (check, "player", "check"),
        (check + timedelta(seconds=20), "player", "answer"),
    ]
    assert assess(in_time, starts_at=START, ends_at=END).minutes == 120
    never = beats + [(check, "player", "check")]
    assert assess(never, starts_at=START, ends_at=END).minutes == 40  # away to the end


@given(events_strategy, st.lists(st.integers(0, 7200), max_size=5))
def test_presence_checks_only_ever_take_time_away(raw, checks):
    events = to_events(raw)
    asked = events + [(START + timedelta(seconds=c), "player", "check") for c in checks]
    assert seconds(asked) <= seconds(events) + 1e-6
