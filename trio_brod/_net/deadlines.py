"""When a connection's requests are overdue: one timer for all of them.

:meth:`Connection.request <trio_brod.lowlevel.Connection.request>` gives every request a
timeout. A cancel scope per request would time it, but entering and leaving one costs about
as much as a whole round trip to an in-process broker (the fake Kafka), and a connection has
one answer for every overdue request anyway: it closes, because responses come back in order
and nothing after a lost one could be trusted. So a connection keeps its requests' deadlines
here, and one task, :meth:`RequestDeadlines.watch`, sleeps until the earliest of them.

Requests with the same timeout come due in the order they were sent, and a broker answers a
connection's requests in that order too. So the deadlines are kept in one queue per timeout,
oldest first: the earliest deadline is among the queues' heads, and answered (or abandoned)
requests are forgotten from the front as new ones arrive, without a search.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import trio

from trio_brod._net.pending import PendingResponse

__all__ = ["RequestDeadlines"]

#: ``on_overdue(pending, timeout)``: what to do about a request past its deadline.
OnOverdue = Callable[[PendingResponse, float], object]


class RequestDeadlines:
    """The deadlines of one connection's requests (see the module docstring).

    The bookkeeping is plain (:meth:`add`, :meth:`next_deadline`, :meth:`overdue` take the
    time as an argument); only :meth:`watch` sleeps.
    """

    def __init__(self) -> None:
        # timeout -> (deadline, request), in the order sent.
        self._queues: dict[float, deque[tuple[float, PendingResponse]]] = {}
        # The watcher's scope while it sleeps, so that an earlier deadline can wake it.
        self._scope: trio.CancelScope | None = None

    def __len__(self) -> int:
        """How many requests are kept (answered ones among them, until forgotten)."""
        return sum(len(queue) for queue in self._queues.values())

    def add(self, pending: PendingResponse, timeout: float, now: float) -> None:
        """Time ``pending``: it is overdue once ``timeout`` seconds from ``now`` have passed
        without it being done or abandoned."""
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = deque()
        else:
            _forget_finished(queue)
        deadline = now + timeout
        queue.append((deadline, pending))
        scope = self._scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline

    def next_deadline(self) -> float:
        """The earliest deadline of a request still waiting (inf if none)."""
        earliest = math.inf
        for timeout in list(self._queues):
            queue = self._queues[timeout]
            _forget_finished(queue)
            if queue:
                earliest = min(earliest, queue[0][0])
            else:
                del self._queues[timeout]
        return earliest

    def overdue(self, now: float) -> tuple[PendingResponse, float] | None:
        """A request still waiting at ``now`` past its deadline, and its timeout; or None."""
        for timeout, queue in self._queues.items():
            _forget_finished(queue)
            if queue and queue[0][0] <= now:
                return queue[0][1], timeout
        return None

    async def watch(self, on_overdue: OnOverdue) -> None:
        """Sleep until a request is overdue, call ``on_overdue`` with it, and return.

        The connection runs this as a task beside its writer; ``on_overdue`` closes the
        connection. Between requests it wakes at most once per timeout, at a deadline whose
        request was answered meanwhile, to look for the next one.
        """
        while True:
            with trio.CancelScope(deadline=self.next_deadline()) as scope:
                self._scope = scope
                await trio.sleep_forever()
            self._scope = None
            found = self.overdue(trio.current_time())
            if found is not None:
                on_overdue(*found)
                return


def _forget_finished(queue: deque[tuple[float, PendingResponse]]) -> None:
    while queue:
        pending = queue[0][1]
        if not (pending.abandoned or pending.done.is_set()):
            return
        queue.popleft()
