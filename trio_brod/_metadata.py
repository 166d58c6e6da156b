"""What a client knows about the cluster: brokers, topics, partitions and their leaders.

These are plain frozen dataclasses built from Metadata responses, so user code can keep them
and compare them without holding on to protocol objects.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from typing import Any

from trio_brod.protocol.errors import KafkaError, for_code

__all__ = ["BrokerMetadata", "ClusterMetadata", "PartitionMetadata", "TopicMetadata"]

_NO_TOPIC_ID = uuid.UUID(int=0)


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerMetadata:
    """A broker as the cluster advertises it."""

    node_id: int
    host: str
    port: int
    rack: str | None = None

    @property
    def address(self) -> str:
        """``"host:port"``."""
        return f"{self.host}:{self.port}"


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionMetadata:
    """One partition: its leader (``-1`` while there is none), replicas and in-sync replicas."""

    partition: int
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...] = ()
    error_code: int = 0

    @property
    def error(self) -> KafkaError | None:
        """The partition's error as an exception object, or None."""
        return for_code(self.error_code)() if self.error_code else None


@dataclasses.dataclass(frozen=True, slots=True)
class TopicMetadata:
    """One topic and its partitions, indexed by partition number."""

    name: str
    partitions: Mapping[int, PartitionMetadata]
    topic_id: uuid.UUID = _NO_TOPIC_ID
    is_internal: bool = False
    error_code: int = 0

    @property
    def error(self) -> KafkaError | None:
        """The topic's error as an exception object (e.g. UnknownTopicOrPartitionError)."""
        return for_code(self.error_code)(topic=self.name) if self.error_code else None

    @property
    def partition_count(self) -> int:
        """How many partitions the topic has."""
        return len(self.partitions)


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterMetadata:
    """A Metadata response, as returned by :meth:`trio_brod.Client.get_metadata`."""

    cluster_id: str | None
    controller_id: int
    brokers: Mapping[int, BrokerMetadata]
    topics: Mapping[str, TopicMetadata]

    @classmethod
    def from_response(cls, response: Any) -> ClusterMetadata:
        """Build from a decoded :class:`~trio_brod.protocol.MetadataResponse`."""
        brokers = {
            b.node_id: BrokerMetadata(b.node_id, b.host, b.port, b.rack) for b in response.brokers
        }
        topics = {}
        for t in response.topics:
            partitions = {
                p.partition_index: PartitionMetadata(
                    partition=p.partition_index,
                    leader=p.leader_id,
                    leader_epoch=p.leader_epoch,
                    replicas=tuple(p.replica_nodes),
                    isr=tuple(p.isr_nodes),
                    offline_replicas=tuple(p.offline_replicas),
                    error_code=p.error_code,
                )
                for p in t.partitions
            }
            name = t.name if t.name is not None else str(t.topic_id)
            topics[name] = TopicMetadata(
                name=name,
                partitions=partitions,
                topic_id=t.topic_id,
                is_internal=t.is_internal,
                error_code=t.error_code,
            )
        return cls(
            cluster_id=response.cluster_id,
            controller_id=response.controller_id,
            brokers=brokers,
            topics=topics,
        )
