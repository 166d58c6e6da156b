"""The prefetch window (trio_brod.consumer._window) as plain data: no client, no Trio.

The rules tested are those of the module docstring: the window's limits, delivery in order
and exactly once, which acks are valid, and where a later subscriber continues.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from tests.fakes.batches import (
    Chunk,
    batch_bytes,
    build_log,
    log_shapes,
    logs,
    offsets_of,
    partition_data,
)
from trio_brod import ConsumerConfig, MessageSet, Timestamp
from trio_brod._config import BeginOffset
from trio_brod.consumer._fetch import Run, select_runs
from trio_brod.consumer._window import Window, begin_for


def fetched(records: bytes, start: int = 0) -> tuple[list[Run], int]:
    selected = select_runs("t", 0, start, partition_data(records), "read_uncommitted")
    return selected.runs, selected.next_offset


def window_with(log: bytes, count: int, size: int) -> Window:
    window = Window(count, size, 0)
    window.add(*fetched(log))
    return window


def as_set(runs: list[Run]) -> MessageSet:
    return MessageSet("t", 0, 10**6, runs)


# ------------------------------------------------------------------ examples


def test_the_window_stops_delivery_and_acks_resume_it() -> None:
    window = window_with(batch_bytes(0, 40) + batch_bytes(40, 40), 25, 10**9)
    first = as_set(window.take())
    assert (first.first_offset, first.high_offset, len(first)) == (0, 24, 25)
    assert window.take() == []  # the window is full
    window.ack(10)  # a set makes room only once acknowledged to its end
    assert window.take() == []
    window.ack(24)
    second = as_set(window.take())
    assert (second.first_offset, second.high_offset) == (25, 49)
    with pytest.raises(ValueError, match="only offsets up to 49"):
        window.ack(50)


def test_a_message_larger_than_the_window_goes_alone() -> None:
    window = window_with(batch_bytes(0, 1, size=200) + batch_bytes(1, 1, size=200), 100, 50)
    first = as_set(window.take())
    assert len(first) == 1
    assert window.unacked_bytes > window.prefetch_bytes
    assert window.take() == []
    window.ack(first.high_offset)
    assert [len(as_set(window.take()))] == [1]


def test_acking_less_than_before_changes_nothing() -> None:
    window = window_with(batch_bytes(0, 10), 100, 10**9)
    window.take()
    window.ack(7)
    window.ack(3)
    assert window.acked == 7
    assert window.hand_on() == 8


@pytest.mark.parametrize("begin", ["earliest", "latest", Timestamp(5)])
def test_an_unresolved_start_is_handed_on_as_asked(begin: BeginOffset) -> None:
    window = Window(10, 10**6, begin)
    assert window.offset is None
    assert window.hand_on() == begin  # left before it was resolved: resolve it anew
    window.start_at(30)
    assert window.hand_on() == 30


def test_a_reset_moves_the_start_only_without_acks() -> None:
    window = Window(10, 10**6, 0)
    window.reset_to(12)
    assert (window.offset, window.hand_on()) == (12, 12)
    window.add(*fetched(batch_bytes(12, 5), 12))
    window.take()
    window.ack(13)
    window.reset_to(100)
    assert (window.offset, window.hand_on()) == (100, 14)


@pytest.mark.parametrize(
    ("configured", "named", "handed_on", "expected"),
    [
        ("latest", False, None, "latest"),  # the first subscriber: the config
        ("latest", False, 42, 42),  # later ones continue where the last one left
        ("latest", False, "earliest", "earliest"),  # ... even if that was never resolved
        (7, True, 42, 7),  # a named begin_offset wins over older acks
        ("latest", True, 42, "latest"),
    ],
)
def test_begin_for(
    configured: BeginOffset, named: bool, handed_on: BeginOffset | None, expected: BeginOffset
) -> None:
    assert begin_for(configured, named, handed_on) == expected


@settings(max_examples=150, deadline=None)
@given(log=logs(), data=st.data())
def test_a_subscriber_sees_every_message_once_in_order(
    log: tuple[bytes, int, int], data: st.DataObject
) -> None:
    records, start, _end = log
    config = ConsumerConfig(
        prefetch_count=data.draw(st.integers(1, 40), label="prefetch_count"),
        prefetch_bytes=data.draw(st.integers(1, 3000), label="prefetch_bytes"),
    )
    window = Window(config.prefetch_count, config.prefetch_bytes, start)
    runs, next_offset = fetched(records, start)
    expected = offsets_of(runs)
    window.add(runs, next_offset)
    pending: list[MessageSet] = []
    seen: list[int] = []
    for _ in range(10_000):
        taken = window.take()
        if taken:
            pending.append(as_set(taken))
        if not pending:
            break
        done = pending if data.draw(st.booleans(), label="ack all") else pending[:1]
        window.ack(done[-1].high_offset)
        for message_set in done:
            seen += [m.offset for m in message_set]
        del pending[: len(done)]
    assert seen == expected
    assert window.unacked_count == window.unacked_bytes == 0
    assert not window.undelivered
    assert window.offset == next_offset


# ------------------------------------------------------------------ the state machine


class WindowMachine(RuleBasedStateMachine):
    """Fetches, deliveries and acks in any order, against a model of what is pending."""

    window: Window

    def __init__(self) -> None:
        super().__init__()
        self.next_base = 0  # where the next fetched log starts
        self.fetched: list[int] = []  # offsets of every record added, in order
        self.delivered: list[int] = []  # offsets of every record delivered, in order
        self.pending: list[MessageSet] = []  # delivered sets not acknowledged (wholly)
        self.start = 0
        self.acked: int | None = None

    @initialize(
        count=st.integers(1, 40),
        size=st.integers(1, 3000),
        start=st.integers(0, 5),
    )
    def open(self, count: int, size: int, start: int) -> None:
        self.window = Window(count, size, start)
        self.start = self.next_base = start

    @precondition(lambda self: len(self.fetched) < 400)
    @rule(shape=log_shapes())
    def fetch(self, shape: list[Chunk]) -> None:
        """A fetch answer: a log right after what was fetched before."""
        records, end = build_log(shape, self.next_base)
        runs, next_offset = fetched(records, self.next_base)
        assert next_offset == end
        self.window.add(runs, next_offset)
        self.fetched += offsets_of(runs)
        self.next_base = end

    @rule()
    def take(self) -> None:
        window = self.window
        nothing_unacked = window.unacked_count == 0
        had_records = any(run.length() for run in window.undelivered)
        runs = window.take()
        if nothing_unacked and had_records:
            assert runs, "with nothing unacknowledged, something is always delivered"
        if not runs:
            return
        message_set = as_set(runs)
        assert len(message_set) > 0
        self.pending.append(message_set)
        self.delivered += [m.offset for m in message_set]
        assert window.last_delivered == message_set.high_offset

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        """Ack the end of some pending set, or any delivered offset inside one."""
        message_set = data.draw(st.sampled_from(self.pending))
        offsets = [m.offset for m in message_set]
        offset = data.draw(st.sampled_from([*offsets, message_set.high_offset]))
        self.window.ack(offset)
        self.acked = offset if self.acked is None else max(self.acked, offset)
        self.pending = [s for s in self.pending if s.high_offset > offset]

    @rule(beyond=st.integers(1, 100))
    def ack_beyond(self, beyond: int) -> None:
        """An offset not delivered yet is refused, and changes nothing."""
        window = self.window
        before = (window.acked, window.unacked_count, window.unacked_bytes, window.hand_on())
        with pytest.raises(ValueError, match="cannot acknowledge"):
            window.ack(window.last_delivered + beyond)
        assert (window.acked, window.unacked_count, window.unacked_bytes, window.hand_on()) == (
            before
        )

    @invariant()
    def limits_hold(self) -> None:
        window = self.window
        assert window.unacked_count == sum(len(s) for s in self.pending)
        assert window.unacked_bytes == sum(s.size for s in self.pending)
        assert window.unacked_count <= window.prefetch_count
        lone_giant = len(self.pending) == 1 and len(self.pending[0]) == 1
        assert window.unacked_bytes <= window.prefetch_bytes or lone_giant

    @invariant()
    def delivered_in_order_exactly_once(self) -> None:
        assert self.delivered == self.fetched[: len(self.delivered)]

    @invariant()
    def resume_follows_the_acks(self) -> None:
        expected = self.start if self.acked is None else self.acked + 1
        assert self.window.hand_on() == expected


WindowMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
test_window_machine = WindowMachine.TestCase
