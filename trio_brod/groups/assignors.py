"""Partition assignors: how the group leader shares the partitions out among the members.

In a classic group one member, the leader, receives every member's subscription and decides
who consumes what; so every member must run an assignor all the others accept, and mixed
groups of Java, librdkafka and trio-brod members are only correct if each computes what the
others would. The assignors here are Java's, given the same answer for the same input
(checked against kafka-clients 4.3.1, ``tests/group_vectors.py``):

``"range"``
    Per topic, the members subscribed to it in order (static members first, by group
    instance id, then by member id) each take a contiguous range; the first
    ``partitions % members`` take one more. Co-partitioned topics land together, but with
    many topics the first members get more in total.
``"roundrobin"``
    Every subscribed partition, by topic then partition, dealt out to the members in the
    same order, skipping members not subscribed to its topic.
``"cooperative-sticky"``
    As balanced as possible while keeping as many partitions as possible where they are
    (Java's ``AbstractStickyAssignor``), then the cooperative rule (KIP-429): a partition
    that changes owner is taken from its old owner in this generation and given to the new
    one only in the next, once the old owner has revoked it and rejoined. So no partition has
    two owners, and partitions that do not move never stop.

Rack-aware assignment (KIP-881) needs each partition's replica racks, which the
``partitions_per_topic`` counts do not carry; these assignors do what Java does when the
partitions have no racks (the rack-unaware algorithm), whatever the members' ``rack_id``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Protocol, runtime_checkable

from trio_brod._exceptions import ConfigError
from trio_brod.groups._protocol import (
    MemberAssignment,
    MemberSubscription,
    TopicPartition,
    java_string_key,
)
from trio_brod.groups._sticky import sticky_assign

__all__ = [
    "ASSIGNOR_NAMES",
    "Assignor",
    "CooperativeStickyAssignor",
    "RangeAssignor",
    "RoundRobinAssignor",
    "resolve_assignor",
]

_INT32 = struct.Struct(">i")


@runtime_checkable
class Assignor(Protocol):
    """What the group leader runs to assign partitions; write one to plug in your own.

    ``name`` is the protocol name announced in JoinGroup; the group uses the first name in
    the members' preference lists that all of them support. ``rebalance_protocols`` is
    ``("eager",)`` for an assignor that may move a partition straight from one member to
    another (every member then revokes everything before rejoining), or
    ``("cooperative", "eager")`` for one that never does (see
    :class:`CooperativeStickyAssignor`).
    """

    name: str
    rebalance_protocols: tuple[str, ...]

    def subscription_user_data(
        self, topics: Collection[str], owned: Collection[TopicPartition]
    ) -> bytes | None:
        """The user data this member puts in its subscription (None: none)."""
        ...

    def assign(
        self,
        partitions_per_topic: Mapping[str, int],
        subscriptions: Mapping[str, MemberSubscription],
    ) -> dict[str, MemberAssignment]:
        """Assign the partitions of ``partitions_per_topic`` (topic: partition count) to the
        members of ``subscriptions`` (member id: subscription, in the JoinGroup response's
        order). Every member gets an entry, empty or not."""
        ...


def _topic_partitions(
    partitions_per_topic: Mapping[str, int], subscriptions: Mapping[str, MemberSubscription]
) -> dict[str, int]:
    """The topics to assign: subscribed by someone and known with at least one partition,
    as Java's ``AbstractPartitionAssignor`` hands them to its assignors."""
    subscribed = {topic for s in subscriptions.values() for topic in s.topics}
    return {
        topic: count
        for topic, count in partitions_per_topic.items()
        if topic in subscribed and count > 0
    }


def _member_order_key(
    subscriptions: Mapping[str, MemberSubscription],
) -> Callable[[str], tuple[int, bytes]]:
    """Java's ``MemberInfo`` order: static members first, by group instance id, then the
    dynamic ones by member id."""

    def key(member_id: str) -> tuple[int, bytes]:
        instance_id = subscriptions[member_id].group_instance_id
        if instance_id is not None:
            return 0, java_string_key(instance_id)
        return 1, java_string_key(member_id)

    return key


def _tp_sort_key(tp: TopicPartition) -> tuple[bytes, int]:
    return java_string_key(tp[0]), tp[1]


def _result(assignment: Mapping[str, Iterable[TopicPartition]]) -> dict[str, MemberAssignment]:
    return {
        member: MemberAssignment(partitions=tuple(sorted(partitions, key=_tp_sort_key)))
        for member, partitions in assignment.items()
    }


class RangeAssignor:
    """Java's ``RangeAssignor`` (``"range"``), eager; see the module's docstring."""

    name: str = "range"
    rebalance_protocols: tuple[str, ...] = ("eager",)

    def subscription_user_data(
        self, topics: Collection[str], owned: Collection[TopicPartition]
    ) -> bytes | None:
        """None: the range assignor needs no user data."""
        return None

    def assign(
        self,
        partitions_per_topic: Mapping[str, int],
        subscriptions: Mapping[str, MemberSubscription],
    ) -> dict[str, MemberAssignment]:
        """Per topic, contiguous ranges to its members in order."""
        topics = _topic_partitions(partitions_per_topic, subscriptions)
        order = _member_order_key(subscriptions)
        assignment: dict[str, list[TopicPartition]] = {member: [] for member in subscriptions}
        for topic, count in topics.items():
            members = sorted(
                {member for member, s in subscriptions.items() if topic in s.topics}, key=order
            )
            share, extra = divmod(count, len(members))
            start = 0
            for index, member in enumerate(members):
                length = share + (1 if index < extra else 0)
                assignment[member].extend((topic, p) for p in range(start, start + length))
                start += length
        return _result(assignment)


class RoundRobinAssignor:
    """Java's ``RoundRobinAssignor`` (``"roundrobin"``), eager; see the module's docstring."""

    name: str = "roundrobin"
    rebalance_protocols: tuple[str, ...] = ("eager",)

    def subscription_user_data(
        self, topics: Collection[str], owned: Collection[TopicPartition]
    ) -> bytes | None:
        """None: the round-robin assignor needs no user data."""
        return None

    def assign(
        self,
        partitions_per_topic: Mapping[str, int],
        subscriptions: Mapping[str, MemberSubscription],
    ) -> dict[str, MemberAssignment]:
        """All partitions by topic then partition, dealt to the members in turn, skipping
        those not subscribed to the partition's topic."""
        topics = _topic_partitions(partitions_per_topic, subscriptions)
        members = sorted(subscriptions, key=_member_order_key(subscriptions))
        subscribed = {member: frozenset(subscriptions[member].topics) for member in members}
        assignment: dict[str, list[TopicPartition]] = {member: [] for member in subscriptions}
        turn = 0
        for topic in sorted(topics, key=java_string_key):
            for partition in range(topics[topic]):
                while topic not in subscribed[members[turn]]:
                    turn = (turn + 1) % len(members)
                assignment[members[turn]].append((topic, partition))
                turn = (turn + 1) % len(members)
        return _result(assignment)


class CooperativeStickyAssignor:
    """Java's ``CooperativeStickyAssignor`` (``"cooperative-sticky"``); see the module's
    docstring.

    Like Java's, it is told each generation it joined (:meth:`on_assignment`) and puts the
    last one in its subscription's user data as an int32 (-1 before the first), for leaders
    older than Kafka 3.4 that do not read the subscription's own generation field (v2).
    """

    name: str = "cooperative-sticky"
    rebalance_protocols: tuple[str, ...] = ("cooperative", "eager")

    def __init__(self) -> None:
        self._generation = -1

    def on_assignment(self, assignment: MemberAssignment, generation_id: int) -> None:
        """Remember the generation of the assignment just received (Java's
        ``onAssignment``), for the next subscription's user data."""
        self._generation = generation_id

    def subscription_user_data(
        self, topics: Collection[str], owned: Collection[TopicPartition]
    ) -> bytes | None:
        """The generation of the last assignment, as an int32, as Java writes it."""
        return _INT32.pack(self._generation)

    def assign(
        self,
        partitions_per_topic: Mapping[str, int],
        subscriptions: Mapping[str, MemberSubscription],
    ) -> dict[str, MemberAssignment]:
        """The sticky assignment, less the partitions changing owner (see the class)."""
        topics = _topic_partitions(partitions_per_topic, subscriptions)
        assignment, transferring = sticky_assign(topics, subscriptions)
        if transferring is None:
            transferring = _partitions_changing_owner(subscriptions, assignment)
        for partition, new_owner in transferring.items():
            assignment[new_owner].remove(partition)
        return _result(assignment)


def _partitions_changing_owner(
    subscriptions: Mapping[str, MemberSubscription],
    assignment: Mapping[str, list[TopicPartition]],
) -> dict[TopicPartition, str]:
    """The partitions given to a member that did not own them and taken from one that did,
    with their new owner."""
    added: dict[TopicPartition, str] = {}
    revoked: set[TopicPartition] = set()
    for member, partitions in assignment.items():
        owned = set(subscriptions[member].owned_partitions)
        now = set(partitions)
        added.update((tp, member) for tp in partitions if tp not in owned)
        revoked.update(owned - now)
    return {tp: member for tp, member in added.items() if tp in revoked}


#: The assignors known by name, as ``partition_assignment_strategy`` takes them.
ASSIGNOR_NAMES: tuple[str, ...] = ("cooperative-sticky", "range", "roundrobin")

_BY_NAME: dict[str, Callable[[], Assignor]] = {
    "cooperative-sticky": CooperativeStickyAssignor,
    "range": RangeAssignor,
    "roundrobin": RoundRobinAssignor,
}


def resolve_assignor(spec: str | Assignor) -> Assignor:
    """The assignor for a ``partition_assignment_strategy`` value: a new one for a name of
    :data:`ASSIGNOR_NAMES`, or the given object if it is an :class:`Assignor`.

    Raises:
        ConfigError: An unknown name, or an object that is not an assignor.
    """
    if isinstance(spec, str):
        factory = _BY_NAME.get(spec)
        if factory is None:
            raise ConfigError(
                f"partition_assignment_strategy: unknown assignor {spec!r} "
                f"(expected one of {', '.join(ASSIGNOR_NAMES)}, or an Assignor object)"
            )
        return factory()
    if isinstance(spec, Assignor) and isinstance(getattr(spec, "name", None), str):
        return spec
    raise ConfigError(
        f"partition_assignment_strategy: {spec!r} is not an assignor (expected one of "
        f"{', '.join(ASSIGNOR_NAMES)}, or an object with name, rebalance_protocols, "
        "subscription_user_data and assign)"
    )
