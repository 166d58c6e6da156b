"""The classic group protocol's member driver: JoinGroup, SyncGroup, Heartbeat, LeaveGroup.

:class:`ClassicDriver` carries out the decisions of
:class:`~trio_brod.groups._membership.Membership` (a pure state machine), in the tasks of
the member's nursery:

* the **member task** executes the state machine's actions in order: find the coordinator,
  JoinGroup (the subscription of each assignor protocol, the owned partitions and the
  generation for cooperative rebalancing, the member id and the static member's instance
  id), as leader run the assignor over the members' subscriptions and the current partition
  counts, SyncGroup, revoke and assign partitions, LeaveGroup;
* the **timer task** (:meth:`~MemberDriver.run_duties`) sleeps until the earliest periodic
  duty is due and starts it: the heartbeat every ``heartbeat_rate``, the commit of the
  acknowledged offsets every ``offset_commit_interval``, and the **topic watcher** every
  ``metadata_refresh`` seconds, whose metadata read finds new topics matching a regular
  expression, or a subscribed topic that gained partitions, and makes the member join
  again (as the Java client does). Each request goes out from a task of its own that lives
  while it is in flight, so none waits for another (a heartbeat goes on while a commit
  waits for the coordinator), and none waits for a handler or a revocation: a handler that
  takes longer than ``session_timeout`` does not get the member evicted. The timer task
  also notices when the event loop was blocked long enough to delay a heartbeat, and logs
  the delay (``trio_brod.group`` logger).

Revocation (see :mod:`trio_brod.groups.member` for what the application sees): a revoked
partition's worker finishes its message, its offsets are committed with the generation
(only if :meth:`Membership.may_commit` still allows it), then ``on_revoked``; a lost one's
worker is cancelled at once, as soon as the news arrives, whichever task hears it, and
nothing is committed. Only then does the member go on (JoinGroup, or LeaveGroup): no
partition is handled by two members of one generation.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import trio

from trio_brod._backoff import Backoff, now
from trio_brod._cluster import ConnectionPool, MetadataCache
from trio_brod._config_groups import GroupConfig
from trio_brod._exceptions import BrokerConnectionError
from trio_brod._log import group_log as log
from trio_brod._util import ms_up
from trio_brod.groups._assigned import AssignedPartition
from trio_brod.groups._duties import Duty, Period
from trio_brod.groups._member_base import MemberDriver, next_action
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
    GroupHealth,
    Topics,
    group_error,
    resolve_assignor_spec,
)
from trio_brod.groups.offsets import commit_offsets
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

__all__ = ["ClassicDriver"]

#: Heartbeat answers meaning the member was dropped from its generation.
_EVICTED = (IllegalGenerationError, UnknownMemberIdError, FencedInstanceIdError)

#: A heartbeat later than planned by this many seconds means the event loop was blocked.
_BLOCKED_WARNING = 1.0


class ClassicDriver(MemberDriver):
    """A member of a classic consumer group (see the module docstring)."""

    def __init__(
        self,
        pool: ConnectionPool,
        metadata: MetadataCache,
        group_id: str,
        topics: Topics,
        config: GroupConfig,
        **options: Any,
    ) -> None:
        super().__init__(pool, metadata, group_id, topics, config, **options)
        self._assignors: list[Assignor] = [
            resolve_assignor_spec(config.partition_assignment_strategy)
        ]
        self.membership = Membership(self._assignors, group_instance_id=config.group_instance_id)
        self._send_action, self._actions = trio.open_memory_channel[Action](math.inf)
        self._subscribed: tuple[str, ...] = ()
        self._counts: dict[str, int] = {}
        # When _counts were last read for the whole subscription: a leader assigns with
        # them while they are at most metadata_refresh old (see _lead).
        self._counts_at = -math.inf
        self._join_members: list[Any] = []
        self._rejoins = Backoff(config.rejoin_delay, max(config.rejoin_delay, 30.0))

    @property
    def generation(self) -> Generation:
        """The current generation (id -1 when in none)."""
        return self.membership.generation

    @property
    def state(self) -> MemberState:
        """The state machine's state."""
        return self.membership.state

    def health(self) -> GroupHealth:
        """Brod's health check (see :class:`~trio_brod.groups.GroupHealth`)."""
        membership = self.membership
        state = membership.state
        g = membership.generation
        if self.failure is not None or state is MemberState.FAILED:
            name = "failed"
        elif state is MemberState.STABLE and g.generation_id >= 0:
            name = "stable"
        elif state is MemberState.LEFT:
            name = "left"
        elif g.generation_id < 0:
            name = "joining"
        else:
            name = "rebalancing"
        return GroupHealth(
            name,
            self.reason if name != "stable" else None,
            g.generation_id,
            g.member_id,
            frozenset(self.owned),
            self.last_heartbeat,
            self.partition_health(),
        )

    def may_commit_now(self) -> bool:
        """Periodic commits run while the member is in a stable generation."""
        return self.membership.state is MemberState.STABLE

    async def send_commit(
        self, partitions: Sequence[AssignedPartition], *, raise_errors: bool
    ) -> None:
        """Commit with each partition's generation, if :meth:`Membership.may_commit`."""
        by_generation: dict[tuple[int, str], dict[TopicPartition, int]] = {}
        chosen: dict[TopicPartition, AssignedPartition] = {}
        for p in partitions:
            assert p.position is not None
            key = (p.generation_id, p.member_id)
            by_generation.setdefault(key, {})[p.topic_partition] = p.position
            chosen[p.topic_partition] = p
        for (generation_id, member_id), offsets in by_generation.items():
            if not self.membership.may_commit(generation_id, member_id):
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
                    self.coordinator,
                    self.group_id,
                    offsets,
                    generation_id=generation_id,
                    member_id=member_id,
                    group_instance_id=self.config.group_instance_id,
                    retention=self.config.offset_retention,
                )
            except KafkaError as exc:
                self._dispatch(self.membership.on_commit_response(exc, sent))
                if raise_errors:
                    raise
                log.warning("%s: commit failed: %s", self.group_id, exc)
                continue
            except BrokerConnectionError as exc:
                self._dispatch(self.membership.coordinator_lost(str(exc)))
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
                self.lose_now(action.partitions, action.generation.generation_id)
            self._send_action.send_nowait(action)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The member's tasks, until it has left the group (for :func:`open_group_member`).

        Raises:
            KafkaError: A fatal group error (FencedInstanceIdError,
                GroupAuthorizationFailedError, InconsistentGroupProtocolError...), after
                every partition was lost.
        """
        async with trio.open_nursery() as nursery:
            self.coordinator.own_connection()
            nursery.start_soon(
                self.run_duties, nursery, name=f"trio_brod group {self.group_id} timers"
            )
            task_status.started()
            try:
                await self._execute_actions()
            finally:
                self.left.set()
                self.close_iteration()
                self.coordinator.close()
            nursery.cancel_scope.cancel()

    async def leave(self, reason: str = "the member is closing") -> None:
        """Give every partition up (with a commit), send LeaveGroup (not for a static member)
        and wait until the member has left; bounded by ``rebalance_timeout``."""
        self._dispatch(self.membership.leave(reason))
        with trio.move_on_after(self.config.rebalance_timeout + self.config.session_timeout):
            await self.left.wait()

    async def _execute_actions(self) -> None:
        self._dispatch(self.membership.start())
        while True:
            action = await next_action(self._actions)
            if isinstance(action, Left):
                return
            if isinstance(action, Fatal):
                self.failure = action.error
                self.reason = str(action.error)
                raise action.error
            await self._execute(action)

    async def _execute(self, action: Action) -> None:
        m = self.membership
        if isinstance(action, FindCoordinator):
            self.reason = action.reason
            await self._find_coordinator()
            self._dispatch(m.coordinator_found())
        elif isinstance(action, Rejoin):
            self.reason = action.reason
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
            gen = action.generation
            await self.stop_workers(
                action.partitions,
                lost=action.lost,
                owner=gen.generation_id,
                # Committed with the generation the revocation is made in: with cooperative
                # rebalancing that is the new one (the partitions are still this member's
                # until it rejoins), not the one they were first assigned in.
                commit_as=(gen.generation_id, gen.member_id) if action.commit_first else None,
            )
            self._dispatch(m.revoked(action))
        elif isinstance(action, Assign):
            gen = action.generation
            await self.start_workers(action.partitions, gen.generation_id, gen.member_id)
        elif isinstance(action, Stable):
            # Partitions kept through a cooperative rebalance (and those it is about to
            # revoke) are owned in the new generation now: their commits must carry it, as
            # Java's do, or the coordinator (and may_commit) refuses them as stale.
            for assigned in self.owned.values():
                assigned.generation_id = action.generation.generation_id
                assigned.member_id = action.generation.member_id
            self._rejoins.reset()
            self.last_ok = now()
            self.reason = None
            self.stable.set()
            log.info(
                "%s: generation %d, member %s owns %s",
                self.group_id,
                action.generation.generation_id,
                action.generation.member_id,
                sorted(action.partitions),
            )
            observe.rebalanced(
                observe.hooks_of(self.pool), self.group_id, action.generation, action.partitions
            )
        elif isinstance(action, SendLeave):
            await self._send_leave(action)

    async def _find_coordinator(self) -> None:
        backoff = Backoff(0.1, 5.0)
        while True:
            try:
                await self.coordinator.find()
                return
            except (KafkaError, BrokerConnectionError) as exc:
                if not exc.retriable:
                    raise
                log.info("%s: finding the coordinator: %s", self.group_id, exc)
                self.coordinator.mark_dead()
                await backoff.sleep()

    async def _join_topics(self) -> tuple[str, ...]:
        """The topics to name in a JoinGroup.

        A pattern is matched against the cluster's topics as they are now. A list of names
        needs no metadata: the names are the subscription, and only the leader uses
        partition counts (see :meth:`_lead`). The first join fetches them all the same, as
        the baseline :meth:`_check_topics` compares against and the counts a leader
        assigns with, and so does every join until a topic exists. So the immediate rejoin after
        MEMBER_ID_REQUIRED, and each rejoin of a rebalance, cost one request less.
        """
        if isinstance(self.topics, re.Pattern) or not self._counts:
            return await self._subscription_topics()
        return tuple(sorted(set(self.topics)))

    async def _subscription_topics(self) -> tuple[str, ...]:
        if isinstance(self.topics, re.Pattern):
            cluster = await self.metadata.fetch(None, auto_create=False)
            found = {
                name
                for name, t in cluster.topics.items()
                if not t.is_internal and not t.error_code and self.topics.fullmatch(name)
            }
            self._counts = {name: cluster.topics[name].partition_count for name in found}
            self._counts_at = now()
            return tuple(sorted(found))
        topics = tuple(sorted(set(self.topics)))
        self._counts = await self._partition_counts(topics)
        self._counts_at = now()
        return topics

    async def _partition_counts(self, topics: Sequence[str]) -> dict[str, int]:
        if not topics:
            return {}
        cluster = await self.metadata.fetch(list(topics), auto_create=False)
        return {
            name: t.partition_count
            for name, t in cluster.topics.items()
            if not t.error_code and t.partition_count
        }

    async def _join(self, action: SendJoin) -> Sequence[Action]:
        self._subscribed = await self._join_topics()
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
            response = await self.coordinator.request(
                request, timeout=self.config.rebalance_timeout + 5.0
            )
        except BrokerConnectionError as exc:
            return self.membership.coordinator_lost(f"JoinGroup: {exc}")
        except KafkaError as exc:
            return self.membership.on_join_response(exc)
        error = group_error(response.error_code, self.group_id)
        self._join_members = list(response.members) if error is None else []
        if error is None:
            self.last_ok = now()
        return self.membership.on_join_response(
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
            response = await self.coordinator.request(
                request, timeout=self.config.rebalance_timeout + 5.0
            )
        except BrokerConnectionError as exc:
            return self.membership.coordinator_lost(f"SyncGroup: {exc}")
        except KafkaError as exc:
            return self.membership.on_sync_response(exc)
        error = group_error(response.error_code, self.group_id)
        if error is not None:
            return self.membership.on_sync_response(error)
        self.last_ok = now()
        assignment = decode_assignment(response.assignment or b"")
        return self.membership.on_sync_response(
            None,
            assignment=[tp for tp in assignment.partitions if tp[0] in self._subscribed],
            protocol_name=response.protocol_name,
            protocol_type=response.protocol_type,
        )

    async def _lead(self, protocol_name: str | None) -> dict[str, MemberAssignment]:
        """As leader: run the chosen assignor over the members' subscriptions.

        The partition counts are those this member read for its own subscription (its first
        join, then its topic check every ``metadata_refresh`` while the group is stable) if
        they are at most ``metadata_refresh`` old and the other members subscribe to nothing
        else; else they are read afresh. A topic that grew since is what the next topic check
        compares against, and rejoins over: the Java consumer's leader likewise assigns
        with the metadata it has, refreshed every ``metadata.max.age.ms``.
        """
        assignor = next(a for a in self._assignors if a.name == protocol_name)
        subscriptions = {
            m.member_id: replace(
                decode_subscription(m.metadata), group_instance_id=m.group_instance_id
            )
            for m in self._join_members
        }
        topics = sorted({t for s in subscriptions.values() for t in s.topics})
        counts = self._counts
        fresh = now() - self._counts_at <= self.refresh and set(topics) <= set(self._subscribed)
        if not (fresh and all(t in counts for t in topics)):
            counts = await self._partition_counts(topics)
            self._counts.update(counts)
        result = assignor.assign(counts, subscriptions)
        for member_id in subscriptions:
            result.setdefault(member_id, MemberAssignment(()))
        return result

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
                await self.coordinator.request_versioned(LeaveGroupRequest, build)
            except (KafkaError, BrokerConnectionError) as exc:
                log.info("%s: LeaveGroup failed (the session will expire): %s", self.group_id, exc)

    # -- the periodic duties (one timer task, see MemberDriver.run_duties) ---------------------

    def duty_periods(self) -> dict[Duty, Period]:
        """Heartbeats every ``heartbeat_rate`` (counted from each one's start), the periodic
        commit, and the topic watcher every ``metadata_refresh``."""
        periods = super().duty_periods()
        periods[Duty.HEARTBEAT] = Period(self.config.heartbeat_rate, fixed_rate=True)
        periods[Duty.TOPICS] = Period(self.refresh)
        return periods

    def start_duty(self, duty: Duty, late: float) -> Callable[[], Awaitable[None]] | None:
        """A heartbeat (with the late-wakeup warning and the session check), a periodic
        commit, or the topic watcher's metadata read while the member is stable."""
        if duty is Duty.HEARTBEAT:
            if late > _BLOCKED_WARNING:
                log.warning(
                    "%s: heartbeat %.1f s late: the event loop was blocked (a handler that "
                    "does not await?); past session_timeout the member is evicted",
                    self.group_id,
                    late,
                )
            sent = self._heartbeat_due()
            return None if sent is None else functools.partial(self._send_heartbeat, sent)
        if duty is Duty.TOPICS:
            return self._check_topics if self.membership.state is MemberState.STABLE else None
        return super().start_duty(duty, late)

    def _heartbeat_due(self) -> Generation | None:
        """The generation to heartbeat in now, if any; or the session found expired."""
        m = self.membership
        # Even if no heartbeat can be sent (no coordinator): past session_timeout the broker
        # has given the partitions away (brod's #649). A pending JoinGroup is not timed.
        silent = now() - self.last_ok
        joining = m.state is MemberState.PREPARING_REBALANCE
        if silent > self.config.session_timeout and m.generation.valid and not joining:
            log.warning("%s: evicted: no heartbeat answered for %.1f s", self.group_id, silent)
            self._dispatch(m.session_expired())
            return None
        return m.heartbeat()

    async def _send_heartbeat(self, sent: Generation) -> None:
        m = self.membership
        request = HeartbeatRequest(
            group_id=self.group_id,
            generation_id=sent.generation_id,
            member_id=sent.member_id,
            group_instance_id=m.group_instance_id,
        )
        error: KafkaError | None = None
        with trio.move_on_at(self.last_ok + self.config.session_timeout):
            try:
                response = await self.coordinator.request(request)
            except BrokerConnectionError as exc:
                self._dispatch(m.coordinator_lost(f"Heartbeat: {exc}"))
                return
            except KafkaError as exc:
                error = exc
            else:
                error = group_error(response.error_code, self.group_id)
            if error is None:
                self.last_ok = self.last_heartbeat = now()
            elif isinstance(error, _EVICTED) and m.generation == sent:
                gen_id = sent.generation_id
                log.warning("%s: evicted from generation %d: %s", self.group_id, gen_id, error)
            self._dispatch(m.on_heartbeat_response(error, sent))

    async def _check_topics(self) -> None:
        """The topic watcher: rejoin if the subscription's topics or partition counts
        changed since the last look."""
        before = dict(self._counts)
        try:
            topics = await self._subscription_topics()
            if self.membership.is_leader:
                others = sorted(set(before) - set(topics))
                self._counts.update(await self._partition_counts(others))
        except (KafkaError, BrokerConnectionError) as exc:
            log.info("%s: metadata refresh failed: %s", self.group_id, exc)
            return
        if topics != self._subscribed:
            self._dispatch(self.membership.request_rejoin("the subscribed topics changed"))
        elif any(self._counts.get(t, n) != n for t, n in before.items()):
            self._dispatch(self.membership.request_rejoin("a topic gained partitions"))
