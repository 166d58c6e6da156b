"""The fake cluster's state: brokers, topics, partitions, leaders, replicas. Pure, no I/O.

The admin APIs and the fault-injection calls (move a leader, stop a broker) change this
model; the data APIs read it to find a partition's leader and log. Kafka's rules for names,
partition counts and replication factors are checked here, with the error a real controller
answers.

Leaders: a partition's replicas are assigned round-robin over the brokers (deterministic,
where Kafka starts at a random broker); its leader is its first live replica. Stopping a
broker moves leadership to another live replica, or leaves the partition without a leader
(-1, LEADER_NOT_AVAILABLE) when there is none; each change bumps the partition's leader
epoch, as the KRaft controller does. In-sync replicas are the live replicas: there is one
copy of the data, so no replica ever lags.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from trio_brod.protocol.errors import (
    BrokerNotAvailableError,
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidReplicaAssignmentError,
    InvalidReplicationFactorError,
    InvalidRequestError,
    InvalidTopicError,
    KafkaError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from trio_brod.testing.fake._log import DEFAULT_MAX_MESSAGE_BYTES, PartitionLog

__all__ = ["ClusterModel", "ModelError", "Partition", "Topic"]

_LEGAL_NAME = re.compile(r"[a-zA-Z0-9._-]+")
_MAX_NAME = 249

#: Topic configs a DescribeConfigs shows for every topic (Kafka's defaults), unless set.
TOPIC_DEFAULTS: dict[str, str] = {
    "cleanup.policy": "delete",
    "compression.type": "producer",
    "max.message.bytes": str(DEFAULT_MAX_MESSAGE_BYTES),
    "message.timestamp.type": "CreateTime",
    "min.insync.replicas": "1",
    "retention.bytes": "-1",
    "retention.ms": "604800000",
    "segment.bytes": "1073741824",
}


#: Topic configs whose values are lists: the only ones APPEND and SUBTRACT may change.
LIST_CONFIGS = frozenset(
    {
        "cleanup.policy",
        "leader.replication.throttled.replicas",
        "follower.replication.throttled.replicas",
    }
)
#: IncrementalAlterConfigs's operations.
_SET, _DELETE, _APPEND, _SUBTRACT = range(4)


def _apply_limits(topic: Topic) -> None:
    """Give the topic's partition logs its ``max.message.bytes``."""
    max_bytes = int(topic.config("max.message.bytes") or DEFAULT_MAX_MESSAGE_BYTES)
    for partition in topic.partitions:
        partition.log.max_message_bytes = max_bytes


class ModelError(Exception):
    """A change the cluster refuses, with the Kafka error to answer."""

    def __init__(self, error: type[KafkaError], message: str) -> None:
        super().__init__(message)
        self.error = error


@dataclass
class Partition:
    """One partition: its replicas, its leader (-1: none) and its log."""

    index: int
    replicas: list[int]
    leader: int
    leader_epoch: int = 0
    log: PartitionLog = field(default_factory=PartitionLog)


@dataclass
class Topic:
    """A topic: name, id, partitions and the configs set on it (defaults left out)."""

    name: str
    topic_id: uuid.UUID
    partitions: list[Partition]
    configs: dict[str, str] = field(default_factory=dict)

    def config(self, name: str) -> str | None:
        """The topic's value of a config: set on it, else Kafka's default (None if unknown)."""
        return self.configs.get(name, TOPIC_DEFAULTS.get(name))


def check_topic_name(name: str) -> None:
    """Raise :class:`ModelError` (INVALID_TOPIC_EXCEPTION) for a name Kafka refuses."""
    if not name or len(name) > _MAX_NAME or name in (".", "..") or not _LEGAL_NAME.fullmatch(name):
        raise ModelError(InvalidTopicError, f"{name!r} is not a legal topic name")


@dataclass
class ClusterModel:
    """The brokers and topics of a fake cluster.

    Attributes:
        broker_ids: Every broker's node id, running or not.
        live: The running brokers.
        default_partitions: ``num.partitions``: for auto-created topics and CreateTopics -1.
        default_replication_factor: ``default.replication.factor``, likewise.
    """

    broker_ids: list[int]
    cluster_id: str = "fake-kafka-cluster"
    default_partitions: int = 1
    default_replication_factor: int = 1
    live: set[int] = field(default_factory=set)
    topics: dict[str, Topic] = field(default_factory=dict)
    _next_producer_id: int = 1000
    _by_id: dict[uuid.UUID, Topic] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.live:
            self.live = set(self.broker_ids)

    @property
    def controller_id(self) -> int:
        """The lowest running broker (-1 if none runs)."""
        return min(self.live, default=-1)

    def topic_by_id(self, topic_id: uuid.UUID) -> Topic | None:
        """The topic with this id, if there is one.

        Fetch (v13+) names topics by id: an index keeps that lookup from scanning every
        topic, which a fake holding a topic per hypothesis example would do on each fetch.
        ``topics`` stays the one source of truth: :meth:`create_topic` and
        :meth:`delete_topic` keep the index, and a hit is checked against ``topics``.
        """
        topic = self._by_id.get(topic_id)
        if topic is not None and self.topics.get(topic.name) is topic:
            return topic
        if topic is not None or len(self._by_id) != len(self.topics):
            # Out of date (``topics`` changed other than through create/delete_topic).
            self._by_id = {t.topic_id: t for t in self.topics.values()}
            topic = self._by_id.get(topic_id)
        return topic

    def partition(self, topic: str, index: int) -> Partition:
        """A partition, or :class:`ModelError` (UNKNOWN_TOPIC_OR_PARTITION)."""
        found = self.topics.get(topic)
        if found is None or not 0 <= index < len(found.partitions):
            raise ModelError(UnknownTopicOrPartitionError, f"{topic}-{index} does not exist")
        return found.partitions[index]

    # -- topics --------------------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        partitions: int = -1,
        replication_factor: int = -1,
        configs: dict[str, str] | None = None,
        assignments: dict[int, list[int]] | None = None,
        *,
        validate_only: bool = False,
    ) -> Topic:
        """Create a topic as CreateTopics does (-1: the broker's default count/factor).

        Raises:
            ModelError: With Kafka's error for a bad or taken name, count or factor.
        """
        check_topic_name(name)
        if name in self.topics:
            raise ModelError(TopicAlreadyExistsError, f"topic {name!r} already exists")
        if assignments:
            if partitions != -1 or replication_factor != -1:
                raise ModelError(
                    InvalidRequestError,
                    "give either replica assignments or a count and a factor, not both",
                )
            replicas = [assignments[i] for i in sorted(assignments)]
            if sorted(assignments) != list(range(len(assignments))):
                raise ModelError(InvalidReplicaAssignmentError, "partitions must be 0..n-1")
            for brokers in replicas:
                self._check_assignment(brokers)
        else:
            count = self.default_partitions if partitions == -1 else partitions
            factor = (
                self.default_replication_factor if replication_factor == -1 else replication_factor
            )
            if count <= 0:
                raise ModelError(InvalidPartitionsError, "the number of partitions must be > 0")
            if factor <= 0:
                raise ModelError(
                    InvalidReplicationFactorError, "the replication factor must be > 0"
                )
            if factor > len(self.live):
                raise ModelError(
                    InvalidReplicationFactorError,
                    f"replication factor {factor} is larger than the {len(self.live)} "
                    f"available brokers",
                )
            replicas = [self._assign(i, factor) for i in range(count)]
        topic = Topic(
            name,
            uuid.uuid4(),
            [Partition(i, r, self._first_live(r)) for i, r in enumerate(replicas)],
            dict(configs or {}),
        )
        _apply_limits(topic)
        if not validate_only:
            self.topics[name] = topic
            self._by_id[topic.topic_id] = topic
        return topic

    def alter_topic_configs(
        self,
        name: str,
        changes: list[tuple[str, int, str | None]],
        *,
        validate_only: bool = False,
    ) -> None:
        """Change a topic's configs as IncrementalAlterConfigs does: each change is (config,
        operation, value), the operation SET (0), DELETE (1: back to the default), APPEND
        (2) or SUBTRACT (3), the last two only for list configs. All apply, or none.

        Raises:
            ModelError: UNKNOWN_TOPIC_OR_PARTITION; INVALID_REQUEST for a config named twice
                or an unknown operation; INVALID_CONFIG for APPEND or SUBTRACT on a config
                that is not a list, or a ``max.message.bytes`` that is not a number.
        """
        topic = self.topics.get(name)
        if topic is None:
            raise ModelError(UnknownTopicOrPartitionError, f"topic {name!r} does not exist")
        if len({key for key, _op, _value in changes}) != len(changes):
            raise ModelError(InvalidRequestError, "a config is altered twice in one request")
        configs = dict(topic.configs)
        for key, op, value in changes:
            if op == _SET:
                configs[key] = value or ""
            elif op == _DELETE:
                configs.pop(key, None)
            elif op in (_APPEND, _SUBTRACT):
                if key not in LIST_CONFIGS:
                    raise ModelError(
                        InvalidConfigError, f"{key!r} is not a list: it can only be set"
                    )
                items = (configs.get(key, TOPIC_DEFAULTS.get(key)) or "").split(",")
                given = [v for v in (value or "").split(",") if v]
                if op == _APPEND:
                    items += [v for v in given if v not in items]
                else:
                    items = [v for v in items if v not in given]
                configs[key] = ",".join(v for v in items if v)
            else:
                raise ModelError(InvalidRequestError, f"unknown config operation {op}")
        max_bytes = configs.get("max.message.bytes", str(DEFAULT_MAX_MESSAGE_BYTES))
        if not max_bytes.isdigit():
            raise ModelError(InvalidConfigError, f"max.message.bytes={max_bytes!r} is not a size")
        if validate_only:
            return
        topic.configs = configs
        _apply_limits(topic)

    def delete_topic(self, name: str) -> Topic:
        """Delete a topic (UNKNOWN_TOPIC_OR_PARTITION if there is none)."""
        topic = self.topics.pop(name, None)
        if topic is None:
            raise ModelError(UnknownTopicOrPartitionError, f"topic {name!r} does not exist")
        self._by_id.pop(topic.topic_id, None)
        return topic

    def create_partitions(
        self,
        name: str,
        count: int,
        assignments: list[list[int]] | None = None,
        *,
        validate_only: bool = False,
    ) -> None:
        """Grow a topic to *count* partitions (INVALID_PARTITIONS unless it grows).

        *assignments*, if not None, places each new partition (one broker list per new
        partition, INVALID_REPLICA_ASSIGNMENT otherwise; an empty list is not None).
        """
        topic = self.topics.get(name)
        if topic is None:
            raise ModelError(UnknownTopicOrPartitionError, f"topic {name!r} does not exist")
        current = len(topic.partitions)
        if count <= current:
            raise ModelError(
                InvalidPartitionsError,
                f"topic {name!r} has {current} partitions; the new count must be larger, "
                f"not {count}",
            )
        if assignments is not None:
            if len(assignments) != count - current:
                raise ModelError(
                    InvalidReplicaAssignmentError,
                    f"increasing the number of partitions by {count - current} but "
                    f"{len(assignments)} assignments provided",
                )
            for brokers in assignments:
                self._check_assignment(brokers)
        if validate_only:
            return
        factor = len(topic.partitions[0].replicas)
        for index in range(current, count):
            replicas = (
                list(assignments[index - current])
                if assignments is not None
                else self._assign(index, factor)
            )
            topic.partitions.append(Partition(index, replicas, self._first_live(replicas)))

    def _assign(self, index: int, factor: int) -> list[int]:
        ids = sorted(self.live) or sorted(self.broker_ids)
        return [ids[(index + k) % len(ids)] for k in range(factor)]

    def _check_assignment(self, brokers: list[int]) -> None:
        if not brokers or len(set(brokers)) != len(brokers):
            raise ModelError(InvalidReplicaAssignmentError, f"bad replica list {brokers}")
        unknown = set(brokers) - set(self.broker_ids)
        if unknown:
            raise ModelError(InvalidReplicaAssignmentError, f"unknown brokers {sorted(unknown)}")

    def _first_live(self, replicas: list[int]) -> int:
        return next((b for b in replicas if b in self.live), -1)

    # -- leaders and brokers -------------------------------------------------------------

    def move_leader(self, topic: str, index: int, broker: int | None = None) -> int:
        """Make *broker* (default: the next live replica) the leader; returns the new leader.

        A broker that is not yet a replica becomes one, as a reassignment would make it.
        """
        partition = self.partition(topic, index)
        if broker is None:
            candidates = [b for b in partition.replicas if b in self.live and b != partition.leader]
            if not candidates:
                candidates = [b for b in sorted(self.live) if b != partition.leader]
            if not candidates:
                raise ModelError(BrokerNotAvailableError, "no other running broker to lead")
            broker = candidates[0]
        if broker not in self.live:
            raise ModelError(BrokerNotAvailableError, f"broker {broker} is not running")
        if broker not in partition.replicas:
            partition.replicas.append(broker)
        partition.leader = broker
        partition.leader_epoch += 1
        return broker

    def stop_broker(self, broker: int) -> None:
        """Mark a broker stopped and move its partitions' leadership away."""
        self.live.discard(broker)
        for topic in self.topics.values():
            for partition in topic.partitions:
                if partition.leader == broker:
                    partition.leader = self._first_live(partition.replicas)
                    partition.leader_epoch += 1

    def start_broker(self, broker: int) -> None:
        """Mark a broker running; partitions without a leader that it replicates get it."""
        self.live.add(broker)
        for topic in self.topics.values():
            for partition in topic.partitions:
                if partition.leader == -1 and broker in partition.replicas:
                    partition.leader = broker
                    partition.leader_epoch += 1

    def new_producer_id(self) -> int:
        """A producer id never handed out before (InitProducerId)."""
        self._next_producer_id += 1
        return self._next_producer_id
