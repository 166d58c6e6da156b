"""What a partition worker keeps while it serves one subscriber.

:class:`Serving` holds everything that changes while the worker
(:mod:`trio_brod.consumer.worker`) serves a subscriber: the prefetch window, the fetch size,
the retry backoff, the read replica, the channel to the subscriber. When the subscriber
leaves it ends, so that a fetch answer arriving after that touches nothing anyone looks at.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import trio

from trio_brod._backoff import Backoff
from trio_brod._config import BeginOffset, ConsumerConfig
from trio_brod.consumer._fetch import FetchSize
from trio_brod.consumer._inflate import inflate, ready_runs, to_inflate
from trio_brod.consumer._window import Window
from trio_brod.consumer.message_set import MessageSet
from trio_brod.observe import _hooks as observe
from trio_brod.protocol.records import RecordBatch

__all__ = ["RETRY_BACKOFF_BASE", "RETRY_BACKOFF_CAP", "Failure", "Serving"]

#: Retrying after a lost connection, a moved leader or an offset reset: 0.1 s doubling to 5.
RETRY_BACKOFF_BASE = 0.1
RETRY_BACKOFF_CAP = 5.0


class Failure:
    """An error delivered through the subscription channel, raised by the subscriber."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Serving:
    """The worker serving one subscriber: its window, fetch size, retries and channel.

    (Not a "session": that word is kept for Kafka's fetch sessions and SASL's.) Everything
    the worker changes while serving a subscriber lives here, not on the
    :class:`PartitionConsumer`. When the subscriber leaves, this object ends; a worker that
    has not yet noticed (its fetch answer arrived just before the cancellation) can only
    touch an object nobody looks at any more.
    """

    def __init__(
        self,
        config: ConsumerConfig,
        send: trio.MemorySendChannel[Any],
        begin: BeginOffset,
        hooks: observe.HasHooks = observe.state,
    ) -> None:
        self.config = config
        #: Whom to tell about message sets delivered: the client's hooks (its pool's).
        self.hooks = hooks
        self.send = send
        #: False once the subscriber left (or the consumer stopped).
        self.active = True
        self.window = Window(config.prefetch_count, config.prefetch_bytes, begin)
        self.fetch_size = FetchSize(config.max_bytes, config.size_stat_window)
        self.high_watermark = -1
        #: The leader epoch of the last batch fetched (-1: unknown), sent with the next
        #: fetch so that the broker can tell whether the log diverged (KIP-320).
        self.last_epoch = -1
        #: The replica the leader told us to fetch from (KIP-392, ``client_rack``), -1 for
        #: the leader, and until when (Trio's clock) to keep fetching from it.
        self.read_replica = -1
        self.read_replica_until = -math.inf
        self.backoff = Backoff(RETRY_BACKOFF_BASE, RETRY_BACKOFF_CAP)
        #: Whether a failed fetch was logged since the last answer (see trio_brod._log).
        self.retrying = False
        self.scope: trio.CancelScope | None = None
        #: True while a worker thread decompresses batches of the window (see _inflate).
        self.inflating = False
        # Batches the thread failed to decompress: delivered as they are (iterating them
        # raises the error); forgotten once everything fetched was delivered.
        self._failed: set[RecordBatch] = set()
        self._wakeup = trio.Event()

    def ack(self, offset: int) -> None:
        """Pass the subscriber's ack to the window, and wake the worker waiting for room."""
        if not self.active:
            return  # nothing of an ended subscription is pending any more
        self.window.ack(offset)
        self._wakeup.set()

    def poke(self) -> None:
        """Wake the worker waiting in :meth:`wait` (its broker's fetcher has news)."""
        self._wakeup.set()

    def has_room(self) -> bool:
        """Whether everything fetched was delivered and the window can take more.

        While a thread decompresses what waits for delivery, that counts as delivered
        already, so that the next fetch overlaps with the decompression.
        """
        window = self.window
        count, size = window.unacked_count, window.unacked_bytes
        if window.undelivered:
            if not self.inflating:
                return False
            count += sum(run.length() for run in window.undelivered)
            size += sum(run.size() for run in window.undelivered)
        return count < window.prefetch_count and size < window.prefetch_bytes

    async def wait(self) -> None:
        """Wait until an ack (or the subscriber leaving) may have changed something."""
        self._wakeup = trio.Event()
        await self._wakeup.wait()

    async def deliver_inflated(
        self, topic: str, partition: int, started: Callable[[], None] | None = None
    ) -> None:
        """Deliver, having the large compressed batches waiting for delivery decompressed
        in a worker thread first (:mod:`trio_brod.consumer._inflate`). Only the worker
        calls this; it does not checkpoint when nothing needs decompressing.

        Runs are delivered as soon as their batch is ready, so that the subscriber reads
        one message set while the thread decompresses the next. ``started`` is called as
        the thread starts: what it works on counts as delivered in :meth:`has_room`, and
        the next fetch can go out meanwhile.
        """
        undelivered = self.window.undelivered
        while self.active:
            batches = to_inflate(undelivered, skip=self._failed)
            if not batches:
                break
            self.inflating = True
            if started is not None:
                started()
            try:
                self._failed.update(await inflate(batches))
            finally:
                self.inflating = False
            self.deliver(topic, partition)
        self.deliver(topic, partition)

    def deliver(self, topic: str, partition: int) -> None:
        """Send what the window has room for, as one message set.

        Runs whose batch is still to be decompressed in a thread stay back (the worker
        delivers them once they are, :meth:`deliver_inflated`; this wakes it): a batch
        reaches the subscriber, and the event loop's thread, only once the thread is done
        with it.
        """
        if not self.active:
            return
        undelivered = self.window.undelivered
        ready = ready_runs(undelivered, self._failed)
        if ready < len(undelivered):
            self._wakeup.set()
        runs = self.window.take(ready)
        if self._failed and not undelivered:
            self._failed.clear()
        if runs:
            message_set = MessageSet(topic, partition, self.high_watermark, runs)
            self.send.send_nowait(message_set)
            if self.hooks.hooks:
                observe.delivered(self.hooks, message_set)

    def fail(self, error: BaseException) -> None:
        """Hand an error the worker cannot recover from to the subscriber."""
        if self.active:
            self.send.send_nowait(Failure(error))
            self.send.close()

    def end(self) -> None:
        """The subscriber left, or the consumer stopped: the subscriber's iteration ends."""
        if self.active:
            self.active = False
            self.send.close()
            if self.scope is not None:
                self.scope.cancel()
            self._wakeup.set()
