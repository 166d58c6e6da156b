"""One open transaction: :class:`Transaction`, the handle ``tp.transaction()`` gives.

It checks each call against the producer's state, finds the partition's producer, has the
partition added to the transaction first, and keeps the receipts and partition producers
that the commit waits for. The coordinator requests are the transactional producer's
(:mod:`trio_brod.transaction.producer`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import trio

from trio_brod._config_transaction import TransactionConfig
from trio_brod.producer.message import Message, checked_bytes
from trio_brod.producer.receipt import DeliveryReceipt
from trio_brod.producer.topic import TopicProducer
from trio_brod.producer.worker import PartitionProducer
from trio_brod.transaction._errors import TransactionStateError
from trio_brod.transaction._group import GroupMetadata, group_metadata
from trio_brod.transaction._state import TransactionState, TxnState

if TYPE_CHECKING:
    from trio_brod.producer.partitioners import Partitioner, PartitionerName

__all__ = ["Transaction"]


class _Producer(Protocol):
    """What a transaction needs of its :class:`~trio_brod.TransactionalProducer`."""

    transactional_id: str
    config: TransactionConfig
    state: TransactionState
    last_partitions: set[tuple[str, int]]

    async def _topic(self, topic: str) -> TopicProducer: ...

    async def _add_partitions(
        self, partitions: Sequence[tuple[str, int]], *, predicted: Iterable[tuple[str, int]] = ()
    ) -> None: ...

    async def _send_offsets(
        self, group: GroupMetadata, offsets: Mapping[tuple[str, int], int]
    ) -> None: ...


class Transaction:
    """One open transaction; made by :meth:`TransactionalProducer.transaction`.

    Attributes:
        producer: The :class:`TransactionalProducer`.
        open: Whether records may still be added.
        committed: Set once the transaction committed.
        receipts: The receipts of its records.
        workers: The partition producers it used.
    """

    def __init__(self, producer: _Producer) -> None:
        self.producer = producer
        self.open = True
        self.committed = False
        self.receipts: list[DeliveryReceipt] = []
        self.workers: set[PartitionProducer] = set()
        # The fast path of produce (see _worker): the producer's state, and the partition
        # producers already used by this transaction, by (topic, partition).
        self._state = producer.state
        self._used: dict[tuple[str, int], PartitionProducer] = {}
        self._topics: dict[str, TopicProducer] = {}
        #: When the coordinator will abort it (``transaction_timeout`` after it began;
        #: the coordinator's clock starts later, at the first partition added).
        self.deadline = trio.current_time() + producer.config.transaction_timeout

    def __repr__(self) -> str:
        state = "open" if self.open else "committed" if self.committed else "ended"
        name = self.producer.transactional_id
        return f"<Transaction {name!r} {state} records={len(self.receipts)}>"

    def _check_open(self) -> None:
        if not self.open:
            raise TransactionStateError("the transaction has ended; open a new one")
        self._state.check_can_produce()

    async def _worker(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        partitioner: PartitionerName | Partitioner | None,
    ) -> PartitionProducer:
        # One check of the state covers a fatal error and an abortable one too: either
        # moves it out of IN_TRANSACTION (the slow path then raises the right error).
        if not self.open or self._state.state is not TxnState.IN_TRANSACTION:
            self._check_open()
        producer = self._topics.get(topic)
        if producer is None:
            producer = await self.producer._topic(topic)  # noqa: SLF001 (its own transaction)
            self._topics[topic] = producer
        if partition is None:
            partition = producer.choose(key, value, partitioner)
        if type(partition) is int:
            # A partition this transaction has used is in it already: no lookup of the
            # partition producer, no check that it was added.
            worker = self._used.get((topic, partition))
            if worker is not None:
                return worker
        worker = producer.partitions.get(partition) if type(partition) is int else None
        if worker is None:
            worker = await producer.worker(partition)
        if (topic, worker.partition) not in self._state.added:
            await self.producer._add_partitions(  # noqa: SLF001 (its own transaction)
                [(topic, worker.partition)], predicted=self.producer.last_partitions
            )
        self._check_open()  # again: the awaits above may have seen the transaction fail
        self._used[topic, worker.partition] = worker
        self.workers.add(worker)
        return worker

    async def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        partition: int | None = None,
        partitioner: PartitionerName | Partitioner | None = None,
        headers: Sequence[tuple[str, bytes | None]] = (),
        timestamp: int | None = None,
    ) -> DeliveryReceipt:
        """Add a message to the transaction, as :meth:`Client.produce
        <trio_brod.Client.produce>`; the receipt completes when the broker has it (it is
        visible to ``read_committed`` readers once the transaction commits).

        Raises:
            TransactionStateError: The transaction has ended.
            AbortableTransactionError: The transaction already failed: it must abort.
            FatalTransactionError: The producer is unusable.
            BrodError: What :meth:`Client.produce <trio_brod.Client.produce>` raises.
        """
        if key is not None and type(key) is not bytes:
            key = checked_bytes(key, "key")
        if value is not None and type(value) is not bytes:
            value = checked_bytes(value, "value")
        worker = await self._worker(topic, key, value, partition, partitioner)
        receipt = await worker.produce(value, key, headers=headers, timestamp=timestamp)
        self.receipts.append(receipt)
        return receipt

    async def produce_batch(
        self,
        topic: str,
        messages: Iterable[Message | tuple[bytes | None, bytes | None]],
        *,
        key: bytes | None = None,
        partition: int | None = None,
        partitioner: PartitionerName | Partitioner | None = None,
    ) -> DeliveryReceipt:
        """Add many messages to one partition as one call, as :meth:`Client.produce_batch
        <trio_brod.Client.produce_batch>`. Raises as :meth:`produce` does."""
        if key is not None and type(key) is not bytes:
            key = checked_bytes(key, "key")
        worker = await self._worker(topic, key, None, partition, partitioner)
        receipt = await worker.produce_batch(messages)
        self.receipts.append(receipt)
        return receipt

    async def send_offsets(self, group: object, offsets: Mapping[tuple[str, int], int]) -> None:
        """Commit a group's offsets as part of the transaction (AddOffsetsToTxn, then
        TxnOffsetCommit to the group's coordinator): they count only if it commits.

        Args:
            group: A group id, or a :class:`~trio_brod.GroupMember` (or a group subscriber
                or processor): then the commit carries its generation, member id and
                instance id, and is refused if that generation is over (KIP-447), so that
                a member that lost its partitions cannot commit for them.
            offsets: ``{(topic, partition): offset}``, each the *next* offset to consume
                (the last one processed + 1), as Kafka commits.

        Raises:
            AbortableTransactionError: The coordinator refused (an old generation:
                IllegalGenerationError, UnknownMemberIdError, FencedInstanceIdError in
                :attr:`~trio_brod.TransactionError.cause`): the transaction must abort.
            FatalTransactionError: The producer is unusable.
            TransactionStateError: The transaction has ended.
        """
        metadata = group_metadata(group)
        for (topic, partition), offset in offsets.items():
            if not isinstance(topic, str) or type(partition) is not int:
                key = (topic, partition)
                raise TypeError(f"offsets are keyed by (topic, partition), not {key!r}")
            if type(offset) is not int or offset < 0:
                raise ValueError(
                    f"offset for {topic}[{partition}] must be an int >= 0, not {offset!r}"
                )
        self._check_open()
        await self.producer._send_offsets(metadata, offsets)  # noqa: SLF001 (its own transaction)
