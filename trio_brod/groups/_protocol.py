"""The consumer protocol's bytes: what members of a group tell each other through the broker.

In a classic group the broker does not look inside the member metadata of a JoinGroup nor
the assignments of a SyncGroup: they are opaque bytes, and their format is a convention of
the clients, Kafka's "consumer" protocol type (Java's ``ConsumerProtocol``). Each is an int16
version followed by a ``ConsumerProtocolSubscription`` or ``ConsumerProtocolAssignment`` of
that version:

* v0: the subscribed topics and the assignor's user data;
* v1: the partitions the member owns now (cooperative rebalancing, KIP-429);
* v2: the generation those partitions were owned in (KIP-792);
* v3: the member's rack (KIP-881).

Any member may be the leader that reads everybody's subscription and writes everybody's
assignment, so a Java member must read what trio-brod writes and the other way round. The
rules here are Java's (``ConsumerProtocol`` in kafka-clients 4.x), checked byte for byte
against it (``tests/group_vectors.py``):

* Writing, the topics are sorted, the owned partitions sorted by topic then partition and
  grouped per topic, a negative generation is written as -1. An assignment's partitions are
  grouped per topic in the order each topic first appears.
* Reading, a version newer than 3 is read as version 3 and whatever follows is ignored (new
  versions only add fields at the end), and so are bytes after a known version's fields, as
  Java's reader leaves them unread. An empty rack is no rack.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from trio_brod.protocol import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
    DecodeError,
    EncodeError,
)

__all__ = [
    "CONSUMER_PROTOCOL_TYPE",
    "HIGHEST_VERSION",
    "MemberAssignment",
    "MemberSubscription",
    "TopicPartition",
    "decode_assignment",
    "decode_subscription",
    "encode_assignment",
    "encode_subscription",
    "java_string_key",
]

#: A partition of a topic, as ``(topic, partition)``.
TopicPartition = tuple[str, int]

#: The JoinGroup ``protocol_type`` of consumer groups.
CONSUMER_PROTOCOL_TYPE = "consumer"

#: The newest consumer protocol version known here, and the one written by default.
HIGHEST_VERSION = 3

_VERSION = struct.Struct(">h")


def java_string_key(text: str) -> bytes:
    """A sort key ordering strings as Java's ``String.compareTo`` does.

    Java compares UTF-16 code units, Python code points: they differ for characters above
    U+FFFF against those from U+E000 to U+FFFF. The big-endian UTF-16 bytes compare as the
    code units do. Kafka sorts topics and member ids this way, and an assignor that is to
    give Java's answer must too.
    """
    return text.encode("utf-16-be", "surrogatepass")


def _tp_key(tp: TopicPartition) -> tuple[bytes, int]:
    return java_string_key(tp[0]), tp[1]


@dataclass(frozen=True)
class MemberSubscription:
    """What one member asks of the group: its topics, and what it owns now.

    ``user_data`` belongs to the assignor (``subscription_user_data``). ``owned_partitions``
    and ``generation_id`` (-1: none) let a sticky assignor keep partitions where they are, and
    the cooperative protocol know what is moving. ``rack_id`` is the member's rack
    (``client.rack``) for rack-aware assignors.

    ``group_instance_id`` is not part of the bytes: the leader learns it from the JoinGroup
    response, as Java's ``Subscription.setGroupInstanceId``, and the range and round-robin
    assignors order static members by it.
    """

    topics: tuple[str, ...]
    user_data: bytes | None = None
    owned_partitions: tuple[TopicPartition, ...] = ()
    generation_id: int = -1
    rack_id: str | None = None
    group_instance_id: str | None = None


@dataclass(frozen=True)
class MemberAssignment:
    """What the leader gives one member: its partitions, and the assignor's user data."""

    partitions: tuple[TopicPartition, ...]
    user_data: bytes | None = None


def _check_version(version: int) -> None:
    if isinstance(version, bool) or not isinstance(version, int):
        raise EncodeError(f"consumer protocol version {version!r}: expected an int")
    if not 0 <= version <= HIGHEST_VERSION:
        raise EncodeError(
            f"consumer protocol version {version}: trio-brod writes versions 0-{HIGHEST_VERSION}"
        )


def encode_subscription(s: MemberSubscription, version: int = HIGHEST_VERSION) -> bytes:
    """The JoinGroup member metadata for ``s``, as Java's ``serializeSubscription``.

    Fields the version does not have are left out (all of them are ignorable).

    Raises:
        EncodeError: The version is not 0-3, or a field cannot be written (a topic name
            longer than 32767 bytes, a partition outside int32...).
    """
    _check_version(version)
    owned: list[ConsumerProtocolSubscription.TopicPartition] = []
    for topic, partition in sorted(s.owned_partitions, key=_tp_key):
        if not owned or owned[-1].topic != topic:
            owned.append(ConsumerProtocolSubscription.TopicPartition(topic=topic))
        owned[-1].partitions.append(partition)
    message = ConsumerProtocolSubscription(
        topics=sorted(s.topics, key=java_string_key),
        user_data=s.user_data,
        owned_partitions=owned,
        generation_id=s.generation_id if s.generation_id >= 0 else -1,
        rack_id=s.rack_id,
    )
    return _VERSION.pack(version) + message.encode(version)


def encode_assignment(a: MemberAssignment, version: int = HIGHEST_VERSION) -> bytes:
    """The SyncGroup assignment for ``a``, as Java's ``serializeAssignment``.

    Raises:
        EncodeError: The version is not 0-3, or a field cannot be written.
    """
    _check_version(version)
    by_topic: dict[str, ConsumerProtocolAssignment.TopicPartition] = {}
    for topic, partition in a.partitions:
        entry = by_topic.get(topic)
        if entry is None:
            entry = by_topic[topic] = ConsumerProtocolAssignment.TopicPartition(topic=topic)
        entry.partitions.append(partition)
    message = ConsumerProtocolAssignment(
        assigned_partitions=list(by_topic.values()), user_data=a.user_data
    )
    return _VERSION.pack(version) + message.encode(version)


def _read_version(data: bytes, what: str) -> int:
    if len(data) < 2:
        raise DecodeError(f"consumer protocol {what}: {len(data)} bytes, too short for a version")
    version: int = _VERSION.unpack_from(data)[0]
    if version < 0:
        raise DecodeError(f"consumer protocol {what}: unsupported version {version}")
    return min(version, HIGHEST_VERSION)


def decode_subscription(data: bytes) -> MemberSubscription:
    """Read a member's JoinGroup metadata, of any version.

    Raises:
        DecodeError: The bytes are truncated or malformed, or the version is negative.
    """
    data = bytes(data)
    version = _read_version(data, "subscription")
    message, _ = ConsumerProtocolSubscription.decode_from(data, 2, version)
    return MemberSubscription(
        topics=tuple(message.topics),
        user_data=message.user_data,
        owned_partitions=tuple(
            (entry.topic, partition)
            for entry in message.owned_partitions
            for partition in entry.partitions
        ),
        generation_id=message.generation_id if message.generation_id >= 0 else -1,
        rack_id=message.rack_id or None,
    )


def decode_assignment(data: bytes) -> MemberAssignment:
    """Read a SyncGroup assignment, of any version.

    Empty bytes are an empty assignment: the broker sends them to a member the leader left
    out of its assignments.

    Raises:
        DecodeError: The bytes are truncated or malformed, or the version is negative.
    """
    data = bytes(data)
    if not data:
        return MemberAssignment(partitions=())
    version = _read_version(data, "assignment")
    message, _ = ConsumerProtocolAssignment.decode_from(data, 2, version)
    return MemberAssignment(
        partitions=tuple(
            (entry.topic, partition)
            for entry in message.assigned_partitions
            for partition in entry.partitions
        ),
        user_data=message.user_data,
    )
