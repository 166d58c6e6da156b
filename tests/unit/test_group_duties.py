"""The schedule of a group member's periodic duties (trio_brod.groups._duties), pure."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from trio_brod.groups._duties import Duty, DutySchedule, Period

PERIODS = {
    Duty.HEARTBEAT: Period(3.0, fixed_rate=True),
    Duty.COMMIT: Period(5.0),
    Duty.TOPICS: Period(300.0),
}


def test_each_duty_is_first_due_a_period_after_the_start() -> None:
    schedule = DutySchedule(10.0, PERIODS)
    assert schedule.next_due() == 13.0
    assert schedule.take(12.9) == []
    assert schedule.take(13.5) == [(Duty.HEARTBEAT, 0.5)]
    assert schedule.busy(Duty.HEARTBEAT)
    assert schedule.next_due() == 15.0  # the heartbeat in flight is not due


def test_duties_due_together_come_heartbeat_first_and_a_missing_one_never() -> None:
    schedule = DutySchedule(0.0, {Duty.TOPICS: Period(1.0), Duty.HEARTBEAT: Period(1.0, True)})
    assert schedule.take(2.0) == [(Duty.HEARTBEAT, 1.0), (Duty.TOPICS, 1.0)]
    assert not schedule.busy(Duty.COMMIT)
    assert schedule.next_due() == math.inf


def test_a_heartbeat_is_due_a_period_after_it_started_or_when_a_slow_answer_came() -> None:
    schedule = DutySchedule(0.0, PERIODS)
    schedule.take(3.0)
    assert schedule.finish(Duty.HEARTBEAT, 3.5) == 6.0  # counted from the start
    schedule.take(6.0)
    assert schedule.finish(Duty.HEARTBEAT, 10.0) == 10.0  # at once: the answer was slow
    assert schedule.take(10.0) == [(Duty.HEARTBEAT, 0.0)]  # not late: nothing blocked


def test_commits_and_topic_checks_pause_a_period_after_each_call() -> None:
    schedule = DutySchedule(0.0, PERIODS)
    assert schedule.take(5.0) == [(Duty.HEARTBEAT, 2.0), (Duty.COMMIT, 0.0)]
    assert schedule.finish(Duty.COMMIT, 7.0) == 12.0


@given(
    st.lists(
        st.tuples(st.sampled_from(list(Duty)), st.floats(0.0, 20.0), st.booleans()),
        max_size=60,
    )
)
def test_a_timer_task_driven_by_the_schedule_keeps_every_duty_s_period(
    calls: list[tuple[Duty, float, bool]],
) -> None:
    # The timer task's loop, with calls that take the drawn times: it wakes at next_due(),
    # or when a call ends (what call_in_task does). A drawn duty with False has nothing to
    # do and is finished at once.
    schedule = DutySchedule(0.0, PERIODS)
    durations = {duty: [(d, send) for dd, d, send in calls if dd is duty] for duty in Duty}
    ends: dict[Duty, float] = {}  # the end of each call in flight
    starts: dict[Duty, list[tuple[float, float]]] = {duty: [] for duty in Duty}  # (start, end)
    clock = 0.0
    for _ in range(200):
        wake = min([schedule.next_due(), *ends.values()])
        assert wake >= clock
        clock = wake
        for duty, end in sorted(ends.items(), key=lambda item: item[1]):
            if end <= clock:
                del ends[duty]
                schedule.finish(duty, end)
        for duty, late in schedule.take(clock):
            assert late == 0.0  # it woke up in time: no blocked event loop to warn of
            assert duty not in ends  # never two calls of one duty at once
            duration, send = durations[duty].pop(0) if durations[duty] else (0.0, False)
            if send:
                ends[duty] = clock + duration
                starts[duty].append((clock, clock + duration))
            else:
                schedule.finish(duty, clock)
                starts[duty].append((clock, clock))
            assert schedule.busy(duty) is send
    for duty, period in PERIODS.items():
        previous_start, previous_end = 0.0, 0.0
        for start, end in starts[duty]:
            if period.fixed_rate:
                # Never sooner than a period after the last start, nor than its answer; and
                # exactly then (the timer task is never late here).
                assert start == max(previous_start + period.seconds, previous_end)
            else:
                assert start == previous_end + period.seconds
            previous_start, previous_end = start, end
