"""The producer buffer's ordering rules, checked by a hypothesis state machine.

The machine plays the worker and an idempotent broker: it accepts calls, sends batches,
acknowledges or fails the oldest batch on the wire, retries failures or gives up on them.
Whatever the interleaving, the log the "broker" writes must hold the accepted calls in the
order they were accepted, minus those given up on, each exactly once.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from trio_brod._producer_buffer import Call, ProducerBuffer, WireBatch


def make_call(index: int, records: int, size: int) -> Call:
    return Call("t", 0, [(index, None, b"x", ())] * records, size)


class BufferMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.buffer: ProducerBuffer | None = None
        self.accepted: list[Call] = []
        # Records per call (a done call drops its records).
        self.counts: dict[int, int] = {}
        self.given_up: set[int] = set()
        self.log: list[Call] = []
        self.log_end = 0
        # After the oldest batch on the wire failed, an idempotent broker rejects the rest.
        self.failed_this_round: list[WireBatch] = []

    @rule(
        max_batch_size=st.integers(min_value=1, max_value=50),
        onwire_limit=st.integers(min_value=1, max_value=5),
    )
    @precondition(lambda self: self.buffer is None)
    def configure(self, max_batch_size: int, onwire_limit: int) -> None:
        self.buffer = ProducerBuffer(max_batch_size=max_batch_size, onwire_limit=onwire_limit)

    @rule(
        records=st.integers(min_value=1, max_value=4), size=st.integers(min_value=1, max_value=60)
    )
    @precondition(lambda self: self.buffer is not None)
    def accept(self, records: int, size: int) -> None:
        assert self.buffer is not None
        call = make_call(len(self.accepted), records, size)
        self.accepted.append(call)
        self.counts[id(call)] = records
        self.buffer.add(call)

    @rule()
    @precondition(
        lambda self: (
            self.buffer is not None and self.buffer.can_send() and not self.failed_this_round
        )
    )
    def send(self) -> None:
        assert self.buffer is not None
        retrying = bool(self.buffer.retry)
        batch = self.buffer.take_batch()
        if not retrying:
            assert batch.size <= self.buffer.max_batch_size or len(batch.calls) == 1
        self.buffer.sent(batch)

    @rule()
    @precondition(
        lambda self: self.buffer is not None and self.buffer.onwire and not self.failed_this_round
    )
    def acknowledge(self) -> None:
        assert self.buffer is not None
        batch = self.buffer.acknowledge(self.log_end)
        for call in batch.calls:
            assert call.result() == self.log_end
            self.log.append(call)
            assert call.records == ()
            self.log_end += self.counts[id(call)]

    @rule()
    @precondition(lambda self: self.buffer is not None and self.buffer.onwire)
    def fail_oldest(self) -> None:
        assert self.buffer is not None
        self.failed_this_round.append(self.buffer.fail_first())

    @rule(give_up=st.booleans())
    @precondition(
        lambda self: self.buffer is not None and self.failed_this_round and not self.buffer.onwire
    )
    def end_round(self, give_up: bool) -> None:
        assert self.buffer is not None
        failed = self.failed_this_round
        self.failed_this_round = []
        if give_up:
            first = failed.pop(0)
            first.fail(RuntimeError("gave up"))
            self.given_up.update(id(call) for call in first.calls)
        self.buffer.requeue_failed(failed)

    @rule()
    @precondition(
        lambda self: (
            self.buffer is not None
            and len(self.buffer.retry) == 0
            and not self.buffer.onwire
            and len(self.buffer.queued) > 0
            and not self.failed_this_round
        )
    )
    def split_next(self) -> None:
        # A batch refused as too large goes back as two halves, in order.
        assert self.buffer is not None
        batch = self.buffer.take_batch()
        if len(batch.calls) >= 2:
            self.buffer.requeue_failed(batch.split())
        else:
            self.buffer.requeue_failed([batch])

    @invariant()
    def limits_hold(self) -> None:
        if self.buffer is None:
            return
        assert len(self.buffer.onwire) <= self.buffer.onwire_limit
        assert self.buffer.queued_bytes == sum(call.size for call in self.buffer.queued)

    @invariant()
    def log_is_the_accepted_order(self) -> None:
        written = [id(call) for call in self.log]
        expected = [id(call) for call in self.accepted if id(call) not in self.given_up]
        assert written == expected[: len(written)]

    @invariant()
    def every_call_is_somewhere_once(self) -> None:
        if self.buffer is None:
            return
        places: list[int] = [id(call) for call in self.buffer.queued]
        for batch in (*self.buffer.retry, *self.buffer.onwire, *self.failed_this_round):
            places.extend(id(call) for call in batch.calls)
        places.extend(id(call) for call in self.log)
        places.extend(self.given_up)
        assert sorted(places) == sorted(id(call) for call in self.accepted)


BufferMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
TestProducerBuffer = BufferMachine.TestCase


def test_fail_all_fails_every_receipt() -> None:
    buffer = ProducerBuffer(max_batch_size=10, onwire_limit=2)
    calls = [make_call(i, 1, 4) for i in range(5)]
    for call in calls:
        buffer.add(call)
    buffer.sent(buffer.take_batch())
    buffer.requeue_failed([buffer.fail_first()])
    buffer.fail_all(ValueError("closed"))
    assert buffer.is_empty()
    for call in calls:
        with pytest.raises(ValueError, match="closed"):
            call.result()


def test_a_call_larger_than_max_batch_size_travels_alone() -> None:
    buffer = ProducerBuffer(max_batch_size=10, onwire_limit=1)
    big, small = make_call(0, 3, 25), make_call(1, 1, 2)
    buffer.add(big)
    buffer.add(small)
    assert buffer.take_batch().calls == [big]
    assert buffer.take_batch().calls == [small]


def test_batch_offsets_follow_records() -> None:
    buffer = ProducerBuffer(max_batch_size=100, onwire_limit=1)
    first, second = make_call(0, 3, 5), make_call(1, 2, 5)
    buffer.add(first)
    buffer.add(second)
    buffer.sent(buffer.take_batch())
    buffer.acknowledge(100)
    assert first.result() == 100
    assert second.result() == 103


def test_unsplittable_batch() -> None:
    with pytest.raises(ValueError, match="cannot be split"):
        WireBatch([make_call(0, 1, 1)]).split()


def test_split_halves_keep_the_sequence_numbers() -> None:
    batch = WireBatch([make_call(0, 2, 5), make_call(1, 1, 5), make_call(2, 3, 5)])
    batch.producer_id, batch.producer_epoch, batch.base_sequence = 7, 3, 100
    batch.encoded = b"old bytes"
    first, second = batch.split()
    assert [len(c.records) for c in first.calls] == [2]
    assert [len(c.records) for c in second.calls] == [1, 3]
    assert (first.producer_id, first.producer_epoch, first.base_sequence) == (7, 3, 100)
    assert (second.producer_id, second.producer_epoch, second.base_sequence) == (7, 3, 102)
    assert first.encoded is None
    assert second.encoded is None  # encoded afresh
    assert first.attempts == second.attempts == 0


def test_split_of_an_unsequenced_batch_stays_unsequenced() -> None:
    first, second = WireBatch([make_call(0, 1, 5), make_call(1, 1, 5)]).split()
    assert first.base_sequence == second.base_sequence == -1


def test_split_sequence_wraps_around() -> None:
    batch = WireBatch([make_call(0, 3, 5), make_call(1, 1, 5)])
    batch.producer_id, batch.producer_epoch, batch.base_sequence = 7, 0, 2**31 - 2
    _, second = batch.split()
    assert second.base_sequence == 1
