"""The fake Kafka's transaction coordinator rules (``_transactions``), driven by hypothesis.

A state machine plays producer instances of a few transactional ids against the pure core,
with a clock it moves, and keeps a model of what each transaction holds. Invariants: only
the newest instance of an id is served (older ones are fenced), epochs never go back, an
ended transaction marks exactly the partitions it added and publishes its offsets only on
commit, and the coordinator aborts exactly the transactions that outlived their timeout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import settings
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
