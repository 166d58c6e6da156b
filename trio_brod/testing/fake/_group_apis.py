"""The fake Kafka's group coordinator on the wire: JoinGroup, SyncGroup, Heartbeat,
LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups and DeleteGroups, and
KIP-848's ConsumerGroupHeartbeat and ConsumerGroupDescribe.

The rules live in :mod:`._groups` (pure state, driven by hypothesis in the unit tests); this
module checks that the request reached the group's coordinator (NOT_COORDINATOR otherwise),
translates requests and answers, sleeps on Trio's clock until a waiting JoinGroup or
SyncGroup is answered, and runs the timers (session and rebalance timeouts) as one task in
:attr:`FakeCluster.nursery`: under ``MockClock(autojump_threshold=0)`` a session timeout
takes no wall time.

Groups survive a coordinator move (Kafka reloads them from ``__consumer_offsets``): stopping
the coordinator's broker, or :meth:`GroupCoordinator.move`, only changes who answers.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import trio

from trio_brod.protocol import (
    ConsumerGroupDescribeRequest,
    ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse,
    DeleteGroupsRequest,
    DeleteGroupsResponse,
    DescribeGroupsRequest,
    DescribeGroupsResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    ListGroupsRequest,
    ListGroupsResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    SyncGroupRequest,
    SyncGroupResponse,
)
from trio_brod.protocol.errors import (
    GroupIdNotFoundError,
    InconsistentGroupProtocolError,
    NonEmptyGroupError,
    NotCoordinatorError,
    UnknownTopicOrPartitionError,
    UnstableOffsetCommitError,
)
from trio_brod.testing.fake._consumer_groups import ConsumerGroups
from trio_brod.testing.fake._groups import DEAD, STABLE, Committed, Groups, Waiter
from trio_brod.testing.fake._runtime import Api, FakeCluster, RequestContext, wait_for

__all__ = ["GroupCoordinator", "install_group_apis"]

T = TypeVar("T")
_CLIENT_HOST = "/127.0.0.1"


class GroupCoordinator:
    """The groups of a fake cluster, the wake-ups of waiting requests, and the timer task."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.groups = Groups()
        self.consumer = ConsumerGroups()
        # The requests waiting for an answer, each with the event that wakes it once it
        # has one: a change wakes only the requests it answered.
        self._waiting: list[tuple[Waiter[Any], trio.Event]] = []
        self._timer_started = False
        # What the timer task sleeps until, and the event that wakes it sooner.
        self._timer_at = math.inf
        self._timer_wakeup = trio.Event()

    def changed(self) -> None:
        """Wake the waiting requests that a change of the groups answered, and the timer
        task if a timer now fires sooner than the one it sleeps until. Most changes only
        move timers later (a heartbeat extends a session): those leave the timer task
        asleep."""
        if self._waiting:
            waiting = []
            for waiter, answered in self._waiting:
                if waiter.result is None:
                    waiting.append((waiter, answered))
                else:
                    answered.set()
            self._waiting = waiting
        deadline = self._next_deadline()
        if deadline is not None and deadline < self._timer_at:
            self._timer_wakeup.set()

    def _next_deadline(self) -> float | None:
        deadlines = (self.groups.next_deadline(), self.consumer.next_deadline())
        return min((d for d in deadlines if d is not None), default=None)

    async def wait(self, waiter: Waiter[T]) -> T:
        """Sleep until *waiter* is answered (a handler's wait: see :func:`wait_for`)."""
        self.changed()
        if waiter.result is None:
            answered = trio.Event()
            self._waiting.append((waiter, answered))
            try:
                await wait_for(answered)
            finally:
                if not answered.is_set():  # cancelled: the request's connection went away
                    self._waiting = [w for w in self._waiting if w[1] is not answered]
        assert waiter.result is not None
        return waiter.result

    def ensure_timer(self) -> None:
        """Start the timer task in the fake's nursery (once)."""
        if not self._timer_started and self.cluster.nursery is not None:
            self._timer_started = True
            self.cluster.nursery.start_soon(self._run_timers)

    async def _run_timers(self) -> None:
        while True:
            deadline = self._next_deadline()
            self._timer_at = math.inf if deadline is None else deadline
            self._timer_wakeup = trio.Event()
            with trio.move_on_at(self._timer_at):
                await self._timer_wakeup.wait()
            now = trio.current_time()
            if now >= self._timer_at:
                # Timers may have moved later since: tick applies only those now due.
                self.groups.tick(now)
                self.consumer.tick(now, self.partition_counts())
                self.changed()

    def expire_member(self, group_id: str, member_id: str) -> bool:
        """Evict a member as its session timeout would (False if no such member)."""
        group = self.groups.get(group_id)
        done = group is not None and group.expire(member_id, trio.current_time())
        done = done or self.consumer.expire(group_id, member_id, self.partition_counts())
        self.changed()
        return done

    def partition_counts(self) -> dict[str, int]:
        """Every topic's partition count (what the consumer groups' assignor spreads)."""
        return {name: len(t.partitions) for name, t in self.cluster.model.topics.items()}

    def refused(self, ctx: RequestContext, group_id: str) -> int:
        """NOT_COORDINATOR if this broker does not coordinate the group, else 0."""
        self.ensure_timer()
        if ctx.cluster.coordinator_for(group_id) != ctx.broker:
            return NotCoordinatorError.code
        return 0

    # -- handlers ------------------------------------------------------------------------

    async def join_group(self, ctx: RequestContext, request: JoinGroupRequest) -> JoinGroupResponse:
        """JoinGroup."""
        error = self.refused(ctx, request.group_id) or self.consumer.refuse_classic(
            request.group_id
        )
        if error:
            return JoinGroupResponse(
                error_code=error,
                member_id=request.member_id,
                protocol_name=None if ctx.version >= 7 else "",
            )
        session = request.session_timeout_ms / 1000
        rebalance = request.rebalance_timeout_ms / 1000 if ctx.version >= 1 else session
        waiter = self.groups.join(
            trio.current_time(),
            request.group_id,
            request.member_id,
            request.group_instance_id if ctx.version >= 5 else None,
            request.protocol_type,
            [(p.name, bytes(p.metadata)) for p in request.protocols],
            session,
            rebalance,
            client_id=ctx.client_id or "",
            client_host=_CLIENT_HOST,
            require_known_member_id=ctx.version >= 4,
            skip_assignment_ok=ctx.version >= 9,
        )
        result = await self.wait(waiter)
        return JoinGroupResponse(
            error_code=result.error,
            generation_id=result.generation,
            protocol_type=result.protocol_type,
            # Nullable from v7; before, Kafka answers "" when there is none.
            protocol_name=(
                result.protocol_name if result.protocol_name is not None or ctx.version >= 7 else ""
            ),
            leader=result.leader,
            skip_assignment=result.skip_assignment,
            member_id=result.member_id,
            members=[
                JoinGroupResponse.JoinGroupResponseMember(
                    member_id=m, group_instance_id=i, metadata=md
                )
                for m, i, md in result.members
            ],
        )

    async def sync_group(self, ctx: RequestContext, request: SyncGroupRequest) -> SyncGroupResponse:
        """SyncGroup."""
        if ctx.version >= 5 and None in (request.protocol_type, request.protocol_name):
            # Mandatory from v5: Kafka's request handler refuses the request at once.
            return SyncGroupResponse(error_code=InconsistentGroupProtocolError.code)
        error = self.refused(ctx, request.group_id)
        if error:
            return SyncGroupResponse(error_code=error)
        waiter = self.groups.sync(
            trio.current_time(),
            request.group_id,
            request.generation_id,
            request.member_id,
            request.group_instance_id if ctx.version >= 3 else None,
            {a.member_id: bytes(a.assignment) for a in request.assignments},
            request.protocol_type if ctx.version >= 5 else None,
            request.protocol_name if ctx.version >= 5 else None,
        )
        result = await self.wait(waiter)
        return SyncGroupResponse(
            error_code=result.error,
            protocol_type=result.protocol_type,
            protocol_name=result.protocol_name,
            assignment=result.assignment,
        )

    async def heartbeat(self, ctx: RequestContext, request: HeartbeatRequest) -> HeartbeatResponse:
        """Heartbeat."""
        error = self.refused(ctx, request.group_id)
        if not error:
            error = self.groups.heartbeat(
                trio.current_time(),
                request.group_id,
                request.generation_id,
                request.member_id,
                request.group_instance_id if ctx.version >= 3 else None,
            )
            self.changed()
        return HeartbeatResponse(error_code=error)

    async def leave_group(
        self, ctx: RequestContext, request: LeaveGroupRequest
    ) -> LeaveGroupResponse:
        """LeaveGroup: one member (v0-2) or a batch of members (v3+)."""
        error = self.refused(ctx, request.group_id)
        if error:
            return LeaveGroupResponse(error_code=error)
        if ctx.version >= 3:
            leaving = [(m.member_id, m.group_instance_id) for m in request.members]
        else:
            leaving = [(request.member_id, None)]
        error, errors = self.groups.leave(trio.current_time(), request.group_id, leaving)
        self.changed()
        if ctx.version < 3:
            return LeaveGroupResponse(error_code=error or errors[0])
        return LeaveGroupResponse(
            error_code=error,
            members=[
                LeaveGroupResponse.MemberResponse(member_id=m, group_instance_id=i, error_code=e)
                for (m, i), e in zip(leaving, errors, strict=True)
            ],
        )

    async def offset_commit(
        self, ctx: RequestContext, request: OffsetCommitRequest
    ) -> OffsetCommitResponse:
        """OffsetCommit, with Kafka's generation and member checks.

        As Kafka's request handler: partitions of unknown topics are answered
        UNKNOWN_TOPIC_OR_PARTITION before the coordinator sees the rest (whatever the group
        would say), and are listed first; a request with no known partition leaves the group
        alone. Only a refusal of the whole request (NOT_COORDINATOR) covers every partition.
        """
        refused = self.refused(ctx, request.group_id)
        answers: dict[str, OffsetCommitResponse.OffsetCommitResponseTopic] = {}

        def answer(topic: str, partition: int, code: int) -> None:
            if topic not in answers:
                answers[topic] = OffsetCommitResponse.OffsetCommitResponseTopic(name=topic)
            answers[topic].partitions.append(
                OffsetCommitResponse.OffsetCommitResponsePartition(
                    partition_index=partition, error_code=code
                )
            )

        valid: list[tuple[str, OffsetCommitRequest.OffsetCommitRequestPartition]] = []
        for topic in request.topics:
            known = ctx.model.topics.get(topic.name)
            count = 0 if known is None else len(known.partitions)
            for p in topic.partitions:
                if refused or 0 <= p.partition_index < count:
                    valid.append((topic.name, p))
                else:
                    answer(topic.name, p.partition_index, UnknownTopicOrPartitionError.code)
        error = refused
        if valid and not error:
            consumer = self.consumer.check_commit(
                request.group_id, request.member_id, request.generation_id_or_member_epoch
            )
            error = (
                consumer
                if consumer is not None
                else self.groups.check_commit(
                    request.group_id,
                    request.generation_id_or_member_epoch,
                    request.member_id,
                    request.group_instance_id if ctx.version >= 7 else None,
                )
            )
        for name, p in valid:
            if not error:
                self.groups.commit(
                    request.group_id,
                    name,
                    p.partition_index,
                    Committed(
                        p.committed_offset,
                        p.committed_leader_epoch if ctx.version >= 6 else -1,
                        p.committed_metadata,
                    ),
                )
            answer(name, p.partition_index, error)
        return OffsetCommitResponse(topics=list(answers.values()))

    async def offset_fetch(
        self, ctx: RequestContext, request: OffsetFetchRequest
    ) -> OffsetFetchResponse:
        """OffsetFetch: one group (v0-7) or several (v8+); unknown partitions are -1."""
        if ctx.version >= 8:
            response = OffsetFetchResponse()
            for asked in request.groups:
                group = OffsetFetchResponse.OffsetFetchResponseGroup(group_id=asked.group_id)
                group.error_code = self.refused(ctx, asked.group_id)
                if not group.error_code:
                    wanted = (
                        None
                        if asked.topics is None
                        else [(t.name, list(t.partition_indexes)) for t in asked.topics]
                    )
                    unstable = self._unstable(ctx, asked.group_id, request.require_stable)
                    for name, parts in self._fetch(asked.group_id, wanted, unstable):
                        group.topics.append(
                            OffsetFetchResponse.OffsetFetchResponseTopics(
                                name=name,
                                partitions=[
                                    OffsetFetchResponse.OffsetFetchResponsePartitions(
                                        partition_index=i,
                                        committed_offset=c.offset,
                                        committed_leader_epoch=c.leader_epoch,
                                        metadata=c.metadata,
                                        error_code=error,
                                    )
                                    for i, c, error in parts
                                ],
                            )
                        )
                response.groups.append(group)
            return response
        error = self.refused(ctx, request.group_id)
        if error:
            return OffsetFetchResponse(error_code=error)
        wanted = (
            None
            if request.topics is None
            else [(t.name, list(t.partition_indexes)) for t in request.topics]
        )
        response = OffsetFetchResponse()
        unstable = self._unstable(
            ctx, request.group_id, ctx.version >= 7 and request.require_stable
        )
        for name, parts in self._fetch(request.group_id, wanted, unstable):
            response.topics.append(
                OffsetFetchResponse.OffsetFetchResponseTopic(
                    name=name,
                    partitions=[
                        OffsetFetchResponse.OffsetFetchResponsePartition(
                            partition_index=i,
                            committed_offset=c.offset,
                            committed_leader_epoch=c.leader_epoch,
                            metadata=c.metadata,
                            error_code=error,
                        )
                        for i, c, error in parts
                    ],
                )
            )
        return response

    @staticmethod
    def _unstable(ctx: RequestContext, group_id: str, require_stable: bool) -> set[tuple[str, int]]:
        """The partitions OffsetFetch answers UNSTABLE_OFFSET_COMMIT: with
        ``require_stable``, those whose offsets an open transaction holds.
        """
        pending = ctx.cluster.unstable_offsets
        return pending(group_id) if require_stable and pending is not None else set()

    def _fetch(
        self,
        group_id: str,
        wanted: list[tuple[str, list[int]]] | None,
        unstable: set[tuple[str, int]],
    ) -> list[tuple[str, list[tuple[int, Committed, int]]]]:
        committed = self.groups.committed(group_id)
        none = Committed(-1, -1, "")

        def answer(topic: str, partition: int) -> tuple[int, Committed, int]:
            if (topic, partition) in unstable:
                return partition, none, UnstableOffsetCommitError.code
            return partition, committed.get((topic, partition), none), 0

        if wanted is None:
            by_topic: dict[str, list[tuple[int, Committed, int]]] = {}
            for topic, partition in sorted(committed):
                by_topic.setdefault(topic, []).append(answer(topic, partition))
            return list(by_topic.items())
        return [(name, [answer(name, i) for i in parts]) for name, parts in wanted]

    async def consumer_group_heartbeat(
        self, ctx: RequestContext, request: ConsumerGroupHeartbeatRequest
    ) -> ConsumerGroupHeartbeatResponse:
        """ConsumerGroupHeartbeat (KIP-848): join, reconcile, heartbeat, leave."""
        api = ConsumerGroupHeartbeatResponse
        error = self.refused(ctx, request.group_id)
        classic = self.groups.get(request.group_id)
        if not error and classic is not None and classic.members:
            error = GroupIdNotFoundError.code  # a live classic group; no conversion here
        if error:
            return api(error_code=error, error_message=None, member_id=request.member_id)
        names = {t.topic_id: name for name, t in ctx.model.topics.items()}
        owned = None
        if request.topic_partitions is not None:
            owned = frozenset(
                (names[tp.topic_id], p)
                for tp in request.topic_partitions
                if tp.topic_id in names
                for p in tp.partitions
            )
        result = self.consumer.heartbeat(
            trio.current_time(),
            request.group_id,
            request.member_id,
            request.member_epoch,
            request.instance_id,
            request.rebalance_timeout_ms / 1000,
            request.subscribed_topic_names,
            request.subscribed_topic_regex if ctx.version >= 1 else None,
            owned,
            self.partition_counts(),
            member_id_from_client=ctx.version >= 1,
            client_id=ctx.client_id or "",
        )
        self.changed()
        response = api(
            error_code=result.error,
            error_message=None,
            member_id=result.member_id or None,
            member_epoch=result.member_epoch,
            heartbeat_interval_ms=int(self.consumer.heartbeat_interval * 1000),
        )
        if result.assignment is not None:
            by_topic: dict[str, list[int]] = {}
            for topic, partition in sorted(result.assignment):
                by_topic.setdefault(topic, []).append(partition)
            response.assignment = api.Assignment(
                topic_partitions=[
                    api.TopicPartitions(topic_id=ctx.model.topics[t].topic_id, partitions=ps)
                    for t, ps in by_topic.items()
                    if t in ctx.model.topics
                ]
            )
        return response

    async def consumer_group_describe(
        self, ctx: RequestContext, request: ConsumerGroupDescribeRequest
    ) -> ConsumerGroupDescribeResponse:
        """ConsumerGroupDescribe (KIP-848): a consumer group's state, epochs and members,
        each with what it owns and what it is to own. A classic group, or no group, is
        GROUP_ID_NOT_FOUND, as Kafka answers.
        """
        api = ConsumerGroupDescribeResponse
        names = {name: t.topic_id for name, t in ctx.model.topics.items()}

        def assignment(owned: frozenset[tuple[str, int]]) -> Any:
            by_topic: dict[str, list[int]] = {}
            for topic, partition in sorted(owned):
                by_topic.setdefault(topic, []).append(partition)
            return api.Assignment(
                topic_partitions=[
                    api.TopicPartitions(topic_id=names[t], topic_name=t, partitions=ps)
                    for t, ps in by_topic.items()
                    if t in names
                ]
            )

        response = api()
        for group_id in request.group_ids:
            described = api.DescribedGroup(
                group_id=group_id, error_message=None, authorized_operations=-(2**31)
            )
            response.groups.append(described)
            described.error_code = self.refused(ctx, group_id)
            if described.error_code:
                continue
            group = self.consumer.groups.get(group_id)
            classic = self.groups.get(group_id)
            if group is None or (classic is not None and classic.members):
                described.error_code = GroupIdNotFoundError.code
                described.error_message = f"group {group_id!r} is not a consumer group"
                continue
            described.group_state = group.state
            described.group_epoch = described.assignment_epoch = group.epoch
            described.assignor_name = "uniform"
            described.members = [
                api.Member(
                    member_id=m.member_id,
                    instance_id=m.instance_id,
                    rack_id=None,
                    member_epoch=m.epoch,
                    client_id=m.client_id,
                    client_host=_CLIENT_HOST,
                    subscribed_topic_names=list(m.topics),
                    subscribed_topic_regex=m.regex,
                    assignment=assignment(m.assigned),
                    target_assignment=assignment(group.target.get(m.member_id, frozenset())),
                )
                for m in group.members.values()
            ]
        return response

    async def describe_groups(
        self, ctx: RequestContext, request: DescribeGroupsRequest
    ) -> DescribeGroupsResponse:
        """DescribeGroups: state, protocol and members (metadata and assignment when Stable,
        as Kafka answers); an unknown group is "Dead" (GROUP_ID_NOT_FOUND from v6).
        """
        response = DescribeGroupsResponse()
        for group_id in request.groups:
            described = DescribeGroupsResponse.DescribedGroup(group_id=group_id)
            response.groups.append(described)
            described.error_code = self.refused(ctx, group_id)
            group = self.groups.get(group_id)
            if described.error_code:
                continue
            if group is None:
                described.group_state = DEAD
                if ctx.version >= 6:
                    described.error_code = GroupIdNotFoundError.code
                continue
            stable = group.state == STABLE
            described.group_state = group.state
            described.protocol_type = group.protocol_type or ""
            described.protocol_data = (group.protocol_name or "") if stable else ""
            described.members = [
                DescribeGroupsResponse.DescribedGroupMember(
                    member_id=m.member_id,
                    group_instance_id=m.instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    member_metadata=m.metadata(group.protocol_name) if stable else b"",
                    # The last assignment, in every state (Kafka's describeNoMetadata).
                    member_assignment=m.assignment,
                )
                for m in group.members.values()
            ]
        return response

    async def delete_groups(
        self, ctx: RequestContext, request: DeleteGroupsRequest
    ) -> DeleteGroupsResponse:
        """DeleteGroups: an empty group goes, with its committed offsets; a group with
        members is NON_EMPTY_GROUP, and one that does not exist GROUP_ID_NOT_FOUND.
        """
        response = DeleteGroupsResponse()
        for group_id in request.groups_names:
            code = self.refused(ctx, group_id)
            if not code:
                if self.consumer.owns(group_id):
                    code = NonEmptyGroupError.code
                else:
                    had_consumer_group = self.consumer.forget_empty(group_id)
                    code = self.groups.delete(group_id)
                    if code == GroupIdNotFoundError.code and had_consumer_group:
                        code = 0
            response.results.append(
                DeleteGroupsResponse.DeletableGroupResult(group_id=group_id, error_code=code)
            )
        return response

    async def list_groups(
        self, ctx: RequestContext, request: ListGroupsRequest
    ) -> ListGroupsResponse:
        """ListGroups: the groups this broker coordinates (filtered by state from v4)."""
        self.ensure_timer()
        states = {s.lower() for s in request.states_filter} if ctx.version >= 4 else set()
        types = {t.lower() for t in request.types_filter} if ctx.version >= 5 else set()
        response = ListGroupsResponse()
        for group_id, group in sorted(self.groups.groups.items()):
            if ctx.cluster.coordinator_for(group_id) != ctx.broker:
                continue
            if states and group.state.lower() not in states:
                continue
            if types and "classic" not in types:
                continue
            response.groups.append(
                ListGroupsResponse.ListedGroup(
                    group_id=group_id,
                    protocol_type=group.protocol_type or "",
                    group_state=group.state,
                    group_type="classic",
                )
            )
        for group_id, cgroup in sorted(self.consumer.groups.items()):
            if (
                ctx.cluster.coordinator_for(group_id) != ctx.broker
                or group_id in self.groups.groups
            ):
                continue
            if (states and cgroup.state.lower() not in states) or (
                types and "consumer" not in types
            ):
                continue
            response.groups.append(
                ListGroupsResponse.ListedGroup(
                    group_id=group_id,
                    protocol_type="consumer",
                    group_state=cgroup.state,
                    group_type="consumer",
                )
            )
        return response


def install_group_apis(cluster: FakeCluster) -> GroupCoordinator:
    """Register the group coordinator's APIs; returns the coordinator (for fault levers)."""
    coordinator = GroupCoordinator(cluster)
    handlers: list[tuple[int, int, int, Any]] = [
        (11, 0, 9, coordinator.join_group),
        (14, 0, 5, coordinator.sync_group),
        (12, 0, 4, coordinator.heartbeat),
        (13, 0, 5, coordinator.leave_group),
        (8, 2, 9, coordinator.offset_commit),
        (9, 1, 9, coordinator.offset_fetch),
        (15, 0, 5, coordinator.describe_groups),
        (16, 0, 5, coordinator.list_groups),
        (42, 0, 2, coordinator.delete_groups),
        (68, 0, 1, coordinator.consumer_group_heartbeat),
        (69, 0, 0, coordinator.consumer_group_describe),
    ]
    for key, low, high, handler in handlers:
        cluster.register(Api(key, low, high, handler))
    return coordinator
