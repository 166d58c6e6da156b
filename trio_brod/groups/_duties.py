"""When a group member's periodic duties are due: the pure schedule of its timer task.

A member does three things on a clock: it heartbeats every ``heartbeat_rate``, commits the
acknowledged offsets every ``offset_commit_interval``, and (the classic member) re-reads the
metadata every ``metadata_refresh``. One task per member sleeps until the earliest of them
is due and starts it (:meth:`~trio_brod.groups._member_base.MemberDriver.run_duties`): a
task per duty, each asleep most of its life, would cost a spawn and task steps per member
for nothing.

What a duty does next is decided here, with no I/O and no clock of its own (the caller
passes the time). A duty is *idle*, due at a time (``math.inf``: never), or *busy*: its
call is in flight. A busy duty is never due again before its call ends, as each duty had
one task and one call at a time before. When the call ends the duty is due again after
its period, counted

* from when the call started (``fixed_rate``, the heartbeat's rule): a heartbeat every
  ``heartbeat_rate`` whatever the answers take, but never two at once, so a slow answer
  makes the next one due when it arrives (late, but not a blocked event loop);
* from when it ended (``fixed_rate=False``, commits and metadata reads): a pause of a full
  period after each.

How late a duty is when taken is how late the timer task woke up, which only a blocked
event loop makes large (the heartbeat's warning).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Duty", "DutySchedule", "Period"]


class Duty(enum.Enum):
    """A member's periodic duties, in the order they are started when due together."""

    HEARTBEAT = "heartbeat"
    COMMIT = "commit"
    TOPICS = "topics"


@dataclass(frozen=True)
class Period:
    """A duty's period and how it is counted (see the module docstring)."""

    seconds: float
    fixed_rate: bool = False


@dataclass
class _Timer:
    period: Period
    due: float
    started: float | None = None  # the busy call's start; None when idle


class DutySchedule:
    """Which duties are due when, and which are in flight (see the module docstring)."""

    def __init__(self, start: float, periods: Mapping[Duty, Period]) -> None:
        """Each duty in ``periods`` is first due one period after ``start``."""
        self._timers = {
            duty: _Timer(periods[duty], start + periods[duty].seconds)
            for duty in Duty
            if duty in periods
        }

    def next_due(self) -> float:
        """When the earliest idle duty is due (``math.inf`` if none is)."""
        return min((t.due for t in self._timers.values() if t.started is None), default=math.inf)

    def busy(self, duty: Duty) -> bool:
        """True while ``duty``'s call is in flight."""
        timer = self._timers.get(duty)
        return timer is not None and timer.started is not None

    def take(self, now: float) -> list[tuple[Duty, float]]:
        """The idle duties due at ``now``, each with how late it is; they are busy now.

        Each must be :meth:`finish`-ed, at once if it has nothing to do after all.
        """
        taken = []
        for duty, timer in self._timers.items():
            if timer.started is None and timer.due <= now:
                taken.append((duty, now - timer.due))
                timer.started = now
        return taken

    def finish(self, duty: Duty, now: float) -> float:
        """``duty``'s call ended at ``now``: it is idle again. Returns when it is due next."""
        timer = self._timers[duty]
        started, timer.started = timer.started, None
        assert started is not None, f"{duty} finished while idle"
        period = timer.period
        if period.fixed_rate:
            timer.due = max(started + period.seconds, now)
        else:
            timer.due = now + period.seconds
        return timer.due
