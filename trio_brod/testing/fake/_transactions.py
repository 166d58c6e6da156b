"""The fake Kafka's transaction coordinator rules: a pure core, no I/O, no clock.

Kafka's ``TransactionCoordinator`` and ``TransactionMetadata`` (transactions v1, KIP-98
with KIP-360's epoch bumps and KIP-588's PRODUCER_FENCED) as a plain class that the
handlers in :mod:`._txn_apis` call with the time and the request's fields. Each step answers
an error class (or None) and, when a transaction ends, an :class:`Ended` that tells the
handlers which markers to write and which offsets to publish. Hypothesis drives it in the
unit tests.

A transactional id's state, as Kafka keeps it: its producer id and epoch, the epoch before
the last bump (a retried InitProducerId may present it), the transaction timeout, and the
state of its current transaction::

    Empty ──add──► Ongoing ──end(commit)──► PrepareCommit ──markers──► CompleteCommit
                     │  └────end(abort)──► PrepareAbort ──markers──► CompleteAbort
                     └─ timeout, or InitProducerId of a new instance: fence (epoch + 1),
                        then PrepareAbort ──markers──► CompleteAbort

The fake writes markers at once, so the Prepare states last no time: the next request
finds the transaction complete (Kafka may answer CONCURRENT_TRANSACTIONS meanwhile).

Kafka's rules kept here, each with its error:

* InitProducerId: a timeout over ``transaction.max.timeout.ms`` (15 minutes) or not
  positive is INVALID_TRANSACTION_TIMEOUT. A new id gets a new producer id at epoch 0. A
  known one gets its epoch bumped, which fences the older instance (a new producer id when
  the epoch is exhausted). An open transaction is first aborted with an extra epoch bump,
  and the caller gets CONCURRENT_TRANSACTIONS: it retries and gets the next epoch. With an
  expected producer id and epoch (v3+), a different producer id, or an epoch that is neither
  the current nor the one before the last bump, is PRODUCER_FENCED.
* AddPartitionsToTxn, AddOffsetsToTxn and EndTxn: an unknown transactional id or another
  producer id is INVALID_PRODUCER_ID_MAPPING, another epoch is PRODUCER_FENCED (the
  handlers answer INVALID_PRODUCER_EPOCH to versions before KIP-588). EndTxn without an
  open transaction is INVALID_TXN_STATE, except a retry of the same outcome.
* A transactional Produce to a partition the transaction did not add is INVALID_TXN_STATE
  (Kafka's partition verification, KIP-890 part 1); with another epoch it is
  INVALID_PRODUCER_EPOCH.
* A transaction open longer than its timeout is aborted by the coordinator, which bumps the
  epoch first: the producer's next call is PRODUCER_FENCED.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from trio_brod.protocol.errors import (
    ConcurrentTransactionsError,
    InvalidProducerEpochError,
    InvalidProducerIdMappingError,
    InvalidTransactionTimeoutError,
    InvalidTxnStateError,
    KafkaError,
    ProducerFencedError,
)

__all__ = [
    "COMPLETE_ABORT",
    "COMPLETE_COMMIT",
    "EMPTY",
    "MAX_TRANSACTION_TIMEOUT_MS",
    "ONGOING",
    "PREPARE_ABORT",
    "PREPARE_COMMIT",
    "Ended",
    "Transaction",
    "Transactions",
]

EMPTY = "Empty"
ONGOING = "Ongoing"
PREPARE_COMMIT = "PrepareCommit"
PREPARE_ABORT = "PrepareAbort"
COMPLETE_COMMIT = "CompleteCommit"
COMPLETE_ABORT = "CompleteAbort"

#: Kafka's default ``transaction.max.timeout.ms``.
MAX_TRANSACTION_TIMEOUT_MS = 900_000
#: An epoch at or past this is exhausted: the next bump takes a new producer id.
_EPOCH_EXHAUSTED = 2**15 - 2
_NO_EPOCH = -1

TopicPartition = tuple[str, int]
OffsetT = TypeVar("OffsetT")


@dataclass(frozen=True)
class Ended(Generic[OffsetT]):
    """A transaction that ended: the markers to write and the offsets to publish."""

    transactional_id: str
    producer_id: int
    #: The epoch the markers carry (bumped first when the coordinator aborted by itself).
    epoch: int
    commit: bool
    partitions: tuple[TopicPartition, ...]
    #: group id -> (topic, partition) -> offset, published on commit only.
    offsets: dict[str, dict[TopicPartition, OffsetT]]


@dataclass
class Transaction(Generic[OffsetT]):
    """One transactional id's state at its coordinator."""

    transactional_id: str
    producer_id: int
    epoch: int
    #: The transaction timeout, in seconds.
    timeout: float
    state: str = EMPTY
    #: The epoch before the last client-asked bump (KIP-360), or -1.
    last_epoch: int = _NO_EPOCH
    partitions: set[TopicPartition] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    #: Offsets sent by TxnOffsetCommit: group id -> (topic, partition) -> offset.
    pending_offsets: dict[str, dict[TopicPartition, OffsetT]] = field(default_factory=dict)
    #: When the open transaction started (Trio's clock), while it is open.
    started: float | None = None

    @property
    def deadline(self) -> float | None:
        """When the coordinator aborts the open transaction (None: none is open)."""
        if self.state != ONGOING or self.started is None:
            return None
        return self.started + self.timeout


@dataclass(frozen=True)
class InitResult(Generic[OffsetT]):
    """What InitProducerId answers, and the transaction it aborted (if any)."""

    error: type[KafkaError] | None
    producer_id: int = -1
    epoch: int = -1
    aborted: Ended[OffsetT] | None = None


class Transactions(Generic[OffsetT]):
    """Every transactional id of a fake cluster (*OffsetT*: how a pending offset is stored)."""

    def __init__(self, new_producer_id: Callable[[], int]) -> None:
        self._new_producer_id = new_producer_id
        self.transactions: dict[str, Transaction[OffsetT]] = {}

    def get(self, transactional_id: str) -> Transaction[OffsetT] | None:
        """A transactional id's state (None if the coordinator never heard of it)."""
        return self.transactions.get(transactional_id)

    # -- InitProducerId ------------------------------------------------------------------

    def init(
        self,
        transactional_id: str,
        timeout_ms: int,
        expected_producer_id: int = -1,
        expected_epoch: int = -1,
    ) -> InitResult[OffsetT]:
        """InitProducerId with a transactional id (see the module's rules)."""
        if not 0 < timeout_ms <= MAX_TRANSACTION_TIMEOUT_MS:
            return InitResult(InvalidTransactionTimeoutError)
        txn = self.transactions.get(transactional_id)
        if txn is None:
            txn = Transaction(transactional_id, self._new_producer_id(), 0, timeout_ms / 1000)
            self.transactions[transactional_id] = txn
            return InitResult(None, txn.producer_id, txn.epoch)
        if expected_producer_id >= 0 and expected_producer_id != txn.producer_id:
            return InitResult(ProducerFencedError)
        if txn.state in (PREPARE_COMMIT, PREPARE_ABORT):
            return InitResult(ConcurrentTransactionsError)
        if txn.state == ONGOING:
            # Abort the old instance's transaction under a fenced epoch (never handed out);
            # the client retries and gets the epoch after it.
            return InitResult(ConcurrentTransactionsError, aborted=self._abort_fenced(txn))
        if expected_epoch >= 0 and expected_epoch not in (txn.epoch, txn.last_epoch):
            return InitResult(ProducerFencedError)
        txn.timeout = timeout_ms / 1000
        if expected_epoch >= 0 and expected_epoch == txn.last_epoch != txn.epoch:
            # A retry of a bump whose answer was lost: the same epoch again.
            return InitResult(None, txn.producer_id, txn.epoch)
        if txn.epoch >= _EPOCH_EXHAUSTED:
            txn.producer_id, txn.epoch, txn.last_epoch = self._new_producer_id(), 0, _NO_EPOCH
        else:
            txn.last_epoch = txn.epoch
            txn.epoch += 1
        txn.state = EMPTY
        return InitResult(None, txn.producer_id, txn.epoch)

    # -- requests of the producer in a transaction ---------------------------------------

    def check(
        self, transactional_id: str, producer_id: int, epoch: int
    ) -> tuple[Transaction[OffsetT] | None, type[KafkaError] | None]:
        """The transaction of a request from *producer_id* at *epoch*, or its error."""
        txn = self.transactions.get(transactional_id)
        if txn is None or txn.producer_id != producer_id:
            return None, InvalidProducerIdMappingError
        if txn.epoch != epoch:
            return None, ProducerFencedError
        return txn, None

    def add_partitions(
        self,
        now: float,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        partitions: Iterable[TopicPartition],
    ) -> type[KafkaError] | None:
        """AddPartitionsToTxn: the partitions join the transaction (which opens if needed)."""
        txn, error = self._adding(transactional_id, producer_id, epoch)
        if txn is None:
            return error
        self._open(txn, now)
        txn.partitions.update(partitions)
        return None

    def add_offsets(
        self, now: float, transactional_id: str, producer_id: int, epoch: int, group_id: str
    ) -> type[KafkaError] | None:
        """AddOffsetsToTxn: the group's offsets partition joins the transaction."""
        txn, error = self._adding(transactional_id, producer_id, epoch)
        if txn is None:
            return error
        self._open(txn, now)
        txn.groups.add(group_id)
        return None

    def _adding(
        self, transactional_id: str, producer_id: int, epoch: int
    ) -> tuple[Transaction[OffsetT] | None, type[KafkaError] | None]:
        txn, error = self.check(transactional_id, producer_id, epoch)
        if txn is not None and txn.state in (PREPARE_COMMIT, PREPARE_ABORT):
            return None, ConcurrentTransactionsError
        return txn, error

    @staticmethod
    def _open(txn: Transaction[OffsetT], now: float) -> None:
        if txn.state != ONGOING:
            txn.state = ONGOING
            txn.started = now
            txn.partitions.clear()
            txn.groups.clear()
            txn.pending_offsets.clear()

    def verify_offsets(
        self, transactional_id: str, producer_id: int, epoch: int, group_id: str
    ) -> type[KafkaError] | None:
        """Whether TxnOffsetCommit may stage offsets: the group must be in the open
        transaction of this producer and epoch.
        """
        txn, error = self.check(transactional_id, producer_id, epoch)
        if txn is None:
            return error
        if txn.state != ONGOING or group_id not in txn.groups:
            return InvalidTxnStateError
        return None

    def stage_offsets(
        self, transactional_id: str, group_id: str, offsets: dict[TopicPartition, OffsetT]
    ) -> None:
        """Keep offsets until the transaction ends (after :meth:`verify_offsets` allowed)."""
        txn = self.transactions[transactional_id]
        txn.pending_offsets.setdefault(group_id, {}).update(offsets)

    def unstable_offsets(self, group_id: str) -> set[TopicPartition]:
        """The partitions of a group whose offsets an open transaction holds."""
        return {
            tp
            for txn in self.transactions.values()
            if txn.state == ONGOING
            for tp in txn.pending_offsets.get(group_id, {})
        }

    def verify_produce(
        self, transactional_id: str, topic: str, partition: int, producer_id: int, epoch: int
    ) -> type[KafkaError] | None:
        """Whether a transactional batch may be written to a partition (Kafka's partition
        verification): INVALID_PRODUCER_EPOCH from another epoch, INVALID_TXN_STATE unless
        the partition is in this producer's open transaction.
        """
        txn = self.transactions.get(transactional_id)
        if txn is None or txn.producer_id != producer_id:
            return InvalidTxnStateError
        if txn.epoch != epoch:
            return InvalidProducerEpochError
        if txn.state != ONGOING or (topic, partition) not in txn.partitions:
            return InvalidTxnStateError
        return None

    # -- the end of a transaction --------------------------------------------------------

    def end(
        self, transactional_id: str, producer_id: int, epoch: int, *, commit: bool
    ) -> tuple[type[KafkaError] | None, Ended[OffsetT] | None]:
        """EndTxn: commit or abort the open transaction; a retry of a finished one is fine."""
        txn, error = self.check(transactional_id, producer_id, epoch)
        if txn is None:
            return error, None
        if txn.state == ONGOING:
            return None, self._finish(txn, commit=commit)
        done = COMPLETE_COMMIT if commit else COMPLETE_ABORT
        preparing = PREPARE_COMMIT if commit else PREPARE_ABORT
        if txn.state == done:
            return None, None
        if txn.state == preparing:
            return ConcurrentTransactionsError, None
        return InvalidTxnStateError, None

    def next_deadline(self) -> float | None:
        """When the next open transaction times out (None: no transaction is open)."""
        deadlines = [t.deadline for t in self.transactions.values() if t.deadline is not None]
        return min(deadlines, default=None)

    def expire(self, now: float) -> list[Ended[OffsetT]]:
        """Abort every transaction open longer than its timeout, fencing its producer."""
        return [
            self._abort_fenced(txn)
            for txn in self.transactions.values()
            if txn.deadline is not None and txn.deadline <= now
        ]

    def _abort_fenced(self, txn: Transaction[OffsetT]) -> Ended[OffsetT]:
        """Bump the epoch (the producer's requests are fenced from now on) and abort."""
        if txn.epoch < _EPOCH_EXHAUSTED:
            txn.epoch += 1
        txn.last_epoch = _NO_EPOCH
        return self._finish(txn, commit=False)

    @staticmethod
    def _finish(txn: Transaction[OffsetT], *, commit: bool) -> Ended[OffsetT]:
        ended = Ended(
            transactional_id=txn.transactional_id,
            producer_id=txn.producer_id,
            epoch=txn.epoch,
            commit=commit,
            partitions=tuple(sorted(txn.partitions)),
            offsets={g: dict(o) for g, o in txn.pending_offsets.items()} if commit else {},
        )
        # The markers are written at once, so PrepareCommit/PrepareAbort pass straight on.
        txn.state = COMPLETE_COMMIT if commit else COMPLETE_ABORT
        txn.started = None
        txn.partitions.clear()
        txn.groups.clear()
        txn.pending_offsets.clear()
        return ended
