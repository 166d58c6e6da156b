"""The group member: :func:`open_group_member` and :class:`GroupMember`.

:func:`open_group_member` joins a consumer group and keeps the member in it for the block's
duration. :class:`GroupMember` is the same for either group protocol; the work is done by a
driver chosen by ``GroupConfig.group_protocol``:

* ``"classic"``: :class:`~trio_brod.groups._classic_member.ClassicDriver` (JoinGroup,
  SyncGroup, Heartbeat, LeaveGroup; generations; the assignment computed by the group's
  leader), carrying out :class:`~trio_brod.groups._membership.Membership`'s decisions;
* ``"consumer"`` (KIP-848): :class:`~trio_brod.groups._consumer_member.ConsumerDriver`
  (ConsumerGroupHeartbeat; member epochs; the assignment computed by the broker and
  reconciled partition by partition), carrying out
  :class:`~trio_brod.groups._consumer_membership.ConsumerMembership`'s.

Both share :class:`~trio_brod.groups._member_base.MemberDriver`: partitions reach the
application as :class:`~trio_brod.groups._assigned.AssignedPartition` objects, through the
``on_assigned`` listener and the member's async iterator. Each has a cancel scope; a worker
runs inside it (``with assigned:``). Revocation:

* **revoked** (``lost=False``): :attr:`AssignedPartition.revoked` is set, the worker finishes
  the message in hand (within ``rebalance_timeout``, then its scope is cancelled), the
  partitions' acknowledged offsets are committed with the generation (or member epoch) they
  are owned in, if the member may still commit, then ``on_revoked`` is called;
* **lost** (evicted, fenced, the generation is over): the scopes are cancelled at once, as
  soon as the news arrives, whichever task hears it; nothing is committed; then
  ``on_lost``.

Only then does the member go on (JoinGroup, the acknowledgement of a new assignment, or
leaving): no partition is handled by two members at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio

from trio_brod._cluster import ConnectionPool, MetadataCache
from trio_brod._config_groups import GroupConfig
from trio_brod._util import unwrap_single_exception
from trio_brod.groups._assigned import AssignedPartition
from trio_brod.groups._classic_member import ClassicDriver
from trio_brod.groups._consumer_member import ConsumerDriver
from trio_brod.groups._membership import Generation, MemberState
from trio_brod.groups._types import (
    CommittedOffsets,
    GroupClient,
    GroupHealth,
    Listener,
    PartitionHealth,
    Topics,
)

__all__ = [
    "CommittedOffsets",
    "GroupHealth",
    "GroupMember",
    "Listener",
    "PartitionHealth",
    "Topics",
    "open_group_member",
]


class GroupMember:
    """A member of a consumer group; made by :func:`open_group_member`.

    ``async for assigned in member`` gives each newly assigned partition (an
    :class:`~trio_brod.groups._assigned.AssignedPartition`), for a custom consumer to run a
    worker for it inside its cancel scope.

    Attributes:
        group_id: The group.
        config: The group options.
    """

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
        driver = ConsumerDriver if config.group_protocol == "consumer" else ClassicDriver
        self._driver = driver(
            pool,
            metadata,
            group_id,
            topics,
            config,
            on_assigned=on_assigned,
            on_revoked=on_revoked,
            on_lost=on_lost,
            committed_offsets=committed_offsets,
            metadata_refresh=metadata_refresh,
            iterate=iterate,
        )
        self.group_id = group_id
        self.config = config

    def __repr__(self) -> str:
        g = self.generation
        return (
            f"<GroupMember {self.group_id!r} {self.state.value} "
            f"generation={g.generation_id} member_id={g.member_id!r}>"
        )

    @property
    def generation(self) -> Generation:
        """The current generation (id -1 when in none); with the ``consumer`` protocol, the
        member epoch as ``generation_id`` (0 while joining)."""
        return self._driver.generation

    @property
    def state(self) -> MemberState:
        """Where the member is (the ``consumer`` protocol's states mapped onto these)."""
        return self._driver.state

    def assignments(self) -> list[AssignedPartition]:
        """The partitions owned now, sorted."""
        return self._driver.assignments()

    def __aiter__(self) -> AsyncIterator[AssignedPartition]:
        return self._driver.__aiter__()

    async def wait_stable(self) -> None:
        """Wait until the member has completed a rebalance (it may have started another)."""
        await self._driver.stable.wait()

    def health(self) -> GroupHealth:
        """Brod's health check (see :class:`~trio_brod.groups.GroupHealth`)."""
        return self._driver.health()

    async def commit(self, partitions: Sequence[AssignedPartition] | None = None) -> None:
        """Commit the acknowledged offsets now (all owned partitions by default), and wait.

        Nothing is sent with ``offset_commit_policy="consumer_managed"``, nor for
        partitions whose position has not moved since their last commit.

        Raises:
            RebalanceInProgressError: The member is not in a stable generation now (it is
                rebalancing, or the partitions belong to a generation it has left): commit
                again once it is stable. With the ``consumer`` protocol:
                StaleMemberEpochError when the member epoch moved on meanwhile.
            KafkaError: The coordinator refused (IllegalGenerationError,
                UnknownMemberIdError, FencedInstanceIdError, FencedMemberEpochError...); the
                member acts on it.
        """
        await self._driver.commit(partitions)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The member's tasks, until it has left the group (for :func:`open_group_member`).

        Raises:
            KafkaError: A fatal group error (FencedInstanceIdError,
                GroupAuthorizationFailedError, InconsistentGroupProtocolError...), after
                every partition was lost.
        """
        await self._driver.run(task_status=task_status)

    async def leave(self, reason: str = "the member is closing") -> None:
        """Give every partition up (with a commit), leave the group (not a static classic
        member) and wait until the member has left; bounded by ``rebalance_timeout``."""
        await self._driver.leave(reason)


@asynccontextmanager
async def open_group_member(
    client: GroupClient,
    group_id: str,
    topics: Topics,
    *,
    config: GroupConfig | None = None,
    on_assigned: Listener | None = None,
    on_revoked: Listener | None = None,
    on_lost: Listener | None = None,
    committed_offsets: CommittedOffsets | None = None,
    metadata_refresh: float | None = None,
) -> AsyncIterator[GroupMember]:
    """Join a consumer group for the block's duration; the lower-level API below
    :func:`~trio_brod.open_group_subscriber`, for custom consumers.

    ::

        async with open_group_member(client, "billing", ["orders"]) as member:
            async with trio.open_nursery() as nursery:
                async for assigned in member:
                    nursery.start_soon(work, assigned)

        async def work(assigned):
            with assigned:                       # revocation cancels this scope
                ...consume assigned.topic/partition from assigned.begin_offset...
                assigned.ack(offset)             # committed at the next commit

    Args:
        client: An open client (its connection pool and metadata cache are used).
        group_id: The group.
        topics: Topic names, or a compiled regular expression, matched against every
            topic's name at each metadata refresh.
        config: The group options (:class:`~trio_brod.GroupConfig`).
        on_assigned: A rebalance listener (as Java's ``ConsumerRebalanceListener``),
            awaited with the new partitions once their committed offsets are read.
        on_revoked: Awaited with the revoked partitions once their workers stopped and their
            offsets were committed.
        on_lost: Awaited with the lost partitions once their workers were cancelled
            (nothing is committed for them).
        committed_offsets: With ``offset_commit_policy="consumer_managed"``, the callback
            giving each newly assigned partition's starting offset: the next offset to
            consume, or None for ``begin_offset`` (brod's ``get_committed_offset``).
        metadata_refresh: Seconds between metadata checks for new matching topics and
            partition counts (default: the client's ``metadata_max_age``).

    Leaving the block gives every partition up (with a commit), and sends LeaveGroup unless
    the member is static. A fatal group error ends the block with that error (alone, not
    in an exception group).
    """
    member = GroupMember(
        client.pool,
        client.metadata,
        group_id,
        topics,
        config or GroupConfig(),
        on_assigned=on_assigned,
        on_revoked=on_revoked,
        on_lost=on_lost,
        committed_offsets=committed_offsets,
        metadata_refresh=metadata_refresh,
    )
    with unwrap_single_exception():
        async with trio.open_nursery() as nursery:
            await nursery.start(member.run, name=f"trio_brod group member {group_id}")
            try:
                yield member
            finally:
                with trio.CancelScope(shield=True):
                    await member.leave()
                nursery.cancel_scope.cancel()
