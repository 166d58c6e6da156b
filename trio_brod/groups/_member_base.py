"""What every group member driver shares, whichever group protocol it speaks.

:class:`MemberDriver` keeps the partitions the member owns (as
:class:`~trio_brod.groups._assigned.AssignedPartition` objects), hands new ones to the
application (the ``on_assigned`` listener and the member's async iterator), stops the
workers of revoked or lost ones, commits acknowledged offsets (periodically, on demand and
before a partition is given up), and reports the member's health. The two protocols differ
in how the member learns what it owns and with what it commits: the classic driver
(``_classic_member.py``: JoinGroup/SyncGroup, generations) and the KIP-848 driver
(``_consumer_member.py``: ConsumerGroupHeartbeat, member epochs) subclass it and fill in
:meth:`MemberDriver.run`, :meth:`MemberDriver.leave`, :meth:`MemberDriver.health` and how a
commit is sent (:meth:`MemberDriver.send_commit`).

A loss (the member was evicted or fenced) cancels the lost partitions' workers at once,
from whichever task hears of it (:meth:`MemberDriver.lose_now`); nothing is committed for
them.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

import trio

from trio_brod._backoff import now
from trio_brod._cluster import ConnectionPool, MetadataCache
from trio_brod._config_groups import GroupConfig
from trio_brod._log import group_log as log
from trio_brod.groups._assigned import AssignedPartition, wait_all_finished
from trio_brod.groups._coordinator import GroupCoordinator
from trio_brod.groups._duties import Duty, DutySchedule, Period
from trio_brod.groups._membership import TopicPartition
from trio_brod.groups._types import (
    CommittedOffsets,
    GroupHealth,
    Listener,
    PartitionHealth,
    Topics,
)
from trio_brod.groups.offsets import fetch_committed

__all__ = ["MemberDriver", "next_action"]

T = TypeVar("T")


async def next_action(channel: trio.MemoryReceiveChannel[T]) -> T:
    """The next thing a member's state machine queued: at once if one is queued, else
    when one is.

    ``async for`` over the channel would make each action a task step of its own (a
    receive that finds an item queued still yields to the scheduler), and a join or a
    rebalance queues several in a row. A member's loop of ``next_action`` still
    checkpoints: the state machine queues a finite number of actions per answer, the
    actions that talk to the coordinator are checkpoints, and an empty queue waits.
    """
    try:
        return channel.receive_nowait()
    except trio.WouldBlock:
        return await channel.receive()


class MemberDriver:
    """The protocol-independent half of a group member (see the module docstring)."""

    def __init__(
        self,
        pool: ConnectionPool,
        metadata: MetadataCache,
        group_id: str,
        topics: Topics,
        config: GroupConfig,
        *,
        on_assigned: Listener | None = None,
        on_revoked: Listener | None = None,
        on_lost: Listener | None = None,
        committed_offsets: CommittedOffsets | None = None,
        metadata_refresh: float | None = None,
        iterate: bool = True,
    ) -> None:
        if not isinstance(topics, re.Pattern) and (
            isinstance(topics, str) or not all(isinstance(t, str) and t for t in topics)
        ):
            raise TypeError(f"topics must be a list of names or a re.Pattern, not {topics!r}")
        if config.offset_commit_policy == "consumer_managed" and committed_offsets is None:
            raise ValueError("offset_commit_policy='consumer_managed' needs committed_offsets")
        self.group_id = group_id
        self.config = config
        self.pool = pool
        self.metadata = metadata
        self.topics = topics
        self.coordinator = GroupCoordinator(pool, metadata, group_id)
        self.listeners = (on_assigned, on_revoked, on_lost)
        self.committed_offsets = committed_offsets
        self.refresh = (
            metadata.config.metadata_max_age if metadata_refresh is None else metadata_refresh
        )
        self.iterate = iterate
        self._send_assigned, self._receive_assigned = trio.open_memory_channel[AssignedPartition](
            math.inf
        )
        self.owned: dict[TopicPartition, AssignedPartition] = {}
        self.last_heartbeat: float | None = None
        self.last_ok = now()
        self.reason: str | None = None
        self.failure: BaseException | None = None
        self.left = trio.Event()
        self.stable = trio.Event()

    # -- what the protocol drivers fill in -----------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The member's tasks, until it has left the group."""
        raise NotImplementedError

    async def leave(self, reason: str = "the member is closing") -> None:
        """Give every partition up (with a commit), leave the group, and wait for it."""
        raise NotImplementedError

    def health(self) -> GroupHealth:
        """The member's health report."""
        raise NotImplementedError

    async def send_commit(
        self, partitions: Sequence[AssignedPartition], *, raise_errors: bool
    ) -> None:
        """Commit ``partitions``' positions (each has moved since its last commit) and set
        ``committed`` on those the coordinator took."""
        raise NotImplementedError

    # -- what the application sees -------------------------------------------------------------

    def assignments(self) -> list[AssignedPartition]:
        """The partitions owned now, sorted."""
        return [self.owned[tp] for tp in sorted(self.owned)]

    def __aiter__(self) -> AsyncIterator[AssignedPartition]:
        return self._receive_assigned.__aiter__()

    def close_iteration(self) -> None:
        """No more partitions will be handed out (the member has left)."""
        self._send_assigned.close()

    def partition_health(self) -> dict[TopicPartition, PartitionHealth]:
        """Each owned partition's position, committed offset and lag."""
        partitions = {}
        for tp, assigned in sorted(self.owned.items()):
            done = assigned.position if assigned.position is not None else assigned.committed
            hw = assigned.high_watermark
            lag = None if hw is None or done is None else max(0, hw - done)
            partitions[tp] = PartitionHealth(assigned.position, assigned.committed, lag)
        return partitions

    async def commit(self, partitions: Sequence[AssignedPartition] | None = None) -> None:
        """Commit the acknowledged offsets now (all owned partitions by default), and wait."""
        chosen = self.assignments() if partitions is None else list(partitions)
        await self.commit_some(chosen, raise_errors=True)

    async def commit_one(self, assigned: AssignedPartition) -> None:
        """:meth:`AssignedPartition.commit`'s way in."""
        await self.commit_some([assigned], raise_errors=True)

    async def commit_some(
        self, partitions: Sequence[AssignedPartition], *, raise_errors: bool
    ) -> None:
        """Commit those of ``partitions`` whose position moved since their last commit."""
        moved = self.to_commit(partitions)
        if not moved:
            await trio.lowlevel.checkpoint()
            return
        await self.send_commit(moved, raise_errors=raise_errors)

    def to_commit(self, partitions: Iterable[AssignedPartition]) -> list[AssignedPartition]:
        """Those of ``partitions`` with a position to commit: moved since their last commit,
        not lost, and none with ``offset_commit_policy="consumer_managed"``."""
        if self.config.offset_commit_policy == "consumer_managed":
            return []
        return [
            p
            for p in partitions
            if not p.lost and p.position is not None and p.position != p.committed
        ]

    # -- workers ---------------------------------------------------------------------------------

    def lose_now(self, partitions: Iterable[TopicPartition], owner: int) -> None:
        """Cancel the workers of lost ``partitions`` here and now (nothing is committed)."""
        partitions = sorted(partitions)
        if partitions:
            log.warning(
                "%s: lost %s of generation %d (another member may own them now): "
                "their workers are cancelled and nothing is committed for them",
                self.group_id,
                partitions,
                owner,
            )
        for tp in partitions:
            assigned = self.owned.get(tp)
            if assigned is not None:
                assigned.lose()

    async def stop_workers(
        self,
        partitions: Iterable[TopicPartition],
        *,
        lost: bool,
        owner: int,
        commit_as: tuple[int, str] | None,
    ) -> None:
        """Stop the workers of ``partitions``: cancelled at once if ``lost``, else each
        finishes its message (within ``rebalance_timeout``); then, with ``commit_as``
        (generation or epoch, member id), their offsets are committed as that; then they are
        forgotten and the listener (``on_revoked`` or ``on_lost``) is called."""
        revoked = [self.owned[tp] for tp in sorted(partitions) if tp in self.owned]
        if lost:
            for assigned in revoked:
                assigned.lose()
        else:
            if revoked:
                log.info(
                    "%s: giving up %s of generation %d (rebalance)",
                    self.group_id,
                    [a.topic_partition for a in revoked],
                    owner,
                )
            for assigned in revoked:
                assigned.start_revoke()
        await wait_all_finished(revoked, self.config.rebalance_timeout)  # a checkpoint
        if not lost and commit_as is not None:
            for assigned in revoked:
                assigned.generation_id, assigned.member_id = commit_as
            moved = self.to_commit(revoked)
            if moved:
                await self.send_commit(moved, raise_errors=False)
        for assigned in revoked:
            del self.owned[assigned.topic_partition]
        listener = self.listeners[2] if lost else self.listeners[1]
        if revoked and listener is not None:
            await listener(revoked)

    async def start_workers(
        self, partitions: Iterable[TopicPartition], generation_id: int, member_id: str
    ) -> None:
        """Read the new ``partitions``' committed offsets, then hand them out."""
        chosen = sorted(partitions)
        if self.committed_offsets is not None:
            begin = dict(await self.committed_offsets(chosen))
        else:
            begin = dict(await fetch_committed(self.coordinator, self.group_id, chosen))
        added = []
        for topic, partition in chosen:
            assigned = AssignedPartition(
                topic,
                partition,
                generation_id,
                member_id,
                begin.get((topic, partition)),
                self.commit_one,
            )
            self.owned[topic, partition] = assigned
            added.append(assigned)
        if self.listeners[0] is not None:
            await self.listeners[0](added)
        if self.iterate:
            for assigned in added:
                self._send_assigned.send_nowait(assigned)

    def may_commit_now(self) -> bool:
        """True if the periodic commit should run now."""
        raise NotImplementedError

    # -- periodic duties -------------------------------------------------------------------------

    def duty_periods(self) -> dict[Duty, Period]:
        """The member's periodic duties (see :mod:`~trio_brod.groups._duties`); here the
        commit every ``offset_commit_interval`` (none for ``consumer_managed``)."""
        if self.config.offset_commit_policy == "consumer_managed":
            return {}
        return {Duty.COMMIT: Period(self.config.offset_commit_interval)}

    def start_duty(self, duty: Duty, late: float) -> Callable[[], Awaitable[None]] | None:
        """What ``duty``, due ``late`` seconds ago, has to do now: decided at once (in the
        timer task), and the call returned to be awaited in a task of its own, or None.

        The periodic commit commits what moved, while :meth:`may_commit_now`.
        """
        if duty is Duty.COMMIT and self.may_commit_now():
            moved = self.to_commit(self.assignments())
            if moved:
                return functools.partial(self.commit_some, moved, raise_errors=False)
        return None

    async def run_duties(self, nursery: trio.Nursery) -> None:
        """The member's timer task: sleep until the earliest periodic duty is due, start it.

        A duty with a call to make makes it in a task of its own, started in ``nursery``,
        that lives only while the call is in flight: a heartbeat the coordinator is slow to
        answer, a commit that waits for a coordinator or a metadata read that times out
        holds none of the others back, as when each had a task of its own for good. A
        duty that has nothing to do (no generation to heartbeat in, nothing acknowledged
        to commit) costs no task at all.
        """
        schedule = DutySchedule(now(), self.duty_periods())
        nap = trio.CancelScope()  # the timer task's sleep: a new one each time it sleeps

        async def call_in_task(duty: Duty, call: Callable[[], Awaitable[None]]) -> None:
            try:
                await call()
            finally:
                # The duty is due again, maybe before the timer task meant to wake up.
                nap.deadline = min(nap.deadline, schedule.finish(duty, now()))

        while True:
            nap = trio.CancelScope(deadline=schedule.next_due())
            with nap:
                await trio.sleep_forever()
            at = now()
            for duty, late in schedule.take(at):
                call = self.start_duty(duty, late)
                if call is None:
                    schedule.finish(duty, at)
                else:
                    name = f"trio_brod group {self.group_id} {duty.value}"
                    nursery.start_soon(call_in_task, duty, call, name=name)
