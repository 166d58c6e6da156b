"""What a partition worker keeps while it serves one subscriber.

:class:`Serving` holds everything that changes while the worker
(:mod:`trio_brod.consumer.worker`) serves a subscriber: the prefetch window, the fetch size,
the retry backoff, the read replica, the channel to the subscriber. When the subscriber
leaves it ends, so that a fetch answer arriving after that touches nothing anyone looks at.
"""

from __future__ import annotations

import math
from typing import Any

import trio

from trio_brod._backoff import Backoff
from trio_brod._config import BeginOffset, ConsumerConfig
from trio_brod.consumer._fetch import FetchSize
from trio_brod.consumer._window import Window
from trio_brod.consumer.message_set import MessageSet
from trio_brod.observe import _hooks as observe

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
        """Whether everything fetched was delivered and the window can take more."""
        window = self.window
        return (
            not window.undelivered
            and window.unacked_count < window.prefetch_count
            and window.unacked_bytes < window.prefetch_bytes
        )

    async def wait(self) -> None:
        """Wait until an ack (or the subscriber leaving) may have changed something."""
        self._wakeup = trio.Event()
        await self._wakeup.wait()

    def deliver(self, topic: str, partition: int) -> None:
        """Send what the window has room for, as one message set."""
        if not self.active:
            return
        runs = self.window.take()
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
