"""The group subscriber's per-partition loop (trio_brod.groups.subscriber), without broker.

The loop is the hot path of the default ``message_type="message"``, so it does per message
only the handler call and, for a done message, moving the partition's position; the prefetch
window is acknowledged once per message set. These tests hold it to the outcomes' documented
meaning (None: done, ``"ack"``: window only, False: neither) against a model that applies
each outcome message by message, and check what a commit running meanwhile, a revocation and
a failing handler see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from trio_brod.consumer.message_set import MessageSet
from trio_brod.groups._assigned import AssignedPartition
from trio_brod.groups.subscriber import _consume, _handle_messages
from trio_brod.protocol.records import Record


@dataclass
class _Run:
    """A fetched run of records, as far as a MessageSet uses one."""

    recs: list[Record]
    first: int
    last: int

    def records(self, *, keep: bool = True) -> list[Record]:
        return self.recs

    def length(self) -> int:
        return len(self.recs)

    def size(self) -> int:
        return 10 * len(self.recs)


def message_set(first: int, count: int, *, runs: int = 1, gap_at_end: int = 0) -> MessageSet:
    """``count`` records from ``first``, split into ``runs`` runs; ``gap_at_end`` offsets
    after the last record are covered by the set too (compaction removed them)."""
    records = [Record(first + i, 0, 0, b"k", b"v%d" % i, ()) for i in range(count)]
    size = -(-count // runs)
    chunks = [records[i : i + size] for i in range(0, count, size)]
    built = [_Run(chunk, chunk[0].offset, chunk[-1].offset) for chunk in chunks]
    built[-1].last += gap_at_end
    return MessageSet("t", 0, first + count + gap_at_end, built)  # type: ignore[arg-type]


@dataclass
class _Subscription:
    """What the loop needs of a Subscription: receive() and ack(), recorded."""

    sets: list[MessageSet] = field(default_factory=list)
    acks: list[int] = field(default_factory=list)

    async def receive(self) -> MessageSet:
        await trio.lowlevel.checkpoint()
        if not self.sets:
            raise StopAsyncIteration
        return self.sets.pop(0)

    def ack(self, offset: int) -> None:
        self.acks.append(offset)


def assigned_partition() -> tuple[AssignedPartition, list[int]]:
    """An AssignedPartition whose on_ack records every (window) acknowledgement."""

    async def commit(assigned: AssignedPartition) -> None:
        await trio.lowlevel.checkpoint()

    assigned = AssignedPartition("t", 0, 1, "m", None, commit)
    on_ack: list[int] = []
    assigned.on_ack = on_ack.append
    return assigned, on_ack


def model(outcomes: list[Any], first: int, high: int) -> tuple[int | None, int | None]:
    """(position, window ack) after handling a set message by message, as documented."""
    position = window = None
    for offset, outcome in enumerate(outcomes, first):
        if outcome is None:
            position = offset + 1
            window = offset
        elif outcome == "ack":
            window = offset
    if all(outcome is None for outcome in outcomes):
        window = high  # a set handled completely is acknowledged to its end
        position = high + 1
    return position, window


@given(
    outcomes=st.lists(st.sampled_from([None, "ack", False]), min_size=1, max_size=40),
    runs=st.integers(1, 4),
    gap=st.integers(0, 3),
)
def test_outcomes_move_position_and_window_as_handling_one_by_one_would(
    outcomes: list[Any], runs: int, gap: int
) -> None:
    first = 100
    ms = message_set(first, len(outcomes), runs=min(runs, len(outcomes)), gap_at_end=gap)
    assigned, on_ack = assigned_partition()
    subscription = _Subscription()
    seen: list[int] = []

    async def handle(message: Record) -> Any:
        seen.append(message.offset)
        return outcomes[message.offset - first]

    async def main() -> None:
        assert await _handle_messages(assigned, subscription, handle, ms)  # type: ignore[arg-type]

    trio.run(main)
    position, window = model(outcomes, first, ms.high_offset)
    assert seen == list(range(first, first + len(outcomes)))
    assert assigned.position == position
    # The window is acknowledged at most once per set, to where the model gets it.
    assert subscription.acks + on_ack == ([] if window is None else [window])


async def test_a_commit_during_the_set_sees_the_messages_done_so_far() -> None:
    assigned, _ = assigned_partition()
    positions: list[int | None] = []

    async def handle(message: Record) -> None:
        # What a commit running while this message is handled would commit.
        positions.append(assigned.position)
        await trio.lowlevel.checkpoint()

    await _handle_messages(assigned, _Subscription(), handle, message_set(10, 4))  # type: ignore[arg-type]
    assert positions == [None, 11, 12, 13]
    assert assigned.position == 14


async def test_a_handler_acknowledging_ahead_is_not_moved_back() -> None:
    assigned, _ = assigned_partition()

    async def handle(message: Record) -> None:
        if message.offset == 10:
            assigned.position = 13  # as assigned.ack(12) does, without the window
        await trio.lowlevel.checkpoint()

    await _handle_messages(assigned, _Subscription(), handle, message_set(10, 2))  # type: ignore[arg-type]
    assert assigned.position == 13


async def test_revocation_stops_after_the_current_message_with_it_acknowledged() -> None:
    assigned, _ = assigned_partition()
    subscription = _Subscription()
    handled: list[int] = []

    async def handle(message: Record) -> None:
        handled.append(message.offset)
        if message.offset == 12:
            assigned.start_revoke()
        await trio.lowlevel.checkpoint()

    keep_going = await _handle_messages(assigned, subscription, handle, message_set(10, 6))  # type: ignore[arg-type]
    assert not keep_going
    assert handled == [10, 11, 12]
    assert assigned.position == 13
    assert subscription.acks == [12]


async def test_a_failing_handler_leaves_what_was_done_acknowledged() -> None:
    assigned, _ = assigned_partition()
    subscription = _Subscription()

    async def handle(message: Record) -> None:
        await trio.lowlevel.checkpoint()
        if message.offset == 12:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await _handle_messages(assigned, subscription, handle, message_set(10, 6))  # type: ignore[arg-type]
    assert assigned.position == 12
    assert subscription.acks == [11]


async def test_an_outcome_that_is_none_of_the_three_is_a_type_error() -> None:
    assigned, _ = assigned_partition()

    async def handle(message: Record) -> Any:
        await trio.lowlevel.checkpoint()
        return True

    with pytest.raises(TypeError, match="None, 'ack' or False, not True"):
        await _handle_messages(assigned, _Subscription(), handle, message_set(10, 2))  # type: ignore[arg-type]


async def test_the_loop_consumes_set_after_set_until_the_subscription_ends() -> None:
    assigned, on_ack = assigned_partition()
    subscription = _Subscription(sets=[message_set(0, 3), message_set(3, 2, gap_at_end=2)])
    handled: list[int] = []

    async def handle(assigned: AssignedPartition, message: Record) -> None:
        handled.append(message.offset)
        await trio.lowlevel.checkpoint()

    await _consume(assigned, subscription, partial(handle, assigned), "message")  # type: ignore[arg-type]
    assert handled == [0, 1, 2, 3, 4]
    assert on_ack == [2, 6]  # each set acknowledged once, to its end (the gap included)
    assert assigned.position == 7
    assert assigned.high_watermark == 7
