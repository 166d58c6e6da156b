"""The fake Kafka's transaction coordinator rules (``_transactions``), driven by hypothesis.

A state machine plays producer instances of a few transactional ids against the pure core,
with a clock it moves, and keeps a model of what each transaction holds. Invariants: only
the newest instance of an id is served (older ones are fenced), epochs never go back, an
ended transaction marks exactly the partitions it added and publishes its offsets only on
commit, and the coordinator aborts exactly the transactions that outlived their timeout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from trio_brod.protocol.errors import (
    ConcurrentTransactionsError,
    InvalidProducerEpochError,
    InvalidProducerIdMappingError,
    InvalidTransactionTimeoutError,
    InvalidTxnStateError,
    ProducerFencedError,
)
from trio_brod.protocol.records import ControlRecordType, encode_batch, encode_control_batch
from trio_brod.testing.fake import LogError, PartitionLog
from trio_brod.testing.fake._transactions import (
    COMPLETE_ABORT,
    COMPLETE_COMMIT,
    ONGOING,
    Ended,
    Transactions,
)

IDS = ("a", "b")
PARTITIONS = [("t", 0), ("t", 1), ("u", 0)]
TIMEOUT_MS = 10_000


@dataclass
class Expected:
    """What the model says a transactional id's open transaction holds."""

    partitions: set[tuple[str, int]] = field(default_factory=set)
    offsets: dict[str, dict[tuple[str, int], int]] = field(default_factory=dict)
    groups: set[str] = field(default_factory=set)
    deadline: float | None = None


class Coordinator(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.counter = 0
        self.txns: Transactions[int] = Transactions(self.new_id)
        self.now = 0.0
        #: transactional id -> every (producer id, epoch) handed out, oldest first.
        self.instances: dict[str, list[tuple[int, int]]] = {}
        self.expected: dict[str, Expected] = {}
        self.epochs: dict[int, int] = {}

    def new_id(self) -> int:
        self.counter += 1
        return 1000 + self.counter

    def newest(self, tid: str) -> tuple[int, int]:
        return self.instances[tid][-1]

    def check_ended(self, ended: Ended[int], *, commit: bool) -> None:
        expected = self.expected.pop(ended.transactional_id)
        assert ended.commit is commit
        assert set(ended.partitions) == expected.partitions
        assert ended.offsets == (expected.offsets if commit else {})

    # -- rules ---------------------------------------------------------------------------

    @rule(tid=st.sampled_from(IDS), bad_timeout=st.booleans())
    def init(self, tid: str, bad_timeout: bool) -> None:
        if bad_timeout:
            result = self.txns.init(tid, 0)
            assert result.error is InvalidTransactionTimeoutError
            return
        result = self.txns.init(tid, TIMEOUT_MS)
        if result.error is ConcurrentTransactionsError:
            # An open transaction: aborted under a fenced epoch; the retry gets the next.
            assert result.aborted is not None
            self.check_ended(result.aborted, commit=False)
            result = self.txns.init(tid, TIMEOUT_MS)
        assert result.error is None
        assert result.aborted is None
        previous = self.epochs.get(result.producer_id, -1)
        assert result.epoch > previous
        self.epochs[result.producer_id] = result.epoch
        self.instances.setdefault(tid, []).append((result.producer_id, result.epoch))
        assert tid not in self.expected

    @precondition(lambda self: self.instances)
    @rule(data=st.data(), partitions=st.sets(st.sampled_from(PARTITIONS), min_size=1))
    def add_partitions(self, data: st.DataObject, partitions: set[tuple[str, int]]) -> None:
        tid = data.draw(st.sampled_from(sorted(self.instances)))
        instance = data.draw(st.sampled_from(self.instances[tid]))
        error = self.txns.add_partitions(self.now, tid, *instance, partitions)
        if instance != self.newest(tid):
            assert error is ProducerFencedError
            return
        assert error is None
        expected = self.expected.setdefault(tid, Expected(deadline=self.now + TIMEOUT_MS / 1000))
        expected.partitions |= partitions

    @precondition(lambda self: self.instances)
    @rule(
        data=st.data(),
        group=st.sampled_from(["g1", "g2"]),
        offset=st.integers(0, 100),
        partition=st.sampled_from(PARTITIONS),
    )
    def send_offsets(
        self, data: st.DataObject, group: str, offset: int, partition: tuple[str, int]
    ) -> None:
        tid = data.draw(st.sampled_from(sorted(self.instances)))
        instance = data.draw(st.sampled_from(self.instances[tid]))
        added = data.draw(st.booleans())
        if added:
            error = self.txns.add_offsets(self.now, tid, *instance, group)
            if instance != self.newest(tid):
                assert error is ProducerFencedError
                return
            assert error is None
            expected = self.expected.setdefault(
                tid, Expected(deadline=self.now + TIMEOUT_MS / 1000)
            )
            expected.groups.add(group)
        error = self.txns.verify_offsets(tid, *instance, group)
        if instance != self.newest(tid):
            assert error is ProducerFencedError
            return
        expected_or_none = self.expected.get(tid)
        if expected_or_none is None or group not in expected_or_none.groups:
            assert error is InvalidTxnStateError
            return
        assert error is None
        self.txns.stage_offsets(tid, group, {partition: offset})
        expected_or_none.offsets.setdefault(group, {})[partition] = offset

    @precondition(lambda self: self.instances)
    @rule(data=st.data(), partition=st.sampled_from(PARTITIONS))
    def produce(self, data: st.DataObject, partition: tuple[str, int]) -> None:
        tid = data.draw(st.sampled_from(sorted(self.instances)))
        instance = data.draw(st.sampled_from(self.instances[tid]))
        error = self.txns.verify_produce(tid, *partition, *instance)
        expected = self.expected.get(tid)
        if instance[0] != self.newest(tid)[0]:
            assert error is InvalidTxnStateError
        elif instance != self.newest(tid):
            assert error is InvalidProducerEpochError
        elif expected is None or partition not in expected.partitions:
            assert error is InvalidTxnStateError
        else:
            assert error is None

    @precondition(lambda self: self.instances)
    @rule(data=st.data(), commit=st.booleans())
    def end(self, data: st.DataObject, commit: bool) -> None:
        tid = data.draw(st.sampled_from(sorted(self.instances)))
        instance = data.draw(st.sampled_from(self.instances[tid]))
        state = self.txns.transactions[tid].state
        error, ended = self.txns.end(tid, *instance, commit=commit)
        if instance != self.newest(tid):
            assert error is ProducerFencedError
            assert ended is None
        elif tid in self.expected:
            assert error is None
            assert ended is not None
            self.check_ended(ended, commit=commit)
            assert self.txns.transactions[tid].state == (
                COMPLETE_COMMIT if commit else COMPLETE_ABORT
            )
        elif state == (COMPLETE_COMMIT if commit else COMPLETE_ABORT):
            assert (error, ended) == (None, None)  # a retry of the same outcome
        else:
            assert error is InvalidTxnStateError
            assert ended is None

    @rule(tid=st.sampled_from(IDS))
    def unknown_producer(self, tid: str) -> None:
        error = self.txns.add_partitions(self.now, tid, 1, 0, [("t", 0)])
        assert error is InvalidProducerIdMappingError

    @rule(seconds=st.sampled_from([0.5, 3.0, 9.99, 10.0, 25.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds
        ended = self.txns.expire(self.now)
        timed_out = {
            tid
            for tid, e in self.expected.items()
            if e.deadline is not None and e.deadline <= self.now
        }
        assert {e.transactional_id for e in ended} == timed_out
        for e in ended:
            # Fenced first: the markers carry an epoch no instance was handed.
            pid, epoch = self.newest(e.transactional_id)
            assert (e.producer_id, e.epoch) == (pid, epoch + 1)
            self.epochs[pid] = e.epoch
            # The coordinator's epoch now (no producer holds it): the newest accepted.
            self.instances[e.transactional_id].append((pid, e.epoch))
            self.check_ended(e, commit=False)
            # The instance the timeout fenced cannot come back with a retried init.
            fenced = self.txns.init(e.transactional_id, TIMEOUT_MS, pid, epoch)
            assert fenced.error is ProducerFencedError

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def open_transactions_match(self) -> None:
        for tid, txn in self.txns.transactions.items():
            assert (txn.state == ONGOING) == (tid in self.expected)
            if tid in self.expected:
                assert txn.partitions == self.expected[tid].partitions
                assert txn.deadline == self.expected[tid].deadline
        for group in ("g1", "g2"):
            held = {tp for e in self.expected.values() for tp in e.offsets.get(group, {})}
            assert self.txns.unstable_offsets(group) == held
        deadlines = [e.deadline for e in self.expected.values() if e.deadline is not None]
        assert self.txns.next_deadline() == min(deadlines, default=None)
        assert all(d > self.now for d in deadlines)


TestCoordinator = Coordinator.TestCase
TestCoordinator.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_a_retried_bump_gets_the_same_epoch_and_an_old_one_is_fenced() -> None:
    counter = iter(range(1, 100))
    txns: Transactions[int] = Transactions(lambda: next(counter))
    first = txns.init("x", TIMEOUT_MS)
    bumped = txns.init("x", TIMEOUT_MS, first.producer_id, first.epoch)
    assert (bumped.producer_id, bumped.epoch) == (first.producer_id, first.epoch + 1)
    # Its answer was lost: the same request again gets the same epoch (KIP-360).
    again = txns.init("x", TIMEOUT_MS, first.producer_id, first.epoch)
    assert (again.error, again.epoch) == (None, bumped.epoch)
    newer = txns.init("x", TIMEOUT_MS, bumped.producer_id, bumped.epoch)
    assert newer.epoch == first.epoch + 2
    # Neither the current epoch nor the one before the last bump: fenced.
    assert txns.init("x", TIMEOUT_MS, first.producer_id, first.epoch).error is (ProducerFencedError)
    assert txns.init("x", TIMEOUT_MS, first.producer_id + 1, 0).error is ProducerFencedError


# -- the partition log's side: open transactions, the last stable offset, aborted ranges ------


def txn_batch(producer_id: int, sequence: int, count: int = 1, epoch: int = 0) -> bytes:
    return encode_batch(
        [(1000, None, b"v", ())] * count,
        producer_id=producer_id,
        producer_epoch=epoch,
        base_sequence=sequence,
        is_transactional=True,
    )


def marker(producer_id: int, *, commit: bool, epoch: int = 0) -> bytes:
    control = ControlRecordType.COMMIT if commit else ControlRecordType.ABORT
    return encode_control_batch(
        control, producer_id=producer_id, producer_epoch=epoch, coordinator_epoch=0, timestamp_ms=1
    )


@given(
    st.lists(
        st.tuples(st.sampled_from([1, 2, 3]), st.sampled_from(["data", "commit", "abort"])),
        max_size=30,
    )
)
def test_the_log_tracks_open_and_aborted_transactions(ops: list[tuple[int, str]]) -> None:
    log = PartitionLog()
    sequences = {1: 0, 2: 0, 3: 0}
    open_first: dict[int, int] = {}
    aborted: list[tuple[int, int, int]] = []
    for producer_id, op in ops:
        if op == "data":
            at = log.append(txn_batch(producer_id, sequences[producer_id], 2)).base_offset
            sequences[producer_id] += 2
            open_first.setdefault(producer_id, at)
        else:
            at = log.append_control(marker(producer_id, commit=op == "commit"))
            first = open_first.pop(producer_id, None)
            if op == "abort" and first is not None:
                aborted.append((producer_id, first, at))
        assert log.last_stable_offset == min(open_first.values(), default=log.high_watermark)
    end = log.high_watermark
    for start in range(end + 1):
        assert log.aborted_between(start, end) == [
            (p, first) for p, first, last in aborted if last >= start and first < end
        ]


def test_a_marker_with_a_newer_epoch_fences_the_old_one() -> None:
    log = PartitionLog()
    log.append(txn_batch(7, 0))
    log.append_control(marker(7, commit=False, epoch=1))  # the coordinator fenced epoch 0
    with pytest.raises(LogError) as caught:
        log.append(txn_batch(7, 1))
    assert caught.value.error is InvalidProducerEpochError
    # The new epoch starts at sequence 0.
    assert log.append(txn_batch(7, 0, epoch=1)).base_offset == 2
    assert log.aborted_between(0, log.high_watermark) == [(7, 0)]
