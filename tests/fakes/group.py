"""An in-memory group coordinator for unit tests of the group member: no sockets.

:class:`FakeGroupCluster` is what :class:`~trio_brod.groups.member.GroupMember` needs of a
connection pool and a metadata cache (``get``, ``find_coordinator``, ``fetch``, ``config``),
with one broker that coordinates one group of one member. Without sockets, Trio's
``MockClock(autojump_threshold=0)`` can run session timeouts and backoffs in no wall time.

The broker side is the classic protocol as a single member sees it: JoinGroup starts a new
generation with the member as leader, SyncGroup hands back the leader's assignment,
Heartbeat and OffsetCommit check the generation and member id (and drop a member not heard
from for its session timeout), OffsetFetch reads the commits. Tests steer it:
:meth:`FakeGroupCluster.evict` drops the member (UNKNOWN_MEMBER_ID from then on),
``unreachable`` makes every request fail as a dead broker does, ``join_errors`` answers the
next JoinGroups with errors, ``hold_heartbeats`` keeps heartbeat answers back.
``requests`` records every request with the time it arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from trio_brod import ClientConfig, ConnectionFailed
from trio_brod._metadata import BrokerMetadata
from trio_brod.groups._protocol import decode_assignment
from trio_brod.observe import Hooks
from trio_brod.protocol import (
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    SyncGroupRequest,
    SyncGroupResponse,
)
from trio_brod.protocol.errors import (
    IllegalGenerationError,
    KafkaError,
    UnknownMemberIdError,
)

COORDINATOR = BrokerMetadata(1, "b1", 9092)
MEMBER_ID = "member-1"


@dataclass
class Commit:
    """An OffsetCommit the fake received: when, with what generation, and its answer."""

    at: float
    generation_id: int
    member_id: str
    offsets: dict[tuple[str, int], int]
    accepted: bool


@dataclass
class _Topic:
    partition_count: int
    is_internal: bool = False
    error_code: int = 0


@dataclass
class _ClusterMetadata:
    topics: dict[str, _Topic] = field(default_factory=dict)


class _Connection:
    def __init__(self, cluster: FakeGroupCluster) -> None:
        self.cluster = cluster
        self.closed = False

    def version_for(self, api_key: int, max_version: int, min_version: int = 0) -> int:
        # OffsetFetch up to v7 (one group, topics at the top level), the rest as asked.
        return min(max_version, 7) if api_key == OffsetFetchRequest.API_KEY else max_version

    async def request(self, message: Any, version: int, **_: Any) -> Any:
        await trio.sleep(0.001)
        cluster = self.cluster
        if cluster.unreachable:
            raise ConnectionFailed("b1:9092", "refused")
        cluster.requests.append((trio.current_time(), message))
        return await cluster.answer(message)


class FakeGroupCluster:
    """One broker coordinating one group (see the module docstring).

    Args:
        partitions: Partition counts of the topics that exist.
        config: The client options (``request_timeout`` bounds the coordinator's retries).
    """

    def __init__(self, partitions: dict[str, int], **config: Any) -> None:
        self.config = ClientConfig(**config)
        self.hooks = Hooks()  # as a ConnectionPool's: the event hooks of its "client"
        self.partitions = dict(partitions)
        self.generation_id = 0
        self.member_id: str | None = None
        self.assignment: bytes = b""
        self.committed: dict[tuple[str, int], int] = {}
        self.commits: list[Commit] = []
        self.requests: list[tuple[float, Any]] = []
        #: What happened, in order: ("commit", generation id) for each commit accepted,
        #: ("commit refused", code), ("heartbeat error", code). Tests may add their own.
        self.events: list[tuple[str, int]] = []
        self.join_errors: list[type[KafkaError]] = []
        self.unreachable = False
        self.session_timeout = 0.0
        self.last_seen = 0.0
        self.hold_heartbeats = False
        self._heartbeats_released = trio.Event()

    # -- what GroupMember asks of a pool and a metadata cache ---------------------------------

    async def connect_slot(self, slot: Any, host: str, port: int, nursery: Any) -> _Connection:
        """A member's own connection to its coordinator: here, the same as :meth:`get`."""
        return await self.get(host, port)

    async def get(self, host: str, port: int) -> _Connection:
        await trio.lowlevel.checkpoint()
        if self.unreachable:
            raise ConnectionFailed(f"{host}:{port}", "refused")
        return _Connection(self)

    async def find_coordinator(self, key: str, key_type: int) -> BrokerMetadata:
        await trio.sleep(0.001)
        if self.unreachable:
            raise ConnectionFailed("b1:9092", "refused")
        return COORDINATOR

    async def fetch(self, topics: list[str] | None, *, auto_create: bool = False) -> Any:
        await trio.lowlevel.checkpoint()
        names = self.partitions if topics is None else [t for t in topics if t in self.partitions]
        return _ClusterMetadata({name: _Topic(self.partitions[name]) for name in names})

    # -- steering ------------------------------------------------------------------------------

    def evict(self) -> None:
        """The broker drops the member (its session expired): UNKNOWN_MEMBER_ID from now."""
        self.member_id = None

    def release_heartbeats(self) -> None:
        self.hold_heartbeats = False
        self._heartbeats_released.set()
        self._heartbeats_released = trio.Event()

    def sent(self, kind: type) -> list[tuple[float, Any]]:
        """The requests of one type received, with their times."""
        return [(at, r) for at, r in self.requests if isinstance(r, kind)]

    # -- the broker's side ---------------------------------------------------------------------

    def _check(self, generation_id: int, member_id: str) -> int:
        if trio.current_time() - self.last_seen > self.session_timeout:
            self.member_id = None  # the session expired: the broker dropped the member
        if self.member_id is None or member_id != self.member_id:
            return UnknownMemberIdError.code
        if generation_id != self.generation_id:
            return IllegalGenerationError.code
        return 0

    async def answer(self, request: Any) -> Any:
        if isinstance(request, JoinGroupRequest):
            if self.join_errors:
                return JoinGroupResponse(error_code=self.join_errors.pop(0).code)
            self.generation_id += 1
            self.member_id = request.member_id or MEMBER_ID
            self.session_timeout = request.session_timeout_ms / 1000
            self.last_seen = trio.current_time()
            protocol = request.protocols[0]
            member = JoinGroupResponse.JoinGroupResponseMember(
                member_id=self.member_id,
                group_instance_id=request.group_instance_id,
                metadata=protocol.metadata,
            )
            return JoinGroupResponse(
                error_code=0,
                generation_id=self.generation_id,
                protocol_type="consumer",
                protocol_name=protocol.name,
                leader=self.member_id,
                member_id=self.member_id,
                members=[member],
            )
        if isinstance(request, SyncGroupRequest):
            code = self._check(request.generation_id, request.member_id)
            if code:
                return SyncGroupResponse(error_code=code)
            self.last_seen = trio.current_time()
            for a in request.assignments:
                if a.member_id == request.member_id:
                    self.assignment = a.assignment
            return SyncGroupResponse(error_code=0, assignment=self.assignment)
        if isinstance(request, HeartbeatRequest):
            while self.hold_heartbeats:
                await self._heartbeats_released.wait()
            code = self._check(request.generation_id, request.member_id)
            if code:
                self.events.append(("heartbeat error", code))
            else:
                self.last_seen = trio.current_time()
            return HeartbeatResponse(error_code=code)
        if isinstance(request, OffsetCommitRequest):
            code = self._check(request.generation_id_or_member_epoch, request.member_id)
            offsets = {
                (t.name, p.partition_index): p.committed_offset
                for t in request.topics
                for p in t.partitions
            }
            self.commits.append(
                Commit(
                    trio.current_time(),
                    request.generation_id_or_member_epoch,
                    request.member_id,
                    offsets,
                    not code,
                )
            )
            if code:
                self.events.append(("commit refused", code))
            else:
                self.events.append(("commit", request.generation_id_or_member_epoch))
            if not code:
                self.committed.update(offsets)
            return OffsetCommitResponse(
                topics=[
                    OffsetCommitResponse.OffsetCommitResponseTopic(
                        name=t.name,
                        partitions=[
                            OffsetCommitResponse.OffsetCommitResponsePartition(
                                partition_index=p.partition_index, error_code=code
                            )
                            for p in t.partitions
                        ],
                    )
                    for t in request.topics
                ]
            )
        if isinstance(request, OffsetFetchRequest):
            api = OffsetFetchResponse
            return api(
                error_code=0,
                topics=[
                    api.OffsetFetchResponseTopic(
                        name=t.name,
                        partitions=[
                            api.OffsetFetchResponsePartition(
                                partition_index=p,
                                committed_offset=self.committed.get((t.name, p), -1),
                                committed_leader_epoch=-1,
                                metadata="",
                                error_code=0,
                            )
                            for p in t.partition_indexes
                        ],
                    )
                    for t in request.topics
                ],
            )
        if isinstance(request, LeaveGroupRequest):
            self.member_id = None
            return LeaveGroupResponse(error_code=0, members=[])
        raise AssertionError(f"the fake group coordinator cannot answer {request!r}")

    def assigned(self) -> list[tuple[str, int]]:
        """The partitions of the last assignment handed out."""
        return sorted(decode_assignment(self.assignment).partitions) if self.assignment else []
