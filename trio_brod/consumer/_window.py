"""The consumer's sans-IO core, part two: the prefetch window of one subscription.

A :class:`Window` is plain bookkeeping, with no I/O, no clock and no Trio: the partition
worker (:mod:`trio_brod.consumer.worker`) adds what a fetch brought (:meth:`Window.add`),
asks what may be delivered now (:meth:`Window.take`) and passes on the subscriber's acks
(:meth:`Window.ack`). The rules it keeps (a hypothesis state machine checks them, in
``tests/unit/test_consumer_window.py``):

1. Messages delivered and not yet acknowledged number at most ``prefetch_count`` and take at
   most ``prefetch_bytes`` bytes of fetched batches (pro rata for a batch split at the
   window's edge), except for one message larger than the whole window: with nothing
   unacknowledged, at least one message goes, alone.
2. Messages are delivered in offset order, each exactly once; a delivered set makes room
   only once acknowledged to its end (its ``high_offset``).
3. Only delivered offsets may be acknowledged; acknowledging less than before changes
   nothing.
4. Where a later subscriber continues (:meth:`Window.hand_on`): after the last ack; with no
   ack, where this subscription started: its ``begin_offset`` as resolved, or as it was
   asked for if it was never resolved (the next subscription resolves it anew). A reset
   after OFFSET_OUT_OF_RANGE moves that start, unless something was acknowledged.
"""

from __future__ import annotations

from collections import deque

from trio_brod._config import BeginOffset
from trio_brod.consumer._fetch import Run

__all__ = ["Window", "begin_for"]


def begin_for(configured: BeginOffset, named: bool, handed_on: BeginOffset | None) -> BeginOffset:
    """Where a new subscription starts.

    Args:
        configured: The subscription's ``begin_offset`` (its own option, or the config's).
        named: Whether the subscriber named ``begin_offset`` itself.
        handed_on: What the previous subscriber left (:meth:`Window.hand_on`), or None if
            there was none.

    A named ``begin_offset`` always wins, even over older acks; otherwise the subscription
    continues where the previous one left off, and only the first falls back to the config.
    """
    if named or handed_on is None:
        return configured
    return handed_on


class Window:
    """The prefetch window and the position of one subscription.

    Args:
        prefetch_count: Most messages delivered and not acknowledged.
        prefetch_bytes: Most bytes delivered and not acknowledged (see :meth:`take`).
        begin: Where the subscription starts (:func:`begin_for`): an offset, or a
            ``begin_offset`` still to be resolved (then :meth:`start_at` once it is).
    """

    __slots__ = (
        "_delivered",
        "acked",
        "begin",
        "last_delivered",
        "offset",
        "prefetch_bytes",
        "prefetch_count",
        "resume",
        "unacked_bytes",
        "unacked_count",
        "undelivered",
    )

    def __init__(self, prefetch_count: int, prefetch_bytes: int, begin: BeginOffset) -> None:
        self.prefetch_count = prefetch_count
        self.prefetch_bytes = prefetch_bytes
        #: Where the subscription starts, as asked for.
        self.begin = begin
        #: The next offset to fetch; None until ``begin`` is resolved.
        self.offset: int | None = begin if isinstance(begin, int) else None
        #: Where a later subscriber continues: after the last ack, or else where this one
        #: started. None while that is not resolved yet.
        self.resume = self.offset
        #: The highest offset acknowledged; None before the first ack.
        self.acked: int | None = None
        #: The highest offset delivered (-1 before the first delivery).
        self.last_delivered = -1
        #: Messages delivered and not acknowledged, and the bytes they are charged.
        self.unacked_count = 0
        self.unacked_bytes = 0
        #: Fetched and not delivered yet.
        self.undelivered: deque[Run] = deque()
        # Per delivered set, until acknowledged: (its high offset, count, bytes).
        self._delivered: deque[tuple[int, int, int]] = deque()

    def __repr__(self) -> str:
        return (
            f"<Window offset={self.offset} acked={self.acked} unacked={self.unacked_count}"
            f"/{self.prefetch_count} msgs {self.unacked_bytes}/{self.prefetch_bytes} bytes>"
        )

    # ------------------------------------------------------------ position

    def start_at(self, offset: int) -> None:
        """``begin`` resolved to ``offset``: fetch from there, and hand it on if nothing
        gets acknowledged."""
        self.offset = self.resume = offset

    def reset_to(self, offset: int) -> None:
        """The position was out of range and was reset to ``offset``. Unless something was
        acknowledged, a later subscriber starts there too."""
        self.offset = offset
        if self.acked is None:
            self.resume = offset

    def lag(self, high_watermark: int) -> int | None:
        """Messages from the first not acknowledged (or where the subscription started) to
        ``high_watermark``; None while either is unknown (-1 or unresolved)."""
        if high_watermark < 0 or self.resume is None:
            return None
        return max(0, high_watermark - self.resume)

    def hand_on(self) -> BeginOffset:
        """Where the next subscriber without a ``begin_offset`` starts (rule 4)."""
        return self.begin if self.resume is None else self.resume

    # ------------------------------------------------------------ fetched data

    def add(self, runs: list[Run], next_offset: int) -> None:
        """A fetch brought ``runs``; the next fetch starts at ``next_offset``."""
        self.offset = next_offset
        self.undelivered.extend(runs)

    def take(self) -> list[Run]:
        """What may be delivered now, as one message set's runs; counted as delivered.

        Empty when the window is full or nothing is left. A run that does not fit whole is
        split at the window's edge. When nothing is unacknowledged, at least one message
        goes, so that a message larger than the whole window still gets through (alone).
        """
        room_count = self.prefetch_count - self.unacked_count
        room_bytes = self.prefetch_bytes - self.unacked_bytes
        undelivered = self.undelivered
        chosen: list[Run] = []
        count = size = 0
        while undelivered and count < room_count and size < room_bytes:
            run = undelivered[0]
            run_count = run.length()
            if run_count == 0:  # emptied by compaction: nothing to deliver
                undelivered.popleft()
                continue
            run_size = run.size()
            if count + run_count <= room_count and size + run_size <= room_bytes:
                chosen.append(undelivered.popleft())
                count += run_count
                size += run_size
                continue
            take = min(room_count - count, run.fitting(room_bytes - size), run_count)
            if take <= 0:
                if chosen or self._delivered:
                    break
                take = 1  # one message larger than the whole window: alone
            if take < run_count:
                head, undelivered[0] = run.split(take)
            else:
                head = undelivered.popleft()
            chosen.append(head)
            count += head.length()
            size += head.size()
            break
        if chosen:
            last = chosen[-1].last
            self._delivered.append((last, count, size))
            self.unacked_count += count
            self.unacked_bytes += size
            self.last_delivered = last
        return chosen

    def ack(self, offset: int) -> None:
        """Acknowledge every delivered message up to ``offset``.

        Raises:
            ValueError: ``offset`` was not delivered yet.
        """
        if offset > self.last_delivered:
            raise ValueError(
                f"cannot acknowledge offset {offset}: only offsets up to "
                f"{self.last_delivered} were delivered"
            )
        if self.acked is None or offset > self.acked:
            self.acked = offset
            if self.resume is None or offset + 1 > self.resume:
                self.resume = offset + 1
        delivered = self._delivered
        while delivered and delivered[0][0] <= offset:
            _, count, size = delivered.popleft()
            self.unacked_count -= count
            self.unacked_bytes -= size
