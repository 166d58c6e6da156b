"""The group member task: brod's ``brod_group_coordinator`` in Trio form.

:func:`open_group_member` joins a consumer group and keeps the member in it for the block's
duration. The decisions are :class:`~trio_brod.groups._membership.Membership`'s (a pure state
machine); this module carries them out, in three tasks of the member's nursery:

* the **member task** executes the state machine's actions in order: find the coordinator,
  JoinGroup (the subscription of each assignor protocol, the owned partitions and the
  generation for cooperative rebalancing, the member id and the static member's instance
  id), as leader run the assignor over the members' subscriptions and the current partition
  counts, SyncGroup, revoke and assign partitions, LeaveGroup;
* the **heartbeat task** heartbeats every ``heartbeat_rate`` and never waits for a handler or
  a revocation: a handler that takes longer than ``session_timeout`` does not get the member
  evicted. It also notices when the event loop was blocked long enough to delay a heartbeat,
  and logs the delay (``trio_brod.group`` logger);
* the **committer** commits the acknowledged offsets every ``offset_commit_interval``, and
  the **topic watcher** re-reads the metadata every ``metadata_refresh`` seconds: new topics
  matching a regular expression, or a subscribed topic that gained partitions, make the
  member join again (as the Java client does).

Partitions reach the application as :class:`~trio_brod.groups._assigned.AssignedPartition`
objects, through the ``on_assigned`` listener and the member's async iterator. Each has a
cancel scope; a worker runs inside it (``with assigned:``). Revocation:

* **revoked** (``lost=False``): :attr:`AssignedPartition.revoked` is set, the worker finishes
  the message in hand (within ``rebalance_timeout``, then its scope is cancelled), the
  partitions' acknowledged offsets are committed with the generation they were owned in
  (only if :meth:`Membership.may_commit` still allows it), then ``on_revoked`` is called;
* **lost** (evicted, fenced, the generation is over): the scopes are cancelled at once, as
  soon as the news arrives, whichever task hears it; nothing is committed; then
  ``on_lost``.

Only then does the member go on (JoinGroup, or LeaveGroup): no partition is handled by two
members of one generation.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import trio

from trio_brod._backoff import Backoff, now
from trio_brod._cluster import ConnectionPool, MetadataCache
from trio_brod._config import GroupConfig
from trio_brod._exceptions import BrokerConnectionError
from trio_brod._log import group_log as log
from trio_brod._util import ms_up
from trio_brod.groups._assigned import AssignedPartition
from trio_brod.groups._coordinator import GroupCoordinator
from trio_brod.groups._membership import (
    CONSUMER_PROTOCOL_TYPE,
    Action,
    Assign,
    Fatal,
    FindCoordinator,
    Generation,
    Left,
    Membership,
    MemberState,
    Rejoin,
    Revoke,
    SendJoin,
    SendLeave,
    SendSync,
    Stable,
    TopicPartition,
)
from trio_brod.groups._protocol import (
    MemberAssignment,
    MemberSubscription,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)
from trio_brod.groups._types import (
    Assignor,
    CommittedOffsets,
    GroupClient,
    GroupHealth,
    Listener,
    PartitionHealth,
    Topics,
    group_error,
    resolve_assignor_spec,
)
from trio_brod.groups.offsets import commit_offsets, fetch_committed
from trio_brod.observe import _hooks as observe
from trio_brod.protocol import (
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    SyncGroupRequest,
)
from trio_brod.protocol.errors import (
    FencedInstanceIdError,
    IllegalGenerationError,
    KafkaError,
    RebalanceInProgressError,
    UnknownMemberIdError,
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

#: Heartbeat answers meaning the member was dropped from its generation.
_EVICTED = (IllegalGenerationError, UnknownMemberIdError, FencedInstanceIdError)

#: A heartbeat later than planned by this many seconds means the event loop was blocked.
_BLOCKED_WARNING = 1.0


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
        if not isinstance(topics, re.Pattern) and (
            isinstance(topics, str) or not all(isinstance(t, str) and t for t in topics)
        ):
            raise TypeError(f"topics must be a list of names or a re.Pattern, not {topics!r}")
        if config.offset_commit_policy == "consumer_managed" and committed_offsets is None:
            raise ValueError("offset_commit_policy='consumer_managed' needs committed_offsets")
        self.group_id = group_id
        self.config = config
        self._pool = pool
        self._metadata = metadata
        self._topics = topics
        self._assignors: list[Assignor] = [
            resolve_assignor_spec(config.partition_assignment_strategy)
        ]
        self._membership = Membership(self._assignors, group_instance_id=config.group_instance_id)
        self._coordinator = GroupCoordinator(pool, metadata, group_id)
        self._listeners = (on_assigned, on_revoked, on_lost)
        self._committed_offsets = committed_offsets
        self._refresh = (
            metadata.config.metadata_max_age if metadata_refresh is None else (metadata_refresh)
        )
        self._send_action, self._actions = trio.open_memory_channel[Action](math.inf)
        self._iterate = iterate
        self._send_assigned, self._receive_assigned = trio.open_memory_channel[AssignedPartition](
            math.inf
        )
        self._assigned: dict[TopicPartition, AssignedPartition] = {}
        self._subscribed: tuple[str, ...] = ()
        self._counts: dict[str, int] = {}
        self._join_members: list[Any] = []
        self._last_heartbeat: float | None = None
        self._last_ok = now()
        self._reason: str | None = None
        self._failure: BaseException | None = None
        self._left = trio.Event()
        self._stable = trio.Event()
        self._rejoins = Backoff(config.rejoin_delay, max(config.rejoin_delay, 30.0))

    def __repr__(self) -> str:
        g = self._membership.generation
        return (
            f"<GroupMember {self.group_id!r} {self._membership.state.value} "
            f"generation={g.generation_id} member_id={g.member_id!r}>"
        )

    # -- what the application sees -----------------------------------------------------------

    @property
    def generation(self) -> Generation:
        """The current generation (id -1 when in none)."""
        return self._membership.generation

    @property
    def state(self) -> MemberState:
        """The state machine's state."""
        return self._membership.state

    def assignments(self) -> list[AssignedPartition]:
        """The partitions owned now, sorted."""
        return [self._assigned[tp] for tp in sorted(self._assigned)]

    def __aiter__(self) -> AsyncIterator[AssignedPartition]:
        return self._receive_assigned.__aiter__()

    async def wait_stable(self) -> None:
        """Wait until the member has completed a rebalance (it may have started another)."""
        await self._stable.wait()

    def health(self) -> GroupHealth:
        """Brod's health check (see :class:`~trio_brod.groups.GroupHealth`)."""
        membership = self._membership
        state = membership.state
        if self._failure is not None or state is MemberState.FAILED:
            name = "failed"
        elif state is MemberState.STABLE and not self._rejoin_pending():
            name = "stable"
        elif state is MemberState.LEFT:
            name = "left"
        elif membership.generation.generation_id < 0:
            name = "joining"
        else:
            name = "rebalancing"
        partitions = {}
        for tp, assigned in sorted(self._assigned.items()):
            done = assigned.position if assigned.position is not None else assigned.committed
            hw = assigned.high_watermark
            lag = None if hw is None or done is None else max(0, hw - done)
            partitions[tp] = PartitionHealth(assigned.position, assigned.committed, lag)
        g = membership.generation
        return GroupHealth(
            name,
            self._reason if name != "stable" else None,
            g.generation_id,
            g.member_id,
            frozenset(self._assigned),
            self._last_heartbeat,
            partitions,
        )

    def _rejoin_pending(self) -> bool:
        return self._membership.generation.generation_id < 0

    async def commit(self, partitions: Sequence[AssignedPartition] | None = None) -> None:
        """Commit the acknowledged offsets now (all owned partitions by default), and wait.

        Nothing is sent with ``offset_commit_policy="consumer_managed"``, nor for
        partitions whose position has not moved since their last commit.

        Raises:
            RebalanceInProgressError: The member is not in a stable generation now (it is
                rebalancing, or the partitions belong to a generation it has left): commit
                again once it is stable.
            KafkaError: The coordinator refused (IllegalGenerationError,
                UnknownMemberIdError, FencedInstanceIdError...); the member acts on it.
        """
        chosen = self.assignments() if partitions is None else list(partitions)
        await self._commit(chosen, raise_errors=True)

    async def _commit_one(self, assigned: AssignedPartition) -> None:
        await self._commit([assigned], raise_errors=True)

    async def _commit(self, partitions: Sequence[AssignedPartition], *, raise_errors: bool) -> None:
        if self.config.offset_commit_policy == "consumer_managed":
            await trio.lowlevel.checkpoint()
            return
        by_generation: dict[tuple[int, str], dict[TopicPartition, int]] = {}
        chosen: dict[TopicPartition, AssignedPartition] = {}
        for p in partitions:
            if p.lost or p.position is None or p.position == p.committed:
                continue
            by_generation.setdefault((p.generation_id, p.member_id), {})[p.topic_partition] = (
                p.position
            )
            chosen[p.topic_partition] = p
        if not by_generation:
            await trio.lowlevel.checkpoint()
            return
        for (generation_id, member_id), offsets in by_generation.items():
            if not self._membership.may_commit(generation_id, member_id):
                if raise_errors:
                    raise RebalanceInProgressError(
                        "not in a stable generation: commit again once the member is",
                        group_id=self.group_id,
                    )
                log.info("%s: commit skipped: not in generation %d", self.group_id, generation_id)
                continue
            sent = Generation(generation_id, member_id)
            try:
                await commit_offsets(
                    self._coordinator,
                    self.group_id,
                    offsets,
                    generation_id=generation_id,
                    member_id=member_id,
                    group_instance_id=self.config.group_instance_id,
                    retention=self.config.offset_retention,
                )
            except KafkaError as exc:
                self._dispatch(self._membership.on_commit_response(exc, sent))
                if raise_errors:
                    raise
                log.warning("%s: commit failed: %s", self.group_id, exc)
                continue
            except BrokerConnectionError as exc:
                self._dispatch(self._membership.coordinator_lost(str(exc)))
                if raise_errors:
                    raise
                log.warning("%s: commit failed: %s", self.group_id, exc)
                continue
            for tp, offset in offsets.items():
                chosen[tp].committed = offset

    # -- running -------------------------------------------------------------------------------

    def _dispatch(self, actions: Sequence[Action]) -> None:
        """Queue actions for the member task; a loss cancels the workers here and now."""
        for action in actions:
            if isinstance(action, Revoke) and action.lost:
                if action.partitions:
                    log.warning(
                        "%s: lost %s of generation %d (another member may own them now): "
                        "their workers are cancelled and nothing is committed for them",
                        self.group_id,
                        sorted(action.partitions),
                        action.generation.generation_id,
                    )
                for tp in action.partitions:
                    assigned = self._assigned.get(tp)
                    if assigned is not None:
                        assigned.lose()
            self._send_action.send_nowait(action)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The member's tasks, until it has left the group (for :func:`open_group_member`).

        Raises:
            KafkaError: A fatal group error (FencedInstanceIdError,
                GroupAuthorizationFailedError, InconsistentGroupProtocolError...), after
                every partition was lost.
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._heartbeats, name=f"trio_brod group {self.group_id} heartbeat")
            nursery.start_soon(self._committer, name=f"trio_brod group {self.group_id} commits")
            nursery.start_soon(self._watch_topics, name=f"trio_brod group {self.group_id} topics")
            task_status.started()
            try:
                await self._execute_actions()
            finally:
                self._left.set()
                self._send_assigned.close()
            nursery.cancel_scope.cancel()

    async def leave(self, reason: str = "the member is closing") -> None:
        """Give every partition up (with a commit), send LeaveGroup (not for a static member)
        and wait until the member has left; bounded by ``rebalance_timeout``."""
        self._dispatch(self._membership.leave(reason))
        with trio.move_on_after(self.config.rebalance_timeout + self.config.session_timeout):
            await self._left.wait()

    async def _execute_actions(self) -> None:
        self._dispatch(self._membership.start())
        async for action in self._actions:
            if isinstance(action, Left):
                return
            if isinstance(action, Fatal):
                self._failure = action.error
                self._reason = str(action.error)
                raise action.error
            await self._execute(action)

    async def _execute(self, action: Action) -> None:
        m = self._membership
        if isinstance(action, FindCoordinator):
            self._reason = action.reason
            await self._find_coordinator()
            self._dispatch(m.coordinator_found())
        elif isinstance(action, Rejoin):
            self._reason = action.reason
            log.info("%s: joining the group: %s", self.group_id, action.reason)
            if action.after_backoff:
                if self._rejoins.failures >= self.config.max_rejoin_attempts:
                    raise KafkaError(
                        f"gave up joining after {self._rejoins.failures} attempts: {action.reason}",
                        group_id=self.group_id,
                    )
                await self._rejoins.sleep()
            self._dispatch(m.join())
        elif isinstance(action, SendJoin):
            self._dispatch(await self._join(action))
        elif isinstance(action, SendSync):
            self._dispatch(await self._sync(action))
        elif isinstance(action, Revoke):
            await self._revoke(action)
            self._dispatch(m.revoked(action))
        elif isinstance(action, Assign):
            await self._assign(action)
        elif isinstance(action, Stable):
            # Partitions kept through a cooperative rebalance (and those it is about to
            # revoke) are owned in the new generation now: their commits must carry it, as
            # Java's do, or the coordinator (and may_commit) refuses them as stale.
            for assigned in self._assigned.values():
                assigned.generation_id = action.generation.generation_id
                assigned.member_id = action.generation.member_id
            self._rejoins.reset()
            self._last_ok = now()
            self._reason = None
            self._stable.set()
            log.info(
                "%s: generation %d, member %s owns %s",
                self.group_id,
                action.generation.generation_id,
                action.generation.member_id,
                sorted(action.partitions),
            )
            observe.rebalanced(self.group_id, action.generation, action.partitions)
        elif isinstance(action, SendLeave):
            await self._send_leave(action)

    async def _find_coordinator(self) -> None:
        backoff = Backoff(0.1, 5.0)
        while True:
            try:
                await self._coordinator.find()
                return
            except (KafkaError, BrokerConnectionError) as exc:
                if not exc.retriable:
                    raise
                log.info("%s: finding the coordinator: %s", self.group_id, exc)
                self._coordinator.mark_dead()
                await backoff.sleep()

    async def _subscription_topics(self) -> tuple[str, ...]:
        if isinstance(self._topics, re.Pattern):
            cluster = await self._metadata.fetch(None, auto_create=False)
            found = {
                name
                for name, t in cluster.topics.items()
                if not t.is_internal and not t.error_code and self._topics.fullmatch(name)
            }
            self._counts = {name: cluster.topics[name].partition_count for name in found}
            return tuple(sorted(found))
        topics = tuple(sorted(set(self._topics)))
        self._counts = await self._partition_counts(topics)
        return topics

    async def _partition_counts(self, topics: Sequence[str]) -> dict[str, int]:
        if not topics:
            return {}
        cluster = await self._metadata.fetch(list(topics), auto_create=False)
        return {
            name: t.partition_count
            for name, t in cluster.topics.items()
            if not t.error_code and t.partition_count
        }

    async def _join(self, action: SendJoin) -> Sequence[Action]:
        self._subscribed = await self._subscription_topics()
        owned = tuple(sorted(action.owned_partitions))
        protocols = [
            JoinGroupRequest.JoinGroupRequestProtocol(
                name=assignor.name,
                metadata=encode_subscription(
                    MemberSubscription(
                        self._subscribed,
                        assignor.subscription_user_data(self._subscribed, owned),
                        owned,
                        action.generation_id,
                    )
                ),
            )
            for assignor in self._assignors
        ]
        request = JoinGroupRequest(
            group_id=self.group_id,
            session_timeout_ms=ms_up(self.config.session_timeout),
            rebalance_timeout_ms=ms_up(self.config.rebalance_timeout),
            member_id=action.member_id,
            group_instance_id=action.group_instance_id,
            protocol_type=CONSUMER_PROTOCOL_TYPE,
            protocols=protocols,
            reason=action.reason,
        )
        try:
            response = await self._coordinator.request(
                request, timeout=self.config.rebalance_timeout + 5.0
            )
        except BrokerConnectionError as exc:
            return self._membership.coordinator_lost(f"JoinGroup: {exc}")
        except KafkaError as exc:
            return self._membership.on_join_response(exc)
        error = group_error(response.error_code, self.group_id)
        self._join_members = list(response.members) if error is None else []
        if error is None:
            self._last_ok = now()
        return self._membership.on_join_response(
            error,
            generation_id=response.generation_id,
            member_id=response.member_id,
            leader_id=response.leader,
            protocol_name=response.protocol_name,
            protocol_type=response.protocol_type,
            skip_assignment=bool(response.skip_assignment),
        )

    async def _sync(self, action: SendSync) -> Sequence[Action]:
        gen = action.generation
        assignments = []
        if action.as_leader and not action.skip_assignment:
            result = await self._lead(gen.protocol_name)
            assignments = [
                SyncGroupRequest.SyncGroupRequestAssignment(
                    member_id=member_id, assignment=encode_assignment(assignment)
                )
                for member_id, assignment in result.items()
            ]
        self._join_members = []
        request = SyncGroupRequest(
            group_id=self.group_id,
            generation_id=gen.generation_id,
            member_id=gen.member_id,
            group_instance_id=action.group_instance_id,
            protocol_type=CONSUMER_PROTOCOL_TYPE,
            protocol_name=gen.protocol_name,
            assignments=assignments,
        )
        try:
            response = await self._coordinator.request(
                request, timeout=self.config.rebalance_timeout + 5.0
            )
        except BrokerConnectionError as exc:
            return self._membership.coordinator_lost(f"SyncGroup: {exc}")
        except KafkaError as exc:
            return self._membership.on_sync_response(exc)
        error = group_error(response.error_code, self.group_id)
        if error is not None:
            return self._membership.on_sync_response(error)
        self._last_ok = now()
        assignment = decode_assignment(response.assignment or b"")
        return self._membership.on_sync_response(
            None,
            assignment=[tp for tp in assignment.partitions if tp[0] in self._subscribed],
            protocol_name=response.protocol_name,
            protocol_type=response.protocol_type,
        )

    async def _lead(self, protocol_name: str | None) -> dict[str, MemberAssignment]:
        """As leader: run the chosen assignor over the members' subscriptions."""
        assignor = next(a for a in self._assignors if a.name == protocol_name)
        subscriptions = {
            m.member_id: replace(
                decode_subscription(m.metadata), group_instance_id=m.group_instance_id
            )
            for m in self._join_members
        }
        topics = sorted({t for s in subscriptions.values() for t in s.topics})
        counts = await self._partition_counts(topics)
        self._counts.update(counts)
        result = assignor.assign(counts, subscriptions)
        for member_id in subscriptions:
            result.setdefault(member_id, MemberAssignment(()))
        return result

    async def _revoke(self, action: Revoke) -> None:
        revoked = [self._assigned[tp] for tp in sorted(action.partitions) if tp in self._assigned]
        if action.lost:
            for assigned in revoked:
                assigned.lose()
        else:
            if revoked:
                log.info(
                    "%s: giving up %s of generation %d (rebalance)",
                    self.group_id,
                    [a.topic_partition for a in revoked],
                    action.generation.generation_id,
                )
            for assigned in revoked:
                assigned.start_revoke()
        async with trio.open_nursery() as nursery:
            for assigned in revoked:
                nursery.start_soon(assigned.wait_finished, self.config.rebalance_timeout)
        if not action.lost and action.commit_first:
            # Committed with the generation the revocation is made in: with cooperative
            # rebalancing that is the new one (the partitions are still this member's until
            # it rejoins), not the one they were first assigned in.
            for assigned in revoked:
                assigned.generation_id = action.generation.generation_id
                assigned.member_id = action.generation.member_id
            await self._commit(revoked, raise_errors=False)
        for assigned in revoked:
            del self._assigned[assigned.topic_partition]
        listener = self._listeners[2] if action.lost else self._listeners[1]
        if revoked and listener is not None:
            await listener(revoked)

    async def _assign(self, action: Assign) -> None:
        gen = action.generation
        partitions = sorted(action.partitions)
        if self._committed_offsets is not None:
            begin = dict(await self._committed_offsets(partitions))
        else:
            begin = dict(await fetch_committed(self._coordinator, self.group_id, partitions))
        added = []
        for topic, partition in partitions:
            assigned = AssignedPartition(
                topic,
                partition,
                gen.generation_id,
                gen.member_id,
                begin.get((topic, partition)),
                self._commit_one,
            )
            self._assigned[topic, partition] = assigned
            added.append(assigned)
        if self._listeners[0] is not None:
            await self._listeners[0](added)
        if self._iterate:
            for assigned in added:
                self._send_assigned.send_nowait(assigned)

    async def _send_leave(self, action: SendLeave) -> None:
        def build(version: int) -> LeaveGroupRequest:
            if version < 3:  # one member id; v3+ a list of members (KIP-345)
                return LeaveGroupRequest(group_id=self.group_id, member_id=action.member_id)
            identity = LeaveGroupRequest.MemberIdentity(
                member_id=action.member_id,
                group_instance_id=action.group_instance_id,
                reason=action.reason,
            )
            return LeaveGroupRequest(group_id=self.group_id, members=[identity])

        with trio.move_on_after(self.config.session_timeout):
            try:
                await self._coordinator.request_versioned(LeaveGroupRequest, build)
            except (KafkaError, BrokerConnectionError) as exc:
                log.info("%s: LeaveGroup failed (the session will expire): %s", self.group_id, exc)

    # -- the background tasks ---------------------------------------------------------------

    async def _heartbeats(self) -> None:
        rate = self.config.heartbeat_rate
        planned = now() + rate
        while True:
            await trio.sleep_until(planned)
            late = now() - planned
            if late > _BLOCKED_WARNING:
                log.warning(
                    "%s: heartbeat %.1f s late: the event loop was blocked (a handler that "
                    "does not await?); past session_timeout the member is evicted",
                    self.group_id,
                    late,
                )
            planned = now() + rate
            await self._heartbeat_once()
            planned = max(planned, now())  # a slow answer is not a blocked event loop

    async def _heartbeat_once(self) -> None:
        m = self._membership
        # Even if no heartbeat can be sent (no coordinator): past session_timeout the broker
        # has given the partitions away (brod's #649). A pending JoinGroup is not timed.
        silent = now() - self._last_ok
        joining = m.state is MemberState.PREPARING_REBALANCE
        if silent > self.config.session_timeout and m.generation.valid and not joining:
            log.warning("%s: evicted: no heartbeat answered for %.1f s", self.group_id, silent)
            self._dispatch(m.session_expired())
            return
        sent = m.heartbeat()
        if sent is None:
            return
        request = HeartbeatRequest(
            group_id=self.group_id,
            generation_id=sent.generation_id,
            member_id=sent.member_id,
            group_instance_id=m.group_instance_id,
        )
        error: KafkaError | None = None
        with trio.move_on_at(self._last_ok + self.config.session_timeout):
            try:
                response = await self._coordinator.request(request)
            except BrokerConnectionError as exc:
                self._dispatch(m.coordinator_lost(f"Heartbeat: {exc}"))
                return
            except KafkaError as exc:
                error = exc
            else:
                error = group_error(response.error_code, self.group_id)
            if error is None:
                self._last_ok = self._last_heartbeat = now()
            elif isinstance(error, _EVICTED) and m.generation == sent:
                gen_id = sent.generation_id
                log.warning("%s: evicted from generation %d: %s", self.group_id, gen_id, error)
            self._dispatch(m.on_heartbeat_response(error, sent))

    async def _committer(self) -> None:
        while True:
            await trio.sleep(self.config.offset_commit_interval)
            if self._membership.state is MemberState.STABLE:
                await self._commit(self.assignments(), raise_errors=False)

    async def _watch_topics(self) -> None:
        while True:
            await trio.sleep(self._refresh)
            if self._membership.state is not MemberState.STABLE:
                continue
            before = dict(self._counts)
            try:
                topics = await self._subscription_topics()
                if self._membership.is_leader:
                    others = sorted(set(before) - set(topics))
                    self._counts.update(await self._partition_counts(others))
            except (KafkaError, BrokerConnectionError) as exc:
                log.info("%s: metadata refresh failed: %s", self.group_id, exc)
                continue
            if topics != self._subscribed:
                self._dispatch(self._membership.request_rejoin("the subscribed topics changed"))
            elif any(self._counts.get(t, n) != n for t, n in before.items()):
                self._dispatch(self._membership.request_rejoin("a topic gained partitions"))


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
    the member is static. A fatal group error ends the block with that error.
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
    async with trio.open_nursery() as nursery:
        await nursery.start(member.run, name=f"trio_brod group member {group_id}")
        try:
            yield member
        finally:
            with trio.CancelScope(shield=True):
                await member.leave()
            nursery.cancel_scope.cancel()
