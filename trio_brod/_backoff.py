"""Backoff and bounded retries on Trio's clock: the one place that decides how long to wait.

Every retry loop in trio-brod (a metadata refresh while a leader is elected, a coordinator
lookup, a produce retry, a consumer's reconnect, an admin call after NOT_CONTROLLER) waits
through a :class:`Backoff`, and every loop bounded by a timeout keeps a :class:`Retry`. Two
things follow from having one helper rather than a doubling loop written out in each place:

* all of them read :func:`trio.current_time`, never :func:`time.monotonic`, so a test under
  ``trio.testing.MockClock(autojump_threshold=0)`` runs a 30-second metadata retry or a
  reconnect cool-down in no wall time at all;
* all of them add jitter, so that the hundreds of partition workers that lost the same broker
  at the same moment do not all come back at the same moment too.
"""

from __future__ import annotations

import math
import random

import trio

__all__ = ["Backoff", "Retry", "now"]

#: How far a delay may stray from its nominal value, as a fraction (0.2: 0.8x to 1.2x).
DEFAULT_JITTER = 0.2
#: Where jitter comes from unless a test passes its own. One for all: a Random holds 2.5 KB
#: of state, and a client has a Backoff per partition worker.
_SHARED_RNG = random.Random()


def now() -> float:
    """Trio's clock: what every deadline and cool-down in trio-brod is measured on."""
    return trio.current_time()


class Backoff:
    """Exponential backoff with jitter, capped: ``base * 2**n``, then 1 +- ``jitter`` times that.

    ``next_delay()`` counts a failure and says how long to wait before the next attempt;
    ``reset()`` after a success starts again from ``base``. The object holds no timer, so a
    worker can keep one for its whole life.

    Args:
        base: The first delay, in seconds.
        cap: The longest delay (before jitter is applied; jitter never exceeds ``cap``).
        jitter: The spread, as a fraction of the delay (0 for none).
        rng: Where jitter comes from; tests pass a seeded :class:`random.Random`. By default
            every Backoff shares one.
    """

    __slots__ = ("_rng", "base", "cap", "failures", "jitter")

    def __init__(
        self,
        base: float,
        cap: float,
        *,
        jitter: float = DEFAULT_JITTER,
        rng: random.Random | None = None,
    ) -> None:
        if base < 0 or cap < 0 or not 0 <= jitter < 1:
            raise ValueError(f"Backoff(base={base}, cap={cap}, jitter={jitter}): out of range")
        self.base = base
        self.cap = cap
        self.jitter = jitter
        #: Failures since the last reset.
        self.failures = 0
        self._rng = rng or _SHARED_RNG

    def next_delay(self) -> float:
        """Count one failure; return the seconds to wait before trying again."""
        nominal = min(self.cap, self.base * 2.0 ** min(self.failures, 60))
        self.failures += 1
        if self.jitter:
            nominal *= 1.0 + self.jitter * (2.0 * self._rng.random() - 1.0)
        return min(nominal, self.cap)

    def reset(self) -> None:
        """A success: the next failure waits ``base`` again."""
        self.failures = 0

    async def sleep(self) -> None:
        """Count a failure and sleep for its delay (on Trio's clock)."""
        await trio.sleep(self.next_delay())


class Retry:
    """A retry loop bounded by a deadline: a :class:`Backoff` plus when to give up.

    The shape every bounded retry in trio-brod takes::

        retry = Retry(config.get_metadata_timeout)
        while True:
            ...try once; return on success...
            if not error.retriable or retry.expired:
                raise error
            await retry.wait()

    :meth:`wait` never sleeps past the deadline, so the last attempt happens right at it
    rather than a backoff after it.

    Args:
        within: Seconds from now until the loop gives up (``math.inf`` for never).
        base, cap, jitter: As for :class:`Backoff`. The defaults (50 ms doubling to 1 s)
            suit waiting for a cluster's own transitions: an election, a topic being
            created, a coordinator loading its log.
    """

    __slots__ = ("backoff", "deadline")

    def __init__(
        self,
        within: float,
        *,
        base: float = 0.05,
        cap: float = 1.0,
        jitter: float = DEFAULT_JITTER,
    ) -> None:
        self.deadline = now() + within if math.isfinite(within) else math.inf
        self.backoff = Backoff(base, cap, jitter=jitter)

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed: the caller should give up."""
        return now() >= self.deadline

    def remaining(self) -> float:
        """Seconds until the deadline (0 once it passed)."""
        return max(0.0, self.deadline - now())

    def would_expire(self, delay: float) -> bool:
        """Whether waiting ``delay`` seconds more would take the loop past its deadline."""
        return now() + delay > self.deadline

    async def wait(self) -> None:
        """Sleep for the next backoff delay, but not past the deadline."""
        await trio.sleep(min(self.backoff.next_delay(), self.remaining()))
