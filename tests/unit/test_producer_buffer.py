"""The producer buffer's ordering rules, checked by a hypothesis state machine.

The machine plays the worker and an idempotent broker: it accepts calls, sends batches,
acknowledges or fails the oldest batch on the wire, retries failures or gives up on them.
Whatever the interleaving, the log the "broker" writes must hold the accepted calls in the
order they were accepted, minus those given up on, each exactly once.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from trio_brod.producer._buffer import (
    Call,
    Failure,
    ProducerBuffer,
    SequenceGap,
    WireBatch,
    sequence_gap,
)


def make_call(index: int, records: int, size: int) -> Call:
    return Call("t", 0, [(index, None, b"x", ())] * records, size)


class BufferMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.buffer: ProducerBuffer | None = None
        self.max_retries = -1
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
        max_retries=st.integers(min_value=-1, max_value=3),
    )
    @precondition(lambda self: self.buffer is None)
    def configure(self, max_batch_size: int, onwire_limit: int, max_retries: int) -> None:
        self.buffer = ProducerBuffer(max_batch_size=max_batch_size, onwire_limit=onwire_limit)
        self.max_retries = max_retries

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

    @rule(lost=st.booleans())
    @precondition(lambda self: self.buffer is not None and self.buffer.onwire)
    def fail_oldest(self, lost: bool) -> None:
        assert self.buffer is not None
        batch = self.buffer.fail_first()
        if lost:
            batch.maybe_written = True  # as the worker marks a lost response
        self.failed_this_round.append(batch)

    @rule(refused=st.booleans())
    @precondition(
        lambda self: self.buffer is not None and self.failed_this_round and not self.buffer.onwire
    )
    def end_round(self, refused: bool) -> None:
        # The first batch of the round may have been refused for good; the others fail
        # with a retriable error. Every batch out of attempts is given up, none other.
        assert self.buffer is not None
        failed = self.failed_this_round
        self.failed_this_round = []
        failures = [Failure(batch, RuntimeError("failed")) for batch in failed]
        failures[0] = Failure(failed[0], failures[0].error, refused)
        given_up, _ = self.buffer.end_round(failures, self.max_retries)
        expected = [
            f.batch for f in failures if f.final or 0 <= self.max_retries < f.batch.attempts
        ]
        assert [batch for batch, _ in given_up] == expected
        for batch, error in given_up:
            batch.fail(error)
            self.given_up.update(id(call) for call in batch.calls)
        back = [batch for batch in failed if batch not in expected]
        assert list(self.buffer.retry)[: len(back)] == back

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
        # Rule 7: nothing on the wire behind a retry that may be in the log already.
        assert not any(batch.maybe_written for batch in list(self.buffer.onwire)[:-1])
        assert self.buffer.queued_bytes == sum(call.size for call in self.buffer.queued)

    @invariant()
    def no_batch_is_sent_more_than_max_retries_plus_one_times(self) -> None:
        if self.buffer is None or self.max_retries < 0:
            return
        for batch in self.buffer.onwire:
            assert batch.attempts <= self.max_retries + 1

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


@st.composite
def sequenced_history(draw: st.DrawFn) -> tuple[list[tuple[WireBatch, bool]], list[bool]]:
    """Failed and pending batches of a partition in sequence order, each with whether it
    is given up, and a ground truth the flags allow: which of them the broker wrote. A
    broker writes in sequence order, so the written ones are a prefix of the sequenced
    ones; a batch written is always ``maybe_written``."""
    count = draw(st.integers(0, 8))
    batches: list[tuple[WireBatch, bool]] = []
    written: list[bool] = []
    writing = True
    for index in range(count):
        batch = WireBatch([make_call(index, 1, 1)])
        sequenced = draw(st.booleans()) or index == 0
        if sequenced:
            batch.base_sequence = index
            writing = writing and draw(st.booleans())
            batch.maybe_written = writing or draw(st.booleans())
        written.append(sequenced and writing)
        batches.append((batch, draw(st.booleans())))
    return batches, written


@given(sequenced_history())
def test_renumbering_never_rewrites_a_batch_the_broker_may_hold(
    history: tuple[list[tuple[WireBatch, bool]], list[bool]],
) -> None:
    batches, written = history
    gap = sequence_gap(batches)
    sequenced = [(batch, out) for batch, out in batches if batch.base_sequence >= 0]
    # A gap exactly when a batch with sequence numbers is given up.
    assert (gap is SequenceGap.NONE) == (not any(out for _, out in sequenced))
    if gap is SequenceGap.RENUMBER:
        # Whatever the truth, no pending batch is in the log: renumbering writes nothing
        # twice.
        assert not any(w for (_, out), w in zip(batches, written, strict=True) if not out)
    if gap is SequenceGap.UNRESOLVED:
        # Renumbering is refused only when the flags allow a pending batch in the log:
        # everything up to it may have been written.
        for index, (_, out) in enumerate(sequenced):
            if not out and all(b.maybe_written for b, _ in sequenced[: index + 1]):
                break
        else:
            raise AssertionError("renumbering refused without a pending batch at risk")


def test_end_round_gives_up_every_batch_out_of_attempts() -> None:
    # Five batches sent four times each, all refused: with max_retries=3 all five are given
    # up, not only the first (one left behind would be sent a fifth time).
    buffer = ProducerBuffer(max_batch_size=1, onwire_limit=5)
    batches = [WireBatch([make_call(i, 1, 1)]) for i in range(6)]
    for number, batch in enumerate(batches):
        batch.base_sequence = number
        batch.attempts = 4 if number < 5 else 1
    error = RuntimeError("too few replicas")
    given_up, gap = buffer.end_round([Failure(batch, error) for batch in batches], 3)
    assert [batch for batch, _ in given_up] == batches[:5]
    assert list(buffer.retry) == batches[5:]
    assert batches[5].cause is error
    assert gap is SequenceGap.RENUMBER
