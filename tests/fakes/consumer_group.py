"""An in-memory KIP-848 group coordinator for unit tests of the consumer-protocol member.

:class:`FakeConsumerGroupCluster` extends :class:`~tests.fakes.group.FakeGroupCluster` (the
pool and metadata cache a member needs, OffsetFetch, the request log) with the broker side
of ConsumerGroupHeartbeat as one member sees it: epoch 0 joins (member epoch 1, every
partition of the subscribed topics assigned), a heartbeat with the current epoch is
answered with the same epoch and no assignment, epoch -1/-2 leaves. OffsetCommit checks the
member epoch as Kafka does (a lower one is STALE_MEMBER_EPOCH, an unknown member
UNKNOWN_MEMBER_ID). Tests steer it: ``interval_ms`` is the heartbeat interval it hands out,
:meth:`fence` answers the member's next heartbeat FENCED_MEMBER_EPOCH (and forgets it),
:meth:`bump` moves its epoch on (its next commit with the old one is stale),
``without_kip848`` makes it a broker whose ApiVersions lacks ConsumerGroupHeartbeat.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.group import FakeGroupCluster, _Connection
from trio_brod._exceptions import UnsupportedVersion
from trio_brod.protocol import (
    ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
)
from trio_brod.protocol.errors import (
    FencedMemberEpochError,
    StaleMemberEpochError,
    UnknownMemberIdError,
)


@dataclass
class _Topic:
    partition_count: int
    topic_id: uuid.UUID
    is_internal: bool = False
    error_code: int = 0


@dataclass
class _ClusterMetadata:
    topics: dict[str, _Topic] = field(default_factory=dict)


class _OldBrokerConnection(_Connection):
    """A connection to a broker whose ApiVersions lacks ConsumerGroupHeartbeat (Kafka 3.x)."""

    def version_for(self, api_key: int, max_version: int, min_version: int = 0) -> int:
        if api_key == ConsumerGroupHeartbeatRequest.API_KEY:
            raise UnsupportedVersion("b1:9092", f"the broker does not support API {api_key}")
        return super().version_for(api_key, max_version, min_version)


class FakeConsumerGroupCluster(FakeGroupCluster):
    """One broker coordinating one KIP-848 group of one member (see the module docstring)."""

    def __init__(self, partitions: dict[str, int], **config: Any) -> None:
        super().__init__(partitions, **config)
        self.ids = {name: uuid.uuid4() for name in partitions}
        self.interval_ms = 2000
        self.epoch = 0
        self.member_id = None
        self._fence_next = False
        #: A broker without the protocol: ApiVersions does not list ConsumerGroupHeartbeat.
        self.without_kip848 = False
        #: Answer every join (epoch 0) UNKNOWN_MEMBER_ID.
        self.refuse_joins = False

    async def get(self, host: str, port: int) -> _Connection:
        connection = await super().get(host, port)
        return _OldBrokerConnection(self) if self.without_kip848 else connection

    async def fetch(self, topics: list[str] | None, *, auto_create: bool = False) -> Any:
        found = await super().fetch(topics, auto_create=auto_create)
        return _ClusterMetadata(
            {n: _Topic(t.partition_count, self.ids[n]) for n, t in found.topics.items()}
        )

    def fence(self) -> None:
        """Answer the member's next heartbeat FENCED_MEMBER_EPOCH, and forget it."""
        self._fence_next = True

    def bump(self) -> None:
        """Move the member's epoch on without telling it."""
        self.epoch += 1

    async def answer(self, request: Any) -> Any:
        if isinstance(request, ConsumerGroupHeartbeatRequest):
            return self._heartbeat(request)
        if isinstance(request, OffsetCommitRequest):
            return self._commit(request)
        return await super().answer(request)

    def _heartbeat(self, request: ConsumerGroupHeartbeatRequest) -> Any:
        api = ConsumerGroupHeartbeatResponse
        if request.member_epoch < 0:
            self.member_id = None
            return api(member_id=request.member_id, member_epoch=request.member_epoch)
        if self._fence_next:
            self._fence_next = False
            self.member_id = None
            self.events.append(("fenced", self.epoch))
            return api(error_code=FencedMemberEpochError.code)
        if request.member_epoch == 0 and self.refuse_joins:
            return api(error_code=UnknownMemberIdError.code)
        if request.member_epoch == 0:
            self.member_id = request.member_id
            self.epoch += 1
            names = request.subscribed_topic_names or []
            assignment = api.Assignment(
                topic_partitions=[
                    api.TopicPartitions(
                        topic_id=self.ids[n], partitions=list(range(self.partitions[n]))
                    )
                    for n in names
                    if n in self.partitions
                ]
            )
            return api(
                member_id=request.member_id,
                member_epoch=self.epoch,
                heartbeat_interval_ms=self.interval_ms,
                assignment=assignment,
            )
        if request.member_id != self.member_id:
            return api(error_code=UnknownMemberIdError.code)
        return api(
            member_id=request.member_id,
            member_epoch=self.epoch,
            heartbeat_interval_ms=self.interval_ms,
        )

    def _commit(self, request: OffsetCommitRequest) -> Any:
        epoch = request.generation_id_or_member_epoch
        if self.member_id is None or request.member_id != self.member_id:
            code = UnknownMemberIdError.code
        elif epoch != self.epoch:
            code = StaleMemberEpochError.code
        else:
            code = 0
        offsets = {
            (t.name, p.partition_index): p.committed_offset
            for t in request.topics
            for p in t.partitions
        }
        self.events.append(("commit refused", code) if code else ("commit", epoch))
        if not code:
            self.committed.update(offsets)
        api = OffsetCommitResponse
        return api(
            topics=[
                api.OffsetCommitResponseTopic(
                    name=t.name,
                    partitions=[
                        api.OffsetCommitResponsePartition(
                            partition_index=p.partition_index, error_code=code
                        )
                        for p in t.partitions
                    ],
                )
                for t in request.topics
            ]
        )
