"""The transactional producer's pure core: where a transaction stands, and what it holds.

This is the Java client's ``TransactionManager`` state machine without the I/O: a plain
class that the transactional producer asks before each step and tells the outcome of
each request. Keeping it apart makes the rules easy to state and to test (a hypothesis
state machine does, in ``tests/unit/test_transaction_state.py``):

1. Nothing is produced outside a transaction, and one transaction at a time is open.
2. A fatal error (the producer was fenced, its epoch is stale, the transactional id is not
   authorised) is for good: every later step raises that same error.
3. After an abortable error (a record failed, the transaction timed out) the transaction
   can only be aborted; then the producer is ready for the next one.
4. A partition is added to the transaction once (AddPartitionsToTxn, or implicitly under
   transactions v2); the set is empty again when the transaction ends.
5. A transaction that added nothing to the coordinator ends without EndTxn: the
   coordinator never heard of it.
6. Transactions v2 (KIP-890 part 2) is used when the cluster finalized
   ``transaction.version`` >= 2 and the broker speaks Produce v12, EndTxn v5 and
   TxnOffsetCommit v5 (:func:`transaction_version`); it is decided when the producer id is
   obtained and kept. Under it no AddPartitionsToTxn or AddOffsetsToTxn is sent (Produce v12
   and TxnOffsetCommit v5 add the partition or group to the transaction), and every EndTxn
   bumps the epoch: the producer adopts the id and epoch the answer carries
   (:func:`identity_after_end`), and its sequence numbers start again at 0.

::

    UNINITIALIZED ──init──► INITIALIZING ──ready──► READY ◄──────────────────────┐
                                                      │ begin                    │ end_done
                                                      ▼                          │
          ABORTABLE_ERROR ◄──abortable── IN_TRANSACTION ──commit──► COMMITTING ──┤
                │                             │ abort                            │
                └────────────abort──────────► ABORTING ──────────────────────────┘
    (any state) ──fatal──► FATAL_ERROR (for good)
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Final

from trio_brod.protocol import EndTxnRequest, ProduceRequest, TxnOffsetCommitRequest
from trio_brod.transaction._errors import (
    AbortableTransactionError,
    FatalTransactionError,
    TransactionStateError,
)

__all__ = ["TransactionState", "TxnState", "identity_after_end", "transaction_version"]

TopicPartition = tuple[str, int]

#: The finalized feature whose level 2 is transactions v2 (KIP-890 part 2).
TRANSACTION_VERSION_FEATURE: Final = "transaction.version"
#: The request versions transactions v2 is made of, by API key: Produce v12 adds the
#: partition, TxnOffsetCommit v5 the group, and EndTxn v5 answers with the bumped epoch.
TV2_VERSIONS: Final = {
    ProduceRequest.API_KEY: 12,
    EndTxnRequest.API_KEY: 5,
    TxnOffsetCommitRequest.API_KEY: 5,
}
#: The last versions of those a transactional producer sends under transactions v1: later
#: ones mean "transactions v2" in a transaction.
TV1_MAX_VERSIONS: Final = {key: version - 1 for key, version in TV2_VERSIONS.items()}


def transaction_version(
    features: Mapping[str, int], api_versions: Mapping[int, tuple[int, int]]
) -> int:
    """The transaction protocol to use with a broker: 2 or 1.

    2 when its ApiVersions answer finalizes ``transaction.version`` at 2 or more and lists
    Produce v12, EndTxn v5 and TxnOffsetCommit v5 (as the Java client decides); 1 otherwise,
    as with Kafka 3.x, whose brokers finalize no such level.

    Args:
        features: The finalized feature levels (``Connection.finalized_features``).
        api_versions: The (lowest, highest) version per API key (``Connection.api_versions``).
    """
    if features.get(TRANSACTION_VERSION_FEATURE, 0) < 2:
        return 1
    for api_key, needed in TV2_VERSIONS.items():
        low, high = api_versions.get(api_key, (0, -1))
        if not low <= needed <= high:
            return 1
    return 2


def identity_after_end(current: tuple[int, int], answered: tuple[int, int]) -> tuple[int, int]:
    """The (producer id, epoch) to go on with after EndTxn answered ``answered``.

    EndTxn v5 (transactions v2) answers with the id and epoch the coordinator moved the
    producer to: the epoch bumped by one, or, when it ran out of epochs, a new producer id
    at epoch 0. They are adopted whatever they are. Earlier versions answer -1 (no field):
    the producer keeps ``current``.
    """
    if answered[0] >= 0 and answered[1] >= 0:
        return answered
    return current


class TxnState(enum.Enum):
    """The states of :class:`TransactionState` (as Java's ``TransactionManager.State``)."""

    UNINITIALIZED = "uninitialized"
    INITIALIZING = "initializing"
    READY = "ready"
    IN_TRANSACTION = "in-transaction"
    COMMITTING = "committing"
    ABORTING = "aborting"
    ABORTABLE_ERROR = "abortable-error"
    FATAL_ERROR = "fatal-error"


class TransactionState:
    """A transactional producer's state and the contents of its open transaction.

    Attributes:
        state: The :class:`TxnState`.
        added: Partitions the coordinator knows are in the open transaction.
        groups_added: Groups whose offsets the coordinator knows are in it
            (AddOffsetsToTxn done, or, under transactions v2, TxnOffsetCommit sent).
        transaction_version: 1, or 2 under transactions v2 (KIP-890 part 2).
        abortable: The abortable error of the open transaction, if it had one.
        fatal: The fatal error, once there is one.
    """

    def __init__(self) -> None:
        self.state = TxnState.UNINITIALIZED
        #: The transaction protocol in use, 1 or 2 (see :func:`transaction_version`).
        self.transaction_version = 1
        self.added: set[TopicPartition] = set()
        self.groups_added: set[str] = set()
        self.abortable: AbortableTransactionError | None = None
        self.fatal: FatalTransactionError | None = None
        #: Whether the coordinator was told anything about the open transaction.
        self.started_on_coordinator = False

    def __repr__(self) -> str:
        return f"<TransactionState {self.state.value} partitions={len(self.added)}>"

    # -- checks ---------------------------------------------------------------------------

    def raise_if_fatal(self) -> None:
        """Raise the fatal error, if the producer has had one."""
        if self.fatal is not None:
            raise self.fatal

    def check_can_produce(self) -> None:
        """Raise unless records may be added now (an open transaction without errors).

        Raises:
            FatalTransactionError: The producer is unusable.
            AbortableTransactionError: The open transaction must be aborted.
            TransactionStateError: No transaction is open.
        """
        self.raise_if_fatal()
        if self.state is TxnState.ABORTABLE_ERROR:
            assert self.abortable is not None
            raise self.abortable
        if self.state is not TxnState.IN_TRANSACTION:
            raise TransactionStateError(
                f"no open transaction (the producer is {self.state.value}): produce inside "
                "`async with producer.transaction() as txn:` through txn.produce"
            )

    # -- transitions ----------------------------------------------------------------------

    def start_init(self) -> None:
        """InitProducerId is about to be sent (again, to bump the epoch, from READY)."""
        self.raise_if_fatal()
        if self.state not in (TxnState.UNINITIALIZED, TxnState.READY):
            raise TransactionStateError(f"cannot initialise while {self.state.value}")
        self.state = TxnState.INITIALIZING

    def init_done(self, transaction_version: int | None = None) -> None:
        """InitProducerId succeeded: the producer is ready for transactions, under
        ``transaction_version`` (1 or 2) the first time; an epoch bump keeps the version."""
        self.raise_if_fatal()
        self._expect(TxnState.INITIALIZING)
        if transaction_version is not None:
            if transaction_version not in (1, 2):
                raise ValueError(f"transaction_version must be 1 or 2, not {transaction_version}")
            self.transaction_version = transaction_version
        self.state = TxnState.READY

    def begin(self) -> None:
        """Open a transaction.

        Raises:
            FatalTransactionError: The producer is unusable.
            TransactionStateError: Not ready (a transaction is open already, or the producer
                is not initialised).
        """
        self.raise_if_fatal()
        if self.state is not TxnState.READY:
            raise TransactionStateError(
                f"cannot begin a transaction while {self.state.value}: one transaction at a "
                "time per transactional producer"
            )
        self.state = TxnState.IN_TRANSACTION
        self.added.clear()
        self.groups_added.clear()
        self.abortable = None
        self.started_on_coordinator = False

    def partitions_to_add(self, partitions: Iterable[TopicPartition]) -> list[TopicPartition]:
        """Those of ``partitions`` not yet in the transaction (sorted, no repeats) that
        AddPartitionsToTxn must add.

        Under transactions v2 there are none: the first Produce v12 to each adds it, so
        they count as in the transaction from now on (and EndTxn is needed).
        """
        self.check_can_produce()
        new = sorted(set(partitions) - self.added)
        if self.transaction_version >= 2 and new:
            self.partitions_added(new)
            return []
        return new

    def partitions_added(self, partitions: Iterable[TopicPartition]) -> None:
        """The coordinator accepted these partitions into the transaction."""
        self.raise_if_fatal()
        if self.state not in (TxnState.IN_TRANSACTION, TxnState.ABORTABLE_ERROR):
            raise TransactionStateError(f"partitions added while {self.state.value}")
        self.added.update(partitions)
        self.started_on_coordinator = True

    def needs_offsets_added(self, group_id: str) -> bool:
        """Whether AddOffsetsToTxn must be sent before offsets of ``group_id``.

        Never under transactions v2: TxnOffsetCommit v5 adds the group itself, so it
        counts as in the transaction from now on (and EndTxn is needed).
        """
        self.check_can_produce()
        if self.transaction_version >= 2:
            self.offsets_added(group_id)
            return False
        return group_id not in self.groups_added

    def offsets_added(self, group_id: str) -> None:
        """AddOffsetsToTxn succeeded for ``group_id``."""
        self.raise_if_fatal()
        if self.state not in (TxnState.IN_TRANSACTION, TxnState.ABORTABLE_ERROR):
            raise TransactionStateError(f"offsets added while {self.state.value}")
        self.groups_added.add(group_id)
        self.started_on_coordinator = True

    def fail_abortable(self, error: AbortableTransactionError) -> None:
        """The open transaction cannot commit: it must be aborted (first error kept)."""
        if self.state in (TxnState.IN_TRANSACTION, TxnState.COMMITTING):
            self.state = TxnState.ABORTABLE_ERROR
            self.abortable = error
        elif self.state is TxnState.ABORTABLE_ERROR and self.abortable is None:
            self.abortable = error

    def fail_fatal(self, error: FatalTransactionError) -> None:
        """The producer is unusable, for good (the first fatal error is kept)."""
        if self.fatal is None:
            self.fatal = error
        self.state = TxnState.FATAL_ERROR

    def begin_commit(self) -> bool:
        """Start committing; returns whether EndTxn is needed (something was added).

        Raises:
            FatalTransactionError: The producer is unusable.
            AbortableTransactionError: The transaction had an abortable error: abort it.
            TransactionStateError: No transaction is open.
        """
        self.check_can_produce()
        self.state = TxnState.COMMITTING
        return self.started_on_coordinator

    def begin_abort(self) -> bool:
        """Start aborting; returns whether EndTxn is needed (something was added).

        Raises:
            FatalTransactionError: The producer is unusable (nothing can be aborted; the
                coordinator aborts the transaction when the next producer with the id
                starts, or when it times out).
            TransactionStateError: No transaction is open.
        """
        self.raise_if_fatal()
        if self.state not in (
            TxnState.IN_TRANSACTION,
            TxnState.ABORTABLE_ERROR,
            TxnState.COMMITTING,
        ):
            raise TransactionStateError(
                f"no transaction to abort (the producer is {self.state.value})"
            )
        self.state = TxnState.ABORTING
        return self.started_on_coordinator

    def end_done(self) -> None:
        """EndTxn succeeded (or was not needed): ready for the next transaction."""
        self.raise_if_fatal()
        if self.state not in (TxnState.COMMITTING, TxnState.ABORTING):
            raise TransactionStateError(f"a transaction ended while {self.state.value}")
        self.state = TxnState.READY
        self.added.clear()
        self.groups_added.clear()
        self.abortable = None
        self.started_on_coordinator = False

    def _expect(self, state: TxnState) -> None:
        if self.state is not state:
            raise TransactionStateError(
                f"expected {state.value}, but the producer is {self.state.value}"
            )
