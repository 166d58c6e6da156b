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
resumes right after it; it may also say ``"earliest"``, ``"latest"`` or a
:class:`~trio_brod.Timestamp` for a partition, as brod allows. Partitions without one start at
the consumer config's ``begin_offset``.

Failures are told apart by whose they are, as in brod:

* An exception from ``handle`` (or from the ``init``/``terminate`` hooks) is the
  application's: it ends the whole block with that exception, and the other partitions'
  tasks are cancelled.
* An error of a partition's *consumer* (the broker refused the fetch, a subscription failed,
  someone else holds the partition) is Kafka's: only that partition is re-subscribed, after
  ``resubscribe_delay`` seconds (brod's 2 s), and the other partitions go on. The new
  subscription continues after the last acknowledged message, so nothing acknowledged is
  handled twice and nothing unacknowledged is lost. An error that comes back every time
  (an authorization failure, an offset out of range with ``"reset_by_subscriber"``) is
  logged at WARNING on every attempt on the ``trio_brod.consumer.subscriber`` logger.

The hooks are brod's ``init``/``terminate``, per partition: ``init(partition)`` runs in the
partition's task before its first subscription and returns the partition's state
(:meth:`TopicSubscriber.state`); ``terminate(partition, state, error)`` runs when the task
ends, with the exception that ended it (None when the block was left normally, or the
consumers were stopped).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal, Protocol

import trio

from trio_brod._config import ConsumerConfig, Timestamp
from trio_brod._util import unwrap_single_exception
from trio_brod.consumer.message_set import MessageSet
from trio_brod.consumer.worker import Subscription
from trio_brod.observe import HandlerTimer, handler_timer, traced_handler
from trio_brod.protocol.records import Record

__all__ = [
    "CommittedOffset",
    "InitHook",
    "MessageHandler",
    "MessageSetHandler",
    "TerminateHook",
    "TopicSubscriber",
    "open_topic_subscriber",
]

logger = logging.getLogger(__name__)

#: ``handle(partition, message)``; return False to acknowledge later yourself.
MessageHandler = Callable[[int, Record], Awaitable[bool | None]]
#: ``handle(partition, message_set)`` with ``message_type="message_set"``.
MessageSetHandler = Callable[[int, MessageSet], Awaitable[bool | None]]
#: ``init(partition)``: the partition's state, before its first subscription.
InitHook = Callable[[int], Awaitable[Any]]
#: ``terminate(partition, state, error)``: the partition's task ends (error None if normally).
TerminateHook = Callable[[int, Any, BaseException | None], Awaitable[None]]
#: A committed offset (the last processed message), or where to start without one.
CommittedOffset = int | Literal["earliest", "latest"] | Timestamp
#: brod's delay before re-subscribing a partition whose consumer failed.
RESUBSCRIBE_DELAY = 2.0


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
        self.states: dict[int, Any] = {}
        self.resubscribed: dict[int, int] = {}
        self.ready = trio.Event()
        self._seen: set[int] = set()
        self._waiting = partitions
        if not partitions:
            self.ready.set()

    def subscribed(self, subscription: Subscription) -> None:
        """A partition's subscription started (again, after a consumer failure)."""
        partition = subscription.partition
        self.subscriptions[partition] = subscription
        if partition not in self._seen:
            self._seen.add(partition)
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
        self._states = progress.states
        self._resubscribed = progress.resubscribed
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

    def lag(self) -> dict[int, int]:
        """Per subscribed partition whose high watermark is known: the messages from the
        first not acknowledged to the high watermark (:attr:`Subscription.lag`)."""
        lags = {p: s.lag for p, s in list(self._subscriptions.items())}
        return {partition: lag for partition, lag in lags.items() if lag is not None}

    def handled_offsets(self) -> dict[int, int]:
        """The offset of the last message handled, per partition (those with any)."""
        return dict(self._handled)

    def state(self, partition: int) -> Any:
        """What ``init`` returned for ``partition`` (None without an ``init`` hook).

        Raises:
            KeyError: ``init`` has not returned for that partition yet.
        """
        if partition not in self._states:
            raise KeyError(f"{self.topic}[{partition}] has no state (yet)")
        return self._states[partition]

    def resubscriptions(self) -> dict[int, int]:
        """How often each partition was re-subscribed after its consumer failed (those
        that were): a number that keeps growing means an error that does not go away."""
        return dict(self._resubscribed)

    async def wait_subscribed(self) -> None:
        """Wait until every partition has had its first subscription."""
        await self._ready.wait()


@asynccontextmanager
async def open_topic_subscriber(
    client: _Client,
    topic: str,
    handle: MessageHandler | MessageSetHandler,
    *,
    partitions: Iterable[int] | None = None,
    committed_offsets: Mapping[int, CommittedOffset] | None = None,
    consumer_config: ConsumerConfig | None = None,
    message_type: Literal["message", "message_set"] = "message",
    init: InitHook | None = None,
    terminate: TerminateHook | None = None,
    resubscribe_delay: float = RESUBSCRIBE_DELAY,
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
            consumption resumes after it. Instead of an offset, ``"earliest"``,
            ``"latest"`` or a :class:`~trio_brod.Timestamp` says where to start.
        consumer_config: Options for the subscriptions (``prefetch_count``,
            ``isolation_level``...); the topic's consumers are started with it if they are
            not running.
        message_type: ``"message"`` calls ``handle`` per message, ``"message_set"`` per
            :class:`~trio_brod.MessageSet` (acknowledged as a whole).
        init: ``async def init(partition) -> state``, before the partition's first
            subscription (see the module).
        terminate: ``async def terminate(partition, state, error)``, when the partition's
            task ends; it runs shielded from the cancellation that ends the block, so it
            must not wait long.
        resubscribe_delay: Seconds before re-subscribing a partition whose consumer
            failed (brod's 2 s).

    Leaving the block unsubscribes every partition. An exception from ``handle`` ends the
    block with that exception; a consumer's error re-subscribes its partition.
    """
    if message_type not in ("message", "message_set"):
        raise ValueError(f"message_type must be 'message' or 'message_set', not {message_type!r}")
    if not resubscribe_delay >= 0:
        raise ValueError(f"resubscribe_delay must be >= 0, not {resubscribe_delay!r}")
    committed = {p: _begin_after(p, o) for p, o in (committed_offsets or {}).items()}
    config = consumer_config or ConsumerConfig()
    await client.start_consumer(topic, config)
    count = await client.get_partitions_count(topic)
    if partitions is None:
        chosen = list(range(count))
    else:
        chosen = sorted(set(partitions))
        missing = [p for p in chosen if not 0 <= p < count]
        if missing:  # found now: re-subscribing could never fix it
            raise ValueError(f"{topic} has {count} partitions, not {missing}")
    unknown = set(committed) - set(chosen)
    if unknown:
        raise ValueError(f"committed_offsets names partitions not subscribed: {sorted(unknown)}")
    options = {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}
    progress = _Progress(len(chosen))
    subscriber = TopicSubscriber(topic, chosen, progress)

    async def run_partition(partition: int) -> None:
        state = None
        error: BaseException | None = None
        try:
            if init is not None:
                state = await init(partition)
            progress.states[partition] = state
            await _subscribe_partition(partition)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if terminate is not None:
                with trio.CancelScope(shield=True):
                    await terminate(partition, state, _unwrapped(error))

    async def _subscribe_partition(partition: int) -> None:
        handler_errors: list[BaseException] = []
        partition_options = dict(options)
        if partition in committed:
            partition_options["begin_offset"] = committed[partition]
        while True:
            try:
                async with client.subscribe(topic, partition, **partition_options) as subscription:
                    # From now on the consumer hands on the position: a later subscription
                    # without a begin_offset continues after the last acknowledged message.
                    partition_options.pop("begin_offset", None)
                    progress.subscribed(subscription)
                    # Timed and traced only when observed (see trio_brod.observe).
                    traced = traced_handler(
                        handle,
                        topic,
                        partition,
                        None,
                        message_type,
                        subscription.config.trace_context,
                    )
                    timer = handler_timer(topic, partition, None, subscription.hooks)
                    try:
                        await _handle_partition(
                            progress.handled,
                            subscription,
                            traced,
                            message_type,
                            handler_errors,
                            timer,
                        )
                    finally:
                        del progress.subscriptions[partition]
                return  # the consumers were stopped
            except Exception as exc:
                if handler_errors:
                    raise  # the application's error: it ends the block
                progress.resubscribed[partition] = progress.resubscribed.get(partition, 0) + 1
                logger.warning(
                    "the consumer of %s[%d] failed (%s: %s); subscribing again in %g s",
                    topic,
                    partition,
                    type(exc).__name__,
                    exc,
                    resubscribe_delay,
                )
            await trio.sleep(resubscribe_delay)

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


def _begin_after(partition: int, committed: CommittedOffset) -> Any:
    """Where a partition with this committed offset starts: after an offset, or at the
    special position it names."""
    if isinstance(committed, Timestamp) or committed in ("earliest", "latest"):
        return committed
    if isinstance(committed, bool) or not isinstance(committed, int) or committed < -1:
        raise ValueError(
            f"committed offset of partition {partition}: expected an offset, 'earliest', "
            f"'latest' or a Timestamp, not {committed!r}"
        )
    return committed + 1


def _unwrapped(error: BaseException | None) -> BaseException | None:
    """What ``terminate`` is told: a cancellation is the block ending normally."""
    return None if isinstance(error, trio.Cancelled) else error


async def _handle_partition(
    handled: dict[int, int],
    subscription: Subscription,
    handle: Any,
    message_type: str,
    handler_errors: list[BaseException],
    timer: HandlerTimer | None,
) -> None:
    # Not ``async for message_set in subscription``: the loop variable would keep the last
    # message set (its records and the fetched bytes they point into) alive while the task
    # waits for the next one, in every quiet partition. Each set is handled in a call whose
    # frame ends before the next wait.
    while await _handle_next(handled, subscription, handle, message_type, handler_errors, timer):
        pass


async def _handle_next(
    handled: dict[int, int],
    subscription: Subscription,
    handle: Any,
    message_type: str,
    handler_errors: list[BaseException],
    timer: HandlerTimer | None = None,
) -> bool:
    """Receive the next message set and handle it; False once the subscription ended.

    An exception from ``handle`` is noted in ``handler_errors`` on its way out: it is the
    application's, which ends the block, unlike the consumer's, which re-subscribes.
    """
    try:
        message_set = await subscription.receive()
    except StopAsyncIteration:
        return False
    partition = subscription.partition
    if timer is not None:
        timer.start(len(message_set))
    try:
        if message_type == "message_set":
            if await handle(partition, message_set) is not False:
                subscription.ack(message_set.high_offset)
            handled[partition] = message_set.high_offset
            if timer is not None:
                timer.finish()
            return True
        all_acked = True
        for message in message_set:
            acked = await handle(partition, message) is not False
            if acked:
                subscription.ack(message.offset)
            all_acked = all_acked and acked
            handled[partition] = message.offset
    except Exception as exc:
        handler_errors.append(exc)
        if timer is not None:
            timer.finish(exc)
        raise
    if timer is not None:
        timer.finish()
    if all_acked:
        # Compaction can leave offsets without messages at the end of a set: ack past them.
        subscription.ack(message_set.high_offset)
    return True
