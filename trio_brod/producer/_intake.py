"""A partition producer's way in: a channel bounded in calls and in bytes.

``produce`` hands each accepted call over here. A Trio memory channel bounds the number of
calls waiting (``partition_buffer_limit``); this class adds the bound in bytes
(``partition_buffer_bytes``), with its own first-come-first-served queue of callers waiting
for room, because a channel cannot count bytes. The fast path (:meth:`Intake.hand_over_now`)
is a few comparisons and ``send_nowait``; everything that waits is kept out of it.

:class:`~trio_brod.producer.worker.PartitionProducer` *is* an Intake (a base class, not an
attribute), so that the hot path reaches the channel and the counters with no extra lookup.
"""

from __future__ import annotations

import collections
from typing import Any, NamedTuple

import trio

from trio_brod._exceptions import ProducerClosed
from trio_brod.producer._buffer import Call, hold_in_flight

__all__ = ["Intake"]


class _RoomWaiter(NamedTuple):
    """A produce call waiting for ``partition_buffer_bytes`` to have room for ``size``."""

    task: trio.lowlevel.Task
    size: int


class Intake:
    """The channel into a partition producer's worker, bounded in calls and in bytes.

    Args:
        topic: The topic (for errors).
        partition: The partition (for errors).
        call_limit: How many calls may wait in the channel (``partition_buffer_limit``).
        byte_limit: How many bytes of calls may wait (``partition_buffer_bytes``).
    """

    def __init__(self, topic: str, partition: int, call_limit: int, byte_limit: int) -> None:
        self.topic = topic
        self.partition = partition
        self._send_channel, self._receive_channel = trio.open_memory_channel[Call](call_limit)
        # The channel counts calls; bytes are counted here. ``_channel_bytes`` is the size of
        # the calls in the channel plus those admitted on their way into it; callers that
        # would go over ``partition_buffer_bytes`` wait in ``_room_waiters``, first come
        # first served, until the worker has taken enough out (see ``_admit``).
        self._channel_bytes = 0
        self._channel_bytes_limit = byte_limit
        # Made on the first wait (an empty deque is 760 bytes per idle partition producer).
        self._room_waiters: collections.deque[_RoomWaiter] | None = None
        # Set when a call arrives (or anything else the worker must look at happens).
        self._wakeup = trio.Event()
        # What the producer was closed with, if it was aborted: the cause of ProducerClosed.
        self._closed_error: BaseException | None = None

    def _hand_over_now(self, call: Call) -> bool:
        """Put ``call`` in the channel if there is room for it now, in bytes and in calls,
        and nobody is waiting before it; False if not (then ``_hand_over_waiting``).

        Raises:
            ProducerClosed: The producer is closed.
        """
        size = call.size
        if self._room_waiters or self._channel_bytes + size > self._channel_bytes_limit:
            return False
        try:
            self._send_channel.send_nowait(call)
        except trio.WouldBlock:
            return False
        except trio.ClosedResourceError:
            raise self._closed() from None
        self._channel_bytes += size
        self._handed_over(call)
        return True

    async def _hand_over_waiting(self, call: Call) -> None:
        """Back-pressure: wait for room in bytes, then in calls (cancellable; nothing is
        sent then), and put ``call`` in the channel."""
        await self._wait_for_room(call.size)
        try:
            self._send_channel.send_nowait(call)
        except trio.WouldBlock:
            await self._submit_waiting(call)
        except trio.ClosedResourceError:
            self._give_back(call.size)
            raise self._closed() from None
        self._handed_over(call)

    def _handed_over(self, call: Call) -> None:
        """``call`` is in the channel: the producer holds it, and the worker has work."""
        hold_in_flight(call)
        # Its records too: numbers, bytes and header tuples, never in a cycle. Left to the
        # collector, the tuple around a single message's record often stays tracked (a
        # collection can meet it before the record inside, which it untracks only then) and
        # reaches the oldest generation, which then fills up and is collected again and again.
        hold_in_flight(call.records)
        self._wakeup.set()

    async def _submit_waiting(self, call: Call) -> None:
        """Wait for room in the channel, the call's bytes counted (cancellable; nothing is
        sent then)."""
        try:
            await self._send_channel.send(call)
        except BaseException as exc:
            self._give_back(call.size)
            if isinstance(exc, trio.ClosedResourceError):
                raise self._closed() from None
            raise

    async def _wait_for_room(self, size: int) -> None:
        """Back-pressure by bytes: wait until ``_admit`` counts ``size`` in (cancellable).

        A call larger than the whole limit is admitted once the channel is empty, so it
        waits but never forever. Closing the producer admits every waiter, and the closed
        channel then refuses their calls.
        """
        if not self._room_waiters and (
            self._channel_bytes == 0  # even a call larger than the limit goes, alone
            or self._channel_bytes + size <= self._channel_bytes_limit
        ):
            self._channel_bytes += size
            return
        waiter = _RoomWaiter(trio.lowlevel.current_task(), size)
        if self._room_waiters is None:
            self._room_waiters = collections.deque()
        waiters = self._room_waiters
        waiters.append(waiter)

        def abort(_: Any) -> trio.lowlevel.Abort:
            waiters.remove(waiter)
            # A large waiter at the front may have held back smaller ones behind it.
            self._admit()
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _give_back(self, size: int) -> None:
        """Uncount an admitted call that did not go into the channel after all."""
        self._channel_bytes -= size
        if self._room_waiters:
            self._admit()

    def _admit(self, everyone: bool = False) -> None:
        """Let waiting callers in, in order, while their calls fit (or all, when closing)."""
        waiters = self._room_waiters
        while waiters:
            waiter = waiters[0]
            if (
                not everyone
                and self._channel_bytes
                and self._channel_bytes + waiter.size > self._channel_bytes_limit
            ):
                return
            waiters.popleft()
            self._channel_bytes += waiter.size
            trio.lowlevel.reschedule(waiter.task)

    def _closed(self) -> ProducerClosed:
        error = ProducerClosed(f"producer of {self.topic}[{self.partition}] is closed")
        error.__cause__ = self._closed_error
        return error
