"""One handler over all the partitions of a topic: brod's ``brod_topic_subscriber``.

::

    async def handle(partition: int, message: Record) -> None:
        print(partition, message.offset, message.value)

    async with trio_brod.open_topic_subscriber(
        client, "orders", handle, committed_offsets={0: 41, 1: 7}
    ) as subscriber:
        await trio.sleep_forever()

Inside, a nursery runs one task per partition. Each subscribes to its partition's consumer
and calls ``handle`` for every message in order; messages of one partition are never handled
concurrently, those of different partitions are. When ``handle`` returns, the message is
acknowledged (it made room in the prefetch window), unless it returned ``False``: then the
subscriber acknowledges later with :meth:`TopicSubscriber.ack`, as brod's ``{ok, State}``
versus ``{ok, ack, State}``.

The positions are the caller's: ``committed_offsets`` says, per partition, the offset of the
last message already processed (what brod's ``init`` callback returns), and consumption
resumes right after it. Partitions without one start at the consumer config's
``begin_offset``. An exception from ``handle`` (or from a partition's consumer) ends the
whole block with that exception; the other partitions' tasks are cancelled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal, Protocol

import trio

from trio_brod._config import ConsumerConfig
from trio_brod._util import unwrap_single_exception
from trio_brod.consumer.message_set import MessageSet
from trio_brod.consumer.worker import Subscription
from trio_brod.protocol.records import Record

__all__ = ["MessageHandler", "MessageSetHandler", "TopicSubscriber", "open_topic_subscriber"]

#: ``handle(partition, message)``; return False to acknowledge later yourself.
MessageHandler = Callable[[int, Record], Awaitable[bool | None]]
#: ``handle(partition, message_set)`` with ``message_type="message_set"``.
MessageSetHandler = Callable[[int, MessageSet], Awaitable[bool | None]]


class _Client(Protocol):
    """What a topic subscriber needs of a :class:`~trio_brod.Client`."""

    async def start_consumer(self, topic: str, config: ConsumerConfig | None = None) -> None: ...

    async def get_partitions_count(self, topic: str) -> int: ...

    def subscribe(
        self, topic: str, partition: int, **options: Any
    ) -> AbstractAsyncContextManager[Subscription]: ...


class _Progress:
    """What the partition tasks share with the :class:`TopicSubscriber` they serve: the
    live subscriptions, the last handled offsets, and whether all are subscribed."""

    def __init__(self, partitions: int) -> None:
        self.subscriptions: dict[int, Subscription] = {}
        self.handled: dict[int, int] = {}
        self.ready = trio.Event()
        self._waiting = partitions
        if not partitions:
            self.ready.set()

    def subscribed(self, subscription: Subscription) -> None:
        """A partition's subscription started (once per partition)."""
        self.subscriptions[subscription.partition] = subscription
        self._waiting -= 1
        if self._waiting == 0:
            self.ready.set()


class TopicSubscriber:
    """A running topic subscriber; made by :func:`open_topic_subscriber`.

    Attributes:
        topic: The topic.
        partitions: The partitions it subscribes to.
    """

    def __init__(self, topic: str, partitions: list[int], progress: _Progress) -> None:
        self.topic = topic
        self.partitions = partitions
        self._subscriptions = progress.subscriptions
        self._handled = progress.handled
        self._ready = progress.ready

    def __repr__(self) -> str:
        return f"<TopicSubscriber {self.topic} partitions={self.partitions}>"

    def ack(self, partition: int, offset: int) -> None:
        """Acknowledge every message of ``partition`` up to ``offset`` (brod's ``ack``).

        Only needed for messages whose handler returned ``False``.
        """
        subscription = self._subscriptions.get(partition)
        if subscription is None:
            raise KeyError(f"{self.topic}[{partition}] is not subscribed (yet)")
        subscription.ack(offset)

    def handled_offsets(self) -> dict[int, int]:
        """The offset of the last message handled, per partition (those with any)."""
        return dict(self._handled)

    async def wait_subscribed(self) -> None:
        """Wait until every partition has its subscription."""
        await self._ready.wait()


@asynccontextmanager
async def open_topic_subscriber(
    client: _Client,
    topic: str,
    handle: MessageHandler | MessageSetHandler,
    *,
    partitions: Iterable[int] | None = None,
    committed_offsets: Mapping[int, int] | None = None,
    consumer_config: ConsumerConfig | None = None,
    message_type: Literal["message", "message_set"] = "message",
) -> AsyncIterator[TopicSubscriber]:
    """Subscribe one handler to the partitions of a topic, for the block's duration.

    Args:
        client: An open client.
        topic: The topic.
        handle: ``async def handle(partition, message)``, called in order per partition.
            Return ``False`` to leave the message unacknowledged (see
            :meth:`TopicSubscriber.ack`); anything else acknowledges it.
        partitions: Which partitions; all of the topic's by default.
        committed_offsets: ``{partition: offset of the last processed message}``;
            consumption resumes after it.
        consumer_config: Options for the subscriptions (``prefetch_count``,
            ``isolation_level``...); the topic's consumers are started with it if they are
            not running.
        message_type: ``"message"`` calls ``handle`` per message, ``"message_set"`` per
            :class:`~trio_brod.MessageSet` (acknowledged as a whole).

    Leaving the block unsubscribes every partition. An exception from ``handle`` ends the
    block with that exception.
    """
    if message_type not in ("message", "message_set"):
        raise ValueError(f"message_type must be 'message' or 'message_set', not {message_type!r}")
    committed = dict(committed_offsets or {})
    config = consumer_config or ConsumerConfig()
    await client.start_consumer(topic, config)
    if partitions is None:
        chosen = list(range(await client.get_partitions_count(topic)))
    else:
        chosen = sorted(set(partitions))
    unknown = set(committed) - set(chosen)
    if unknown:
        raise ValueError(f"committed_offsets names partitions not subscribed: {sorted(unknown)}")
    options = {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}
    progress = _Progress(len(chosen))
    subscriber = TopicSubscriber(topic, chosen, progress)

    async def run_partition(partition: int) -> None:
        partition_options = dict(options)
        if partition in committed:
            partition_options["begin_offset"] = committed[partition] + 1
        async with client.subscribe(topic, partition, **partition_options) as subscription:
            progress.subscribed(subscription)
            try:
                await _handle_partition(progress.handled, subscription, handle, message_type)
            finally:
                del progress.subscriptions[partition]

    with unwrap_single_exception():
        async with trio.open_nursery() as nursery:
            for partition in chosen:
                nursery.start_soon(
                    run_partition,
                    partition,
                    name=f"trio_brod topic subscriber {topic}[{partition}]",
                )
            try:
                yield subscriber
            finally:
                nursery.cancel_scope.cancel()


async def _handle_partition(
    handled: dict[int, int],
    subscription: Subscription,
    handle: Any,
    message_type: str,
) -> None:
    # Not ``async for message_set in subscription``: the loop variable would keep the last
    # message set (its records and the fetched bytes they point into) alive while the task
    # waits for the next one, in every quiet partition. Each set is handled in a call whose
    # frame ends before the next wait.
    while await _handle_next(handled, subscription, handle, message_type):
        pass


async def _handle_next(
    handled: dict[int, int],
    subscription: Subscription,
    handle: Any,
    message_type: str,
) -> bool:
    """Receive the next message set and handle it; False once the subscription ended."""
    try:
        message_set = await subscription.receive()
    except StopAsyncIteration:
        return False
    partition = subscription.partition
    if message_type == "message_set":
        if await handle(partition, message_set) is not False:
            subscription.ack(message_set.high_offset)
        handled[partition] = message_set.high_offset
        return True
    all_acked = True
    for message in message_set:
        acked = await handle(partition, message) is not False
        if acked:
            subscription.ack(message.offset)
        all_acked = all_acked and acked
        handled[partition] = message.offset
    if all_acked:
        # Compaction can leave offsets without messages at the end of a set: ack past them.
        subscription.ack(message_set.high_offset)
    return True
