"""Exactly-once consume-transform-produce: brod's ``brod_transaction_processor`` (``txn_do``).

:func:`open_transaction_processor` is a group member whose offsets are committed only
through its transactions (brod's ``consumer_managed`` policy for ``txn_do``), with one
transactional producer::

    async def process(txn, message_set):
        for message in message_set:
            await txn.produce("invoices", transform(message.value), key=message.key)

    async with trio_brod.open_transaction_processor(
        client, "billing", ["orders"], process, transactional_id="billing-1"
    ) as processor:
        await trio.sleep_forever()

How it runs, in the processor's nursery:

* a **worker per assigned partition** (inside the partition's cancel scope) subscribes from
  the group's committed offset (read with ``require_stable``: a transaction still pending
  for the partition is waited for), and hands each message set to the transactor, then
  waits for the outcome of the transaction it went into. Committed: the set is
  acknowledged and the next one handed over. Aborted: the worker subscribes again from the
  last committed offset, so that what the aborted transaction held is processed again.
* the **transactor** takes the message sets waiting (one per partition at most, from as
  many partitions as have one: batching several partitions into one transaction is what
  makes it fast), and runs one transaction: ``process(txn, message_set)`` for each, then
  ``txn.send_offsets`` with the member's generation (KIP-447), then the commit.

When partitions are revoked, their workers stop taking new message sets and wait for the
open transaction holding theirs: it commits if it can within the group's
``rebalance_timeout``. If it cannot, the member cancels the worker, which aborts the
transaction (shielded, bounded by ``end_timeout``) before the partition is released. A lost
partition (the member was evicted) aborts at once. A zombie, an old member whose partitions
were reassigned, cannot commit: its offsets carry a generation the coordinator refuses, so
the transaction aborts; and a new processor with the same transactional id fences it
(its next transaction fails with :class:`~trio_brod.FatalTransactionError`, which ends the
processor's block).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any, Final, Protocol

import trio

from trio_brod._config import ConsumerConfig
from trio_brod._config_groups import GroupConfig
from trio_brod._config_transaction import TransactionConfig
from trio_brod._log import group_log as log
from trio_brod._util import unwrap_single_exception
from trio_brod.consumer.message_set import MessageSet
from trio_brod.groups._assigned import AssignedPartition
from trio_brod.groups._coordinator import GroupCoordinator
from trio_brod.groups._types import Topics
from trio_brod.groups.member import GroupMember
from trio_brod.groups.offsets import fetch_committed
from trio_brod.transaction._errors import AbortableTransactionError
from trio_brod.transaction._group import GroupMetadata
from trio_brod.transaction._txn import Transaction
from trio_brod.transaction.producer import (
    TransactionalProducer,
    open_transactional_producer,
)

if TYPE_CHECKING:
    from trio_brod._cluster import ConnectionPool, MetadataCache
    from trio_brod.consumer.worker import Subscription

__all__ = ["Process", "TransactionProcessor", "open_transaction_processor"]

#: ``async def process(txn, message_set)``: produce through ``txn``; return nothing.
Process = Callable[[Transaction, MessageSet], Awaitable[None]]

#: How many partitions' hand-overs one transaction takes at most.
_MAX_WORKS_PER_TRANSACTION: Final = 64


class Client(Protocol):
    """What a transaction processor needs of a :class:`~trio_brod.Client`."""

    @property
    def pool(self) -> ConnectionPool: ...

    @property
    def metadata(self) -> MetadataCache: ...

    def subscribe(
        self, topic: str, partition: int, **options: Any
    ) -> AbstractAsyncContextManager[Subscription]: ...


class _Withdrawn(Exception):
    """A message set of the open transaction was withdrawn (its partition is going)."""


class _Work:
    """One partition's message sets handed to the transactor (in offset order, all that
    its subscription had delivered), and what became of their transaction."""

    __slots__ = ("assigned", "committed", "done", "message_sets", "withdrawn")

    def __init__(self, assigned: AssignedPartition, message_sets: list[MessageSet]) -> None:
        self.assigned = assigned
        self.message_sets = message_sets
        self.done = trio.Event()
        self.committed = False
        self.withdrawn = False

    @property
    def next_offset(self) -> int:
        """The offset to commit: the one after the last message set's last message."""
        return self.message_sets[-1].high_offset + 1

    def __len__(self) -> int:
        return sum(len(message_set) for message_set in self.message_sets)


class TransactionProcessor:
    """A running transaction processor; made by :func:`open_transaction_processor`.

    Attributes:
        member: The :class:`~trio_brod.GroupMember` underneath (``send_offsets`` takes it).
        producer: Its :class:`~trio_brod.TransactionalProducer`.
        transactions: How many transactions committed so far.
        aborted: How many aborted.
        messages: How many input messages the committed transactions processed.
    """

    def __init__(
        self, member: GroupMember, producer: TransactionalProducer, process: Process
    ) -> None:
        self.member = member
        self.producer = producer
        self.transactions = 0
        self.aborted = 0
        self.messages = 0
        self._process = process
        self._send, self._receive = trio.open_memory_channel[_Work](math.inf)
        self._current: list[_Work] = []
        self._scope: trio.CancelScope | None = None

    def __repr__(self) -> str:
        return (
            f"<TransactionProcessor {self.member.group_id!r} "
            f"{self.producer.transactional_id!r} transactions={self.transactions}>"
        )

    def assignments(self) -> list[AssignedPartition]:
        """The partitions owned now."""
        return self.member.assignments()

    async def wait_stable(self) -> None:
        """Wait until the member has completed a rebalance."""
        await self.member.wait_stable()

    # -- the transactor ------------------------------------------------------------------

    async def run_transactions(self) -> None:
        """Take waiting message sets, one transaction at a time, for ever.

        However it ends (``process`` raised, the producer was fenced, the processor is
        closing), every message set still waiting is answered "not committed" first: a
        worker waiting for its outcome, shielded, must never wait for a transactor that is
        gone.
        """
        try:
            await self._run_transactions()
        finally:
            self._send.close()
            for work in self._current:
                work.done.set()
            while True:
                try:
                    work = self._receive.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                work.done.set()

    async def _run_transactions(self) -> None:
        while True:
            batch = [await self._receive.receive()]
            # A commit wakes every worker whose sets it held, in one scheduler batch; let
            # them all hand their next sets over before this transaction's batch is cut.
            await trio.lowlevel.cancel_shielded_checkpoint()
            while len(batch) < _MAX_WORKS_PER_TRANSACTION:
                try:
                    batch.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            for work in batch:
                if work.withdrawn:
                    work.done.set()  # not committed (its worker was told so already)
            batch = [work for work in batch if not work.withdrawn]
            if batch:
                await self._transaction(batch)

    async def _transaction(self, batch: list[_Work]) -> None:
        self._current = batch
        committed = False
        try:
            with trio.CancelScope() as self._scope:
                async with self.producer.transaction() as txn:
                    for work in batch:
                        for message_set in work.message_sets:
                            await self._process(txn, message_set)
                    self._check_withdrawn(batch)
                    await txn.send_offsets(self._metadata(batch), _offsets(batch))
                    self._check_withdrawn(batch)
            committed = not self._scope.cancelled_caught
        except (_Withdrawn, AbortableTransactionError) as exc:
            log.info(
                "%s: transaction of %d message sets aborted: %s",
                self.member.group_id,
                len(batch),
                exc,
            )
        finally:
            self._scope = None
            self._current = []
            if committed:
                self.transactions += 1
                self.messages += sum(len(work) for work in batch)
            else:
                self.aborted += 1
            for work in batch:
                work.committed = committed
                work.done.set()

    def _check_withdrawn(self, batch: list[_Work]) -> None:
        if any(work.withdrawn or work.assigned.lost for work in batch):
            raise _Withdrawn("a partition of the transaction was lost or timed out")

    def _metadata(self, batch: list[_Work]) -> GroupMetadata:
        """The group metadata the offsets carry: the generation the partitions are owned
        in (a rebalance since they were handed over makes the commit fail, as it must)."""
        assigned = batch[0].assigned
        return GroupMetadata(
            self.member.group_id,
            assigned.generation_id,
            assigned.member_id,
            self.member.config.group_instance_id,
        )

    def withdraw(self, work: _Work) -> None:
        """A worker is being cancelled with its message sets handed over: abort the
        transaction holding them, or, if they are still waiting for one, take them back
        at once (not committed)."""
        work.withdrawn = True
        if work in self._current:
            if self._scope is not None:
                self._scope.cancel()
        else:
            work.done.set()

    # -- the workers ---------------------------------------------------------------------

    async def work(self, client: Client, assigned: AssignedPartition, options: Any) -> None:
        """One partition's worker, inside its cancel scope (see the module docstring)."""
        with assigned:
            position = assigned.begin_offset
            while not assigned.revoked:
                partition_options = dict(options)
                if position is not None:
                    partition_options["begin_offset"] = position
                async with client.subscribe(
                    assigned.topic, assigned.partition, **partition_options
                ) as subscription:
                    while not assigned.revoked:
                        message_set = None
                        with assigned.interruptible(), suppress(StopAsyncIteration):
                            message_set = await subscription.receive()
                        if message_set is None:
                            break
                        message_sets = _take_delivered(subscription, message_set)
                        last = message_sets[-1]
                        assigned.high_watermark = last.high_watermark
                        if not any(len(taken) for taken in message_sets):
                            subscription.ack(last.high_offset)
                            continue
                        if not await self._hand_over(assigned, message_sets):
                            break  # aborted: subscribe again from the last commit
                        subscription.ack(last.high_offset)
                        assigned.ack(last.high_offset)
                        position = last.high_offset + 1

    async def _hand_over(self, assigned: AssignedPartition, message_sets: list[MessageSet]) -> bool:
        """Hand message sets to the transactor; wait for their transaction's outcome."""
        work = _Work(assigned, message_sets)
        try:
            self._send.send_nowait(work)
        except trio.ClosedResourceError:
            # The transactor has stopped: the processor is ending, and this worker is
            # being cancelled with it.
            await trio.sleep_forever()
        try:
            await work.done.wait()
        except trio.Cancelled:
            # Revoked past rebalance_timeout, or lost: abort the transaction holding it
            # before the partition is released.
            self.withdraw(work)
            with trio.CancelScope(shield=True):
                await work.done.wait()
            raise
        return work.committed


def _take_delivered(subscription: Subscription, first: MessageSet) -> list[MessageSet]:
    """``first`` and every message set the subscription has delivered behind it already.

    One transaction then takes all that the partition's prefetch window holds (so
    ``prefetch_count`` / ``prefetch_bytes`` bound a transaction's size): fewer, larger
    transactions, each paying the coordinator's round trips once. An error the
    subscription delivers behind them is raised here, as ``receive`` would raise it (the
    sets taken are then not processed, and nothing of them is committed).
    """
    taken = [first]
    while True:
        try:
            taken.append(subscription.receive_nowait())
        except (trio.WouldBlock, StopAsyncIteration):
            return taken


def _offsets(batch: Sequence[_Work]) -> dict[tuple[str, int], int]:
    offsets: dict[tuple[str, int], int] = {}
    for work in batch:
        tp = work.assigned.topic_partition
        offsets[tp] = max(offsets.get(tp, 0), work.next_offset)
    return offsets


@asynccontextmanager
async def open_transaction_processor(
    client: Client,
    group_id: str,
    topics: Topics,
    process: Process,
    *,
    transactional_id: str,
    consumer_config: ConsumerConfig | None = None,
    group_config: GroupConfig | None = None,
    config: TransactionConfig | None = None,
) -> AsyncIterator[TransactionProcessor]:
    """Consume, transform and produce exactly once, for the block's duration (``txn_do``).

    Args:
        client: An open client.
        group_id: The consumer group.
        topics: Topic names, or a compiled regular expression.
        process: ``async def process(txn, message_set)``: produce the output of a message
            set through ``txn.produce``; its offsets go into the same transaction.
        transactional_id: The transactional id, one per member (a restarted member
            should use its predecessor's, so that it fences it and ends its open
            transaction at once rather than after ``transaction_timeout``).
        consumer_config: The partitions' subscriptions' options (``read_committed`` by
            default, and ``begin_offset="earliest"`` where nothing was committed).
        group_config: The group options; ``offset_commit_policy`` is made
            ``"consumer_managed"`` (offsets are committed only by the transactions).
        config: The :class:`~trio_brod.TransactionConfig`.

    Raises:
        Exception: What ``process`` raised (its transaction was aborted first).
        FatalTransactionError: The producer was fenced (another processor with the same
            transactional id started) or is not authorised.
        KafkaError: A fatal group error.
    """
    if isinstance(topics, str):
        raise TypeError("topics must be a list of names or a re.Pattern, not a str")
    if not isinstance(topics, re.Pattern):
        topics = list(topics)
    cconfig = consumer_config or ConsumerConfig(begin_offset="earliest")
    options = {f.name: getattr(cconfig, f.name) for f in dataclasses.fields(cconfig)}
    gconfig = dataclasses.replace(
        group_config or GroupConfig(), offset_commit_policy="consumer_managed"
    )
    coordinator = GroupCoordinator(client.pool, client.metadata, group_id)

    async def committed(
        partitions: Sequence[tuple[str, int]],
    ) -> Mapping[tuple[str, int], int | None]:
        # Stable offsets only: a transaction still pending for a partition is waited for
        # (up to transaction_timeout: a dead producer's is aborted by then).
        timeout = (config or TransactionConfig()).transaction_timeout + 30.0
        return await fetch_committed(coordinator, group_id, partitions, timeout=timeout)

    with unwrap_single_exception():
        async with (
            open_transactional_producer(
                client.pool, client.metadata, transactional_id, config
            ) as producer,
            trio.open_nursery() as nursery,
        ):
            processor: TransactionProcessor | None = None

            async def assigned_hook(partitions: Sequence[AssignedPartition]) -> None:
                assert processor is not None
                for assigned in partitions:
                    nursery.start_soon(
                        processor.work,
                        client,
                        assigned,
                        options,
                        name=f"trio_brod transaction worker {assigned.topic}[{assigned.partition}]",
                    )

            member = GroupMember(
                client.pool,
                client.metadata,
                group_id,
                topics,
                gconfig,
                on_assigned=assigned_hook,
                committed_offsets=committed,
                iterate=False,
            )
            processor = TransactionProcessor(member, producer, process)
            nursery.start_soon(processor.run_transactions, name="trio_brod transactor")
            await nursery.start(member.run, name=f"trio_brod group member {group_id}")
            try:
                yield processor
            finally:
                with trio.CancelScope(shield=True):
                    await member.leave()
                nursery.cancel_scope.cancel()
