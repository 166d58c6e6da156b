"""What the consumer-group workloads share: the rebalance timeline and its analysis.

``group``
    One member of a fresh group over an 8-partition topic filled beforehand, from the
    earliest offset to the end, timed from the consumer's start: the join, the first
    SyncGroup and the committed-offset lookup are part of consuming through a group (how
    long they took until the first message is reported as ``join_s``).
``rebalance``
    A 12-partition topic, a producer in the same process sending at a steady rate
    round-robin over the partitions, and members of one group (each its own client) that
    record when they handle each partition's messages. A first member consumes alone; then
    a second joins, then a third. For each join: every partition's **pause** (the longest
    gap between two consumptions of it from the join until the group consumes everything
    again), apart for the partitions that moved to another member and those that stayed
    where they were, how many partitions stopped (paused longer than :data:`STOP_THRESHOLD`), and
    the **total**: from the moment the new member is started until every partition has been
    consumed again after the new member's first message. The producer then stops, the
    members drain, and every produced offset must have been consumed (duplicates, which an
    eager rebalance may cause, are counted).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterable

from bench.common import BenchError, Result

#: Partitions of the rebalance workload's topic, and the members that end up in the group.
REBALANCE_PARTITIONS = 12
MEMBERS = 3
#: A partition whose consumption stopped for longer than this (seconds) "stopped": at the
#: workload's rate a partition gets a message every few milliseconds.
STOP_THRESHOLD = 0.5
#: Every client's group timing: a 10 s session and a heartbeat a second, so that members
#: hear about a rebalance as fast in each client (Java's default heartbeat is 3 s).
SESSION_TIMEOUT_S = 10.0
HEARTBEAT_S = 1.0


class Timeline:
    """When each partition's messages were handled, by which member; thread-safe."""

    def __init__(self, partitions: int = REBALANCE_PARTITIONS) -> None:
        self.partitions = partitions
        self.times: list[list[float]] = [[] for _ in range(partitions)]
        #: Which member handled each of ``times``.
        self.members: list[list[int]] = [[] for _ in range(partitions)]
        self.offsets: list[set[int]] = [set() for _ in range(partitions)]
        self.handled = 0
        self.first_by_member: dict[int, float] = {}
        self._lock = threading.Lock()

    def consumed(self, member: int, partition: int, offsets: Iterable[int]) -> None:
        now = time.perf_counter()
        with self._lock:
            count = 0
            for offset in offsets:
                self.offsets[partition].add(offset)
                count += 1
            if not count:
                return
            self.handled += count
            self.times[partition].append(now)
            self.members[partition].append(member)
            self.first_by_member.setdefault(member, now)

    def all_consuming(self) -> bool:
        """Whether every partition has been consumed at least once."""
        with self._lock:
            return all(self.times)

    def recovered_at(self, member: int) -> float | None:
        """When every partition had been consumed again after ``member``'s first message;
        None if not yet."""
        with self._lock:
            first = self.first_by_member.get(member)
            if first is None:
                return None
            latest = first
            for times in self.times:
                after = [t for t in times[-200:] if t >= first]
                if not after:
                    return None
                latest = max(latest, after[0])
            return latest

    def distinct(self) -> int:
        with self._lock:
            return sum(len(o) for o in self.offsets)

    def join_report(self, member: int, joined_at: float, recovered_at: float) -> Result:
        """The pauses and the total for the join of ``member`` (1-based count of members)."""
        pauses = []
        moved = []
        with self._lock:
            for times, members in zip(self.times, self.members, strict=True):
                longest = 0.0
                previous = None
                before = after = None
                for t, by in zip(times, members, strict=True):
                    if t < joined_at:
                        before = by
                    elif t <= recovered_at:
                        after = by
                    if previous is not None and t >= joined_at and previous <= recovered_at:
                        longest = max(longest, t - max(previous, joined_at))
                    previous = t
                pauses.append(longest)
                moved.append(after is not None and before != after)
        kept = [p for p, m in zip(pauses, moved, strict=True) if not m]
        went = [p for p, m in zip(pauses, moved, strict=True) if m]
        return {
            "members": member + 1,
            "total_s": recovered_at - joined_at,
            "pauses_s": pauses,
            "moved": moved,
            "max_pause_s": max(pauses),
            "median_pause_s": statistics.median(pauses),
            "max_pause_kept_s": max(kept, default=None),
            "max_pause_moved_s": max(went, default=None),
            "stopped": sum(p > STOP_THRESHOLD for p in pauses),
        }

    def check_complete(self, produced: list[int]) -> Result:
        """Every produced offset of every partition consumed (offsets start at 0)."""
        with self._lock:
            for partition, count in enumerate(produced):
                missing = count - len(self.offsets[partition] & set(range(count)))
                if missing:
                    raise BenchError(f"partition {partition}: {missing} of {count} not consumed")
            total = sum(produced)
            return {"messages": total, "duplicates": self.handled - total}


def wait_recovered(timeline: Timeline, member: int, deadline: float) -> float:
    """Poll (threads) until :meth:`Timeline.recovered_at` answers; its time."""
    while True:
        at = timeline.recovered_at(member)
        if at is not None:
            return at
        if time.perf_counter() > deadline:
            raise BenchError(f"the group did not consume everything again after member {member}")
        time.sleep(0.01)
