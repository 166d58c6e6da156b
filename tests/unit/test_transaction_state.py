"""The transactional producer's pure state machine, driven by hypothesis.

The model is the rules of :mod:`trio_brod.transaction._state` stated plainly; the machine
does every step in any order, and checks each answer against the model.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from trio_brod.transaction._errors import (
    AbortableTransactionError,
    FatalTransactionError,
    TransactionStateError,
)
from trio_brod.transaction._state import TransactionState, TxnState

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

    def expect_fatal(self, call: object) -> None:
        assert self.fatal is not None
        with pytest.raises(FatalTransactionError) as caught:
            call()  # type: ignore[operator]
        assert caught.value is self.fatal  # the same error, every time

    @rule()
    def init(self) -> None:
        if self.fatal is not None:
            self.expect_fatal(self.state.start_init)
            return
        if self.model not in (TxnState.UNINITIALIZED, TxnState.READY):
            with pytest.raises(TransactionStateError):
                self.state.start_init()
            return
        self.state.start_init()
        self.state.init_done()
        self.model = TxnState.READY

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
        assert todo == sorted(set(wanted) - self.added)
        self.state.partitions_added(todo)
        self.added.update(todo)

    @rule(group=groups)
    def add_offsets(self, group: str) -> None:
        if self.model is not TxnState.IN_TRANSACTION or self.fatal is not None:
            return
        assert self.state.needs_offsets_added(group) == (group not in self.groups)
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
