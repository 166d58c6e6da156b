"""The transactional producer's pure state machine, driven by hypothesis.

The model is the rules of :mod:`trio_brod.transaction._state` stated plainly; the machine
does every step in any order, and checks each answer against the model.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from trio_brod.producer.identity import ProducerIdentity, SequenceState
from trio_brod.protocol import (
    AddPartitionsToTxnRequest,
    EndTxnRequest,
    ProduceRequest,
    TxnOffsetCommitRequest,
)
from trio_brod.transaction._errors import (
    AbortableTransactionError,
    FatalTransactionError,
    TransactionStateError,
)
from trio_brod.transaction._state import (
    TransactionState,
    TxnState,
    identity_after_end,
    transaction_version,
)

partitions = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 3)), min_size=1, max_size=4
)
groups = st.sampled_from(["g1", "g2"])


class TransactionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = TransactionState()
        self.model = TxnState.UNINITIALIZED
        self.fatal: FatalTransactionError | None = None
        self.abortable: AbortableTransactionError | None = None
        self.added: set[tuple[str, int]] = set()
        self.groups: set[str] = set()
        self.version = 1

    def expect_fatal(self, call: object) -> None:
        assert self.fatal is not None
        with pytest.raises(FatalTransactionError) as caught:
            call()  # type: ignore[operator]
        assert caught.value is self.fatal  # the same error, every time

    @rule(version=st.sampled_from([None, 1, 2]))
    def init(self, version: int | None) -> None:
        if self.fatal is not None:
            self.expect_fatal(self.state.start_init)
            return
        if self.model not in (TxnState.UNINITIALIZED, TxnState.READY):
            with pytest.raises(TransactionStateError):
                self.state.start_init()
            return
        self.state.start_init()
        self.state.init_done(version)  # None: an epoch bump, which keeps the version
        self.model = TxnState.READY
        if version is not None:
            self.version = version

    @rule()
    def begin(self) -> None:
        if self.fatal is not None:
            self.expect_fatal(self.state.begin)
            return
        if self.model is not TxnState.READY:
            with pytest.raises(TransactionStateError):
                self.state.begin()
            return
        self.state.begin()
        self.model = TxnState.IN_TRANSACTION
        self.added.clear()
        self.groups.clear()

    @rule(wanted=partitions)
    def add_partitions(self, wanted: list[tuple[str, int]]) -> None:
        if self.fatal is not None:
            self.expect_fatal(lambda: self.state.partitions_to_add(wanted))
            return
        if self.model is TxnState.ABORTABLE_ERROR:
            with pytest.raises(AbortableTransactionError) as caught:
                self.state.partitions_to_add(wanted)
            assert caught.value is self.abortable
            return
        if self.model is not TxnState.IN_TRANSACTION:
            with pytest.raises(TransactionStateError):
                self.state.partitions_to_add(wanted)
            return
        todo = self.state.partitions_to_add(wanted)
        if self.version == 2:
            # Produce v12 adds them: never an AddPartitionsToTxn, but they are in.
            assert todo == []
            self.added.update(wanted)
            return
        assert todo == sorted(set(wanted) - self.added)
        self.state.partitions_added(todo)
        self.added.update(todo)

    @rule(group=groups)
    def add_offsets(self, group: str) -> None:
        if self.model is not TxnState.IN_TRANSACTION or self.fatal is not None:
            return
        needed = self.state.needs_offsets_added(group)
        # Under transactions v2 TxnOffsetCommit v5 adds the group: no AddOffsetsToTxn.
        assert needed == (self.version == 1 and group not in self.groups)
        if needed:
            self.state.offsets_added(group)
        self.groups.add(group)

    @rule()
    def record_failed(self) -> None:
        error = AbortableTransactionError("a record failed")
        self.state.fail_abortable(error)
        if self.model is TxnState.IN_TRANSACTION:
            self.model = TxnState.ABORTABLE_ERROR
            self.abortable = error

    @rule(roll=st.integers(0, 9))
    def fenced(self, roll: int) -> None:
        if roll:  # rarely: a fenced producer is done, and the rest would go untested
            return
        error = FatalTransactionError("fenced")
        self.state.fail_fatal(error)
        if self.fatal is None:
            self.fatal = error
        self.model = TxnState.FATAL_ERROR

    @rule()
    def commit(self) -> None:
        if self.fatal is not None:
            self.expect_fatal(self.state.begin_commit)
            return
        if self.model is TxnState.ABORTABLE_ERROR:
            with pytest.raises(AbortableTransactionError):
                self.state.begin_commit()
            return
        if self.model is not TxnState.IN_TRANSACTION:
            with pytest.raises(TransactionStateError):
                self.state.begin_commit()
            return
        needs_end_txn = self.state.begin_commit()
        assert needs_end_txn == bool(self.added or self.groups)
        self.state.end_done()
        self.model = TxnState.READY

    @rule()
    def abort(self) -> None:
        if self.fatal is not None:
            self.expect_fatal(self.state.begin_abort)
            return
        if self.model not in (TxnState.IN_TRANSACTION, TxnState.ABORTABLE_ERROR):
            with pytest.raises(TransactionStateError):
                self.state.begin_abort()
            return
        needs_end_txn = self.state.begin_abort()
        assert needs_end_txn == bool(self.added or self.groups)
        self.state.end_done()
        self.model = TxnState.READY
        self.abortable = None

    @precondition(lambda self: self.fatal is None)
    @rule()
    def produce_check(self) -> None:
        if self.model is TxnState.IN_TRANSACTION:
            self.state.check_can_produce()
        elif self.model is TxnState.ABORTABLE_ERROR:
            with pytest.raises(AbortableTransactionError):
                self.state.check_can_produce()
        else:
            with pytest.raises(TransactionStateError, match="no open transaction"):
                self.state.check_can_produce()

    @invariant()
    def agrees(self) -> None:
        assert self.state.state is self.model
        assert self.state.transaction_version == self.version
        if self.model is TxnState.READY:
            assert not self.state.added
            assert not self.state.groups_added
        if self.model in (TxnState.IN_TRANSACTION, TxnState.ABORTABLE_ERROR):
            assert self.state.added == self.added
        assert self.state.fatal is self.fatal


TransactionMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None
)
TestTransactionState = TransactionMachine.TestCase


def test_a_fatal_error_is_for_good_and_the_first_is_kept() -> None:
    state = TransactionState()
    state.start_init()
    state.init_done()
    first = FatalTransactionError("fenced")
    state.fail_fatal(first)
    state.fail_fatal(FatalTransactionError("later"))
    for step in (state.begin, state.begin_commit, state.begin_abort, state.start_init):
        with pytest.raises(FatalTransactionError) as caught:
            step()
        assert caught.value is first


# -- transactions v2: when it is used, and the epoch it leaves ------------------------------

_TV2_APIS = (ProduceRequest, EndTxnRequest, TxnOffsetCommitRequest)
#: A Kafka 4.x broker's ranges of the APIs that matter (and one that does not).
_BROKER_4X = {
    ProduceRequest.API_KEY: (3, 13),
    EndTxnRequest.API_KEY: (0, 5),
    TxnOffsetCommitRequest.API_KEY: (0, 5),
    AddPartitionsToTxnRequest.API_KEY: (0, 5),
}


@given(
    level=st.sampled_from([None, 0, 1, 2, 3]),
    # Around what v2 needs (Produce v12, EndTxn v5, TxnOffsetCommit v5); -1: not listed.
    highest=st.tuples(*(st.sampled_from([-1, n - 1, n, n + 1]) for n in (12, 5, 5))),
    other=st.dictionaries(st.text(min_size=1, max_size=8), st.integers(0, 5), max_size=3),
)
def test_transactions_v2_needs_the_feature_and_all_three_versions(
    level: int | None, highest: tuple[int, ...], other: dict[str, int]
) -> None:
    features = {k: v for k, v in other.items() if k != "transaction.version"}
    if level is not None:
        features["transaction.version"] = level
    # -1: the broker does not list the API at all.
    versions = {api.API_KEY: (0, top) for api, top in zip(_TV2_APIS, highest, strict=True)}
    versions = {key: span for key, span in versions.items() if span[1] >= 0}
    speaks_v2 = all(top >= needed for top, needed in zip(highest, (12, 5, 5), strict=True))
    expected = 2 if (level or 0) >= 2 and speaks_v2 else 1
    assert transaction_version(features, versions) == expected


def test_transactions_v2_on_kafka_4_and_v1_on_kafka_3() -> None:
    assert transaction_version({"transaction.version": 2}, _BROKER_4X) == 2
    # A 4.x cluster kept at transaction.version 1 (or 0), and Kafka 3.9, which finalizes
    # no transaction.version and stops at Produce v11, TxnOffsetCommit v4.
    assert transaction_version({"transaction.version": 1}, _BROKER_4X) == 1
    assert transaction_version({"metadata.version": 21}, _BROKER_4X) == 1
    kafka_39 = {
        **_BROKER_4X,
        ProduceRequest.API_KEY: (0, 11),
        TxnOffsetCommitRequest.API_KEY: (0, 4),
    }
    assert transaction_version({"transaction.version": 2}, kafka_39) == 1


ids = st.integers(0, 2**63 - 1)
epochs = st.integers(0, 2**15 - 1)


@given(current=st.tuples(ids, epochs), answered=st.tuples(ids, epochs))
def test_end_txn_v5_identity_is_adopted(
    current: tuple[int, int], answered: tuple[int, int]
) -> None:
    # The bumped epoch, or a new producer id at epoch 0 once the epochs ran out: the
    # coordinator decides, the producer follows.
    assert identity_after_end(current, answered) == answered


@given(current=st.tuples(ids, epochs))
def test_end_txn_before_v5_keeps_the_identity(current: tuple[int, int]) -> None:
    assert identity_after_end(current, (-1, -1)) == current


def test_epochs_go_up_across_v2_transactions_and_roll_over_to_a_new_id() -> None:
    state = TransactionState()
    state.start_init()
    state.init_done(2)
    identity = (7, 32765)
    answers = [(7, 32766), (8, 0), (8, 1)]  # the coordinator's: at the last epoch, a new id
    for answer in answers:
        state.begin()
        assert state.partitions_to_add([("t", 0)]) == []
        assert state.begin_commit()  # EndTxn is due: the Produce added the partition
        identity = identity_after_end(identity, answer)
        state.end_done()
        assert identity == answer
    # An epoch bump by InitProducerId (init_done() with no version) keeps transactions v2.
    state.start_init()
    state.init_done()
    assert state.transaction_version == 2


def test_a_transactional_partition_numbers_the_next_batch_under_the_moved_epoch() -> None:
    # A batch numbered under the old epoch would be written into the transaction that just
    # ended (its commit marker carries the new epoch), so the partition follows at once.
    identity = ProducerIdentity(cast(Any, None))
    identity.transactional_id = "t"
    identity.producer_id, identity.epoch = 7, 3
    sequence = SequenceState(identity, "topic", 0)
    assert sequence.current() == (7, 3)
    assert sequence.number(5) == 0
    assert sequence.current() == (7, 3)
    assert sequence.number(1) == 5
    identity.epoch = 4  # EndTxn v5 bumped it
    assert sequence.current() == (7, 4)
    assert sequence.number(1) == 0
    identity.producer_id, identity.epoch = 8, 0  # the epochs ran out: a new producer id
    assert sequence.current() == (8, 0)
    assert sequence.number(2) == 0
