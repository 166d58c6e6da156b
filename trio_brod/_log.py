"""Logging: one standard :mod:`logging` logger per area, and a guard against floods.

trio-brod logs through the standard library, under the ``trio_brod`` logger, one child per
area, so that an operator can turn each up or down on its own::

    logging.getLogger("trio_brod.connection").setLevel(logging.DEBUG)

==========================  ======================================================
``trio_brod.connection``    connecting, lost connections, re-authentication; each
                            request at DEBUG
``trio_brod.metadata``      leader moves, metadata that could not be had
``trio_brod.producer``      retries, batches given up, new epochs and producer ids
``trio_brod.consumer``      retries, offsets reset after OFFSET_OUT_OF_RANGE
``trio_brod.group``         joins and rebalances with the assignment; lost
                            partitions, evictions, a blocked event loop
==========================  ======================================================

Nothing is printed unless the application configures logging (the ``trio_brod`` logger has
a ``logging.NullHandler``, as libraries should); ``trio-brod --verbose`` does.

Levels: a failure that affects delivery (a connection that failed or was lost, a retry, a
batch given up, a reset offset) is a WARNING naming the broker, topic and partition; a
change of the cluster's shape (a connection made, a leader move, a new epoch) is INFO; each
request is DEBUG; nothing is logged per message above DEBUG, and nothing at all per message
on the hot paths.

A dead broker fails every attempt to reach it, from every worker, for as long as it is
down. :class:`Repeats` logs the first such failure at once, then at most one line per
``interval`` saying how many more there were, and one line when the problem is over: the log
tells what happened without repeating it a thousand times. Each client has one (its
connection pool's, :attr:`~trio_brod._cluster.ConnectionPool.repeats`), shared by its
workers.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable

from trio_brod._backoff import now

__all__ = [
    "Repeats",
    "connection_log",
    "consumer_log",
    "group_log",
    "metadata_log",
    "producer_log",
]

# A library logs; the application decides where to. Without a handler of its own, Python
# would print WARNINGs to stderr through its last-resort handler: this one keeps quiet.
logging.getLogger("trio_brod").addHandler(logging.NullHandler())

connection_log = logging.getLogger("trio_brod.connection")
metadata_log = logging.getLogger("trio_brod.metadata")
producer_log = logging.getLogger("trio_brod.producer")
consumer_log = logging.getLogger("trio_brod.consumer")
group_log = logging.getLogger("trio_brod.group")


class Repeats:
    """Logs a recurring failure once, then how often it recurred, then when it ended.

    Each failure has a key (say ``("connect", host, port)``). The first :meth:`warning` for
    a key is logged; later ones within ``interval`` seconds are only counted; the first after
    that is logged with the count, and counting starts again. :meth:`recovered` logs, at
    INFO, that the failure is over and how many times it happened, and forgets the key; it
    logs nothing for a key that never failed.

    Time is Trio's clock (every caller runs in Trio), so tests under ``MockClock`` drive it.

    Args:
        interval: Seconds between two lines about the same failure.
    """

    __slots__ = ("_seen", "interval")

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        # key -> [when last logged, occurrences since, occurrences in all]
        self._seen: dict[Hashable, list[float]] = {}

    def warning(self, logger: logging.Logger, key: Hashable, message: str, *args: object) -> None:
        """Log ``message % args`` at WARNING, unless the same key was logged recently."""
        if not logger.isEnabledFor(logging.WARNING):
            return
        # Errors as text: a handler may keep the record (pytest's does), and an error's
        # traceback keeps the frames it went through, with what they were sending.
        args = tuple(str(arg) if isinstance(arg, BaseException) else arg for arg in args)
        seen = self._seen.get(key)
        at = now()
        if seen is None:
            self._seen[key] = [at, 0, 1]
            logger.warning(message, *args)
            return
        seen[2] += 1
        if at - seen[0] < self.interval:
            seen[1] += 1
            return
        suppressed = int(seen[1])
        seen[0], seen[1] = at, 0
        if suppressed:
            logger.warning(
                message + " (and %d more times in the last %.0f s)",
                *args,
                suppressed,
                self.interval,
            )
        else:
            logger.warning(message, *args)

    def recovered(self, logger: logging.Logger, key: Hashable, message: str, *args: object) -> None:
        """The failure of ``key`` is over: log ``message % args`` at INFO with the count."""
        seen = self._seen.pop(key, None)
        if seen is not None:
            logger.info(message + " (after %d failures)", *args, int(seen[2]))

    def failing(self, key: Hashable) -> bool:
        """Whether ``key`` failed and has not recovered since."""
        return key in self._seen
