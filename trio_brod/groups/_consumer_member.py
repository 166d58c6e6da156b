"""The KIP-848 ``consumer`` group protocol's member driver: ConsumerGroupHeartbeat.

:class:`ConsumerDriver` carries out the decisions of
:class:`~trio_brod.groups._consumer_membership.ConsumerMembership` (the pure state machine),
in three tasks of the member's nursery:

* the **heartbeat task** sends ConsumerGroupHeartbeat every heartbeat interval (the one the
  broker gives in each answer), at once when the state machine asks (to acknowledge a
  reconciliation, to rejoin after a fencing, to leave), and sooner after a failure (with
  :class:`~trio_brod._backoff.Backoff`). It turns the answer's topic ids into names (the
  metadata maps them) and hands the answer to the state machine; a fencing it hears of
  cancels the lost workers at once, before anything else;
* the **member task** carries out the reconciliation steps in order: stop the workers of
  revoked partitions and commit their offsets with the member epoch, then start workers for
  the new ones (their committed offsets read first);
* the **timer task** (:meth:`~MemberDriver.run_duties`) commits acknowledged offsets every
  ``offset_commit_interval`` with the member epoch (OffsetCommit v9+), each commit in a task
  of its own while it is in flight. A commit answered STALE_MEMBER_EPOCH or
  FENCED_MEMBER_EPOCH is not done (the positions stay uncommitted); the second fences the
  member. The heartbeat keeps a task of its own: its interval is the broker's, the state
  machine can ask for one at once, and its answer may wait for a metadata read.

A broker without the protocol (Kafka before 4.0, or 4.x with
``group.coordinator.rebalance.protocols`` lacking ``consumer``) does not list
ConsumerGroupHeartbeat in its ApiVersions, or answers it UNSUPPORTED_VERSION: the member
fails at once with an error that says to use ``group_protocol="classic"``.

The broker resolves a regular expression subscription itself (``SubscribedTopicRegex``,
RE2/J syntax: Python's ``re`` syntax agrees on the common subset), and it follows new
topics and partitions: there is no topic watcher. While the coordinator cannot be reached,
the member keeps its partitions: if the broker has fenced it meanwhile, the first answer
says so, and nothing it committed meanwhile counted (the epoch was stale).
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import trio

from trio_brod._backoff import Backoff, Retry, now
from trio_brod._cluster import ConnectionPool, MetadataCache
from trio_brod._config_groups import GroupConfig
from trio_brod._exceptions import BrokerConnectionError, UnsupportedVersion
from trio_brod._log import group_log as log
from trio_brod._util import ms_up
from trio_brod.groups._assigned import AssignedPartition
from trio_brod.groups._consumer_membership import (
    Action,
    Assign,
    ConsumerMembership,
    ConsumerState,
    Fatal,
    Heartbeat,
    HeartbeatNow,
    Left,
    Revoke,
    TopicPartition,
)
from trio_brod.groups._member_base import MemberDriver, next_action
from trio_brod.groups._membership import Generation, MemberState
from trio_brod.groups._types import GroupHealth, Topics, group_error
from trio_brod.groups.offsets import commit_offsets
from trio_brod.observe import _hooks as observe
from trio_brod.protocol import ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse
from trio_brod.protocol.errors import (
    CoordinatorNotAvailableError,
    FencedMemberEpochError,
    KafkaError,
    RebalanceInProgressError,
    UnknownMemberIdError,
    UnsupportedVersionError,
)

__all__ = ["ConsumerDriver", "ConsumerProtocolUnsupportedError"]

#: The highest ConsumerGroupHeartbeat version spoken: v1 carries SubscribedTopicRegex, and
#: Kafka 4.0+ takes it (and wants the member id made by the client, KIP-1082).
_HEARTBEAT_VERSION = 1

_STATES = {
    ConsumerState.JOINING: MemberState.PREPARING_REBALANCE,
    ConsumerState.RECONCILING: MemberState.COMPLETING_REBALANCE,
    ConsumerState.STABLE: MemberState.STABLE,
    ConsumerState.FENCED: MemberState.UNJOINED,
    ConsumerState.LEAVING: MemberState.UNJOINED,
    ConsumerState.LEFT: MemberState.LEFT,
    ConsumerState.FAILED: MemberState.FAILED,
}
_HEALTH = {
    ConsumerState.JOINING: "joining",
    ConsumerState.FENCED: "joining",
    ConsumerState.RECONCILING: "rebalancing",
    ConsumerState.LEAVING: "rebalancing",
    ConsumerState.STABLE: "stable",
    ConsumerState.LEFT: "left",
    ConsumerState.FAILED: "failed",
}


class ConsumerProtocolUnsupportedError(UnsupportedVersionError):
    """The broker does not run the KIP-848 ``consumer`` group protocol: Kafka before 4.0, or
    ``group.coordinator.rebalance.protocols`` without ``consumer``. Use
    ``GroupConfig(group_protocol="classic")``."""


class ConsumerDriver(MemberDriver):
    """A member of a KIP-848 consumer group (see the module docstring)."""

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
        if isinstance(topics, re.Pattern):
            names, regex = None, topics.pattern
        else:
            names, regex = tuple(sorted(set(topics))), None
        self.membership = ConsumerMembership(
            str(uuid.uuid4()),
            topics=names,
            regex=regex,
            instance_id=config.group_instance_id,
            server_assignor=config.remote_assignor,
            rebalance_timeout_ms=ms_up(config.rebalance_timeout),
        )
        self._send_action, self._actions = trio.open_memory_channel[Action](math.inf)
        self._poke = trio.Event()
        self._names: dict[uuid.UUID, str] = {}
        self._ids: dict[str, uuid.UUID] = {}

    # -- what the facade reads -------------------------------------------------------------------

    @property
    def generation(self) -> Generation:
        """The member epoch as a generation id (-1 while not in the group)."""
        m = self.membership
        epoch = m.member_epoch if m.member_epoch > 0 else -1
        return Generation(epoch, m.member_id)

    @property
    def state(self) -> MemberState:
        """The state machine's state, as the classic member's states."""
        return _STATES[self.membership.state]

    def health(self) -> GroupHealth:
        """Brod's health check; ``generation_id`` is the member epoch."""
        name = "failed" if self.failure is not None else _HEALTH[self.membership.state]
        g = self.generation
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
        """Periodic commits run while the member is in the group."""
        return self.membership.may_commit(self.membership.member_epoch)

    # -- commits ---------------------------------------------------------------------------------

    async def send_commit(
        self, partitions: Sequence[AssignedPartition], *, raise_errors: bool
    ) -> None:
        """Commit with the current member epoch (OffsetCommit v9+), if the member may."""
        m = self.membership
        epoch, member_id = m.member_epoch, m.member_id
        if not m.may_commit(epoch):
            if raise_errors:
                raise RebalanceInProgressError(
                    "not in the group now (joining, fenced or leaving): commit again once "
                    "the member is",
                    group_id=self.group_id,
                )
            log.info("%s: commit skipped: not in the group (epoch %d)", self.group_id, epoch)
            await trio.lowlevel.checkpoint()
            return
        offsets: dict[TopicPartition, int] = {}
        for p in partitions:
            assert p.position is not None
            offsets[p.topic_partition] = p.position
        try:
            await commit_offsets(
                self.coordinator,
                self.group_id,
                offsets,
                generation_id=epoch,
                member_id=member_id,
                group_instance_id=self.config.group_instance_id,
                member_epoch=True,
            )
        except (KafkaError, BrokerConnectionError) as exc:
            if isinstance(exc, KafkaError):
                self._dispatch(m.on_commit_response(exc, epoch))
            if raise_errors:
                raise
            log.warning("%s: commit with epoch %d failed: %s", self.group_id, epoch, exc)
            return
        for p in partitions:
            p.committed = offsets[p.topic_partition]

    # -- running ---------------------------------------------------------------------------------

    def _dispatch(self, actions: Iterable[Action]) -> None:
        """Queue actions for the member task; a loss cancels the workers here and now."""
        for action in actions:
            if isinstance(action, Revoke) and action.lost:
                self.lose_now(action.partitions, action.epoch)
            if isinstance(action, HeartbeatNow):
                self._poke.set()
            self._send_action.send_nowait(action)
        if self.membership.state is ConsumerState.STABLE:
            self.reason = None
            self.stable.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The member's tasks, until it has left the group.

        Raises:
            ConsumerProtocolUnsupportedError: The broker lacks the ``consumer`` protocol.
            KafkaError: A fatal group error (UnreleasedInstanceIdError,
                GroupAuthorizationFailedError, UnsupportedAssignorError...), after every
                partition was lost.
        """
        async with trio.open_nursery() as nursery:
            self.coordinator.own_connection()
            nursery.start_soon(self._heartbeats, name=f"trio_brod group {self.group_id} heartbeat")
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
        """Give every partition up (with a commit), send the leaving heartbeat (epoch -1, or
        -2 for a static member) and wait until the member has left."""
        log.info("%s: leaving: %s", self.group_id, reason)
        self._dispatch(self.membership.leave())
        self._poke.set()
        timeout = self.config.rebalance_timeout + self.metadata.config.request_timeout
        with trio.move_on_after(timeout):
            await self.left.wait()

    async def _execute_actions(self) -> None:
        reconciling_since: float | None = None  # for the rebalance duration (observe)
        while True:
            action = await next_action(self._actions)
            m = self.membership
            if isinstance(action, Left):
                return
            if isinstance(action, Fatal):
                self.failure = action.error
                self.reason = str(action.error)
                raise action.error
            if reconciling_since is None and isinstance(action, (Revoke, Assign)):
                reconciling_since = time.perf_counter()
            if isinstance(action, Revoke):
                await self.stop_workers(
                    action.partitions,
                    lost=action.lost,
                    owner=action.epoch,
                    commit_as=None if action.lost else (m.member_epoch, m.member_id),
                )
                self._dispatch(m.revoked(action))
            elif isinstance(action, Assign):
                await self.start_workers(action.partitions, action.epoch, m.member_id)
                self._dispatch(m.assigned(action))
                log.info(
                    "%s: epoch %d, member %s owns %s",
                    self.group_id,
                    m.member_epoch,
                    m.member_id,
                    sorted(self.owned),
                )
                # The member epoch stands in for the generation (KIP-848 has none); the
                # duration counts from the first step of this reconciliation.
                observe.rebalanced(
                    observe.hooks_of(self.pool),
                    self.group_id,
                    Generation(m.member_epoch, m.member_id),
                    self.owned,
                    reconciling_since,
                )
                reconciling_since = None

    # -- heartbeats ------------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        failures = Backoff(0.1, 2.0)
        while True:
            ok = await self._heartbeat_once()
            # The interval of the answer just read (the broker's; a default before).
            interval = self.membership.heartbeat_interval
            if ok:
                failures.reset()
                # Until the interval is over, or the state machine wants one now.
                with trio.move_on_after(interval):
                    await self._poke.wait()
            else:
                # Sooner than the interval after a failure, backing off; not sooner even if
                # asked (a rejoin refused again and again must not become a busy loop).
                await trio.sleep(min(failures.next_delay(), interval))
            self._poke = trio.Event()

    async def _heartbeat_once(self) -> bool:
        """Send one heartbeat (if the state machine wants one); True unless it failed."""
        m = self.membership
        sent = m.heartbeat()
        if sent is None:
            await trio.lowlevel.checkpoint()
            return True
        try:
            response = await self.coordinator.request(
                self._request(sent), max_version=_HEARTBEAT_VERSION
            )
        except UnsupportedVersion as exc:
            error: KafkaError = self._unsupported(str(exc))
        except BrokerConnectionError as exc:
            error = CoordinatorNotAvailableError(str(exc), group_id=self.group_id)
        except KafkaError as exc:
            error = exc
        else:
            return await self._answer(sent, response)
        self._dispatch(m.on_heartbeat_response(error, sent))
        log.info("%s: heartbeat failed: %s", self.group_id, error)
        return False

    def _unsupported(self, detail: str) -> KafkaError:
        return ConsumerProtocolUnsupportedError(
            f"the broker does not run the KIP-848 consumer group protocol ({detail}): it "
            "needs Kafka 4.0+ with 'consumer' in group.coordinator.rebalance.protocols; "
            "use GroupConfig(group_protocol='classic')",
            group_id=self.group_id,
        )

    def _request(self, sent: Heartbeat) -> ConsumerGroupHeartbeatRequest:
        api = ConsumerGroupHeartbeatRequest
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(sent.owned):
            by_topic.setdefault(topic, []).append(partition)
        return api(
            group_id=self.group_id,
            member_id=sent.member_id,
            member_epoch=sent.member_epoch,
            instance_id=sent.instance_id,
            rebalance_timeout_ms=sent.rebalance_timeout_ms,
            subscribed_topic_names=None
            if sent.subscribed_topic_names is None
            else list(sent.subscribed_topic_names),
            subscribed_topic_regex=sent.subscribed_topic_regex,
            server_assignor=sent.server_assignor,
            topic_partitions=[
                api.TopicPartitions(topic_id=self._ids[topic], partitions=ps)
                for topic, ps in by_topic.items()
            ],
        )

    async def _answer(self, sent: Heartbeat, response: ConsumerGroupHeartbeatResponse) -> bool:
        m = self.membership
        error = group_error(response.error_code, self.group_id)
        if error is not None:
            if response.error_message:
                error = type(error)(response.error_message, group_id=self.group_id)
            if isinstance(error, UnsupportedVersionError):
                error = self._unsupported(error.name)
            if isinstance(error, (FencedMemberEpochError, UnknownMemberIdError)):
                log.warning("%s: fenced at epoch %d: %s", self.group_id, sent.member_epoch, error)
            self.reason = str(error)
            self._dispatch(m.on_heartbeat_response(error, sent))
            return False
        self.last_ok = self.last_heartbeat = now()
        assignment: frozenset[TopicPartition] | None = None
        if response.assignment is not None:
            assignment = await self._resolve(response.assignment.topic_partitions)
        self._dispatch(
            m.on_heartbeat_response(
                None,
                sent,
                member_id=response.member_id,
                member_epoch=response.member_epoch,
                heartbeat_interval_ms=response.heartbeat_interval_ms,
                assignment=assignment,
            )
        )
        return True

    async def _resolve(self, assigned: Sequence[Any]) -> frozenset[TopicPartition]:
        """Topic ids to names, through the metadata (all topics: a regex may match any)."""
        ids = {t.topic_id for t in assigned}
        retry = Retry(self.metadata.config.request_timeout)
        while not ids <= self._names.keys():
            try:
                cluster = await self.metadata.fetch(None, auto_create=False)
            except (KafkaError, BrokerConnectionError) as exc:
                log.info("%s: metadata for the assignment failed: %s", self.group_id, exc)
            else:
                for name, topic in cluster.topics.items():
                    if topic.topic_id.int:
                        self._names[topic.topic_id] = name
                        self._ids[name] = topic.topic_id
            if retry.expired:
                break
            if not ids <= self._names.keys():
                await retry.wait()
        unknown = ids - self._names.keys()
        if unknown:
            log.warning(
                "%s: assigned topics unknown to the metadata, skipped: %s",
                self.group_id,
                sorted(map(str, unknown)),
            )
        return frozenset(
            (self._names[t.topic_id], p)
            for t in assigned
            if t.topic_id in self._names
            for p in t.partitions
        )
