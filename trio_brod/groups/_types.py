"""Shapes the group member shares with its callers: the subscription, listener and callback
types, what an assignor must offer, and the health report (:class:`GroupHealth`)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from trio_brod._cluster import ConnectionPool, MetadataCache
from trio_brod.groups._assigned import AssignedPartition
from trio_brod.groups._membership import TopicPartition
from trio_brod.groups._protocol import MemberAssignment, MemberSubscription
from trio_brod.groups.assignors import resolve_assignor
from trio_brod.protocol.errors import KafkaError, for_code

__all__ = [
    "Assignor",
    "CommittedOffsets",
    "GroupClient",
    "GroupHealth",
    "Listener",
    "PartitionHealth",
    "Topics",
    "group_error",
    "resolve_assignor_spec",
]

#: The subscribed topics: names, or a compiled regular expression matched against every
#: topic's name (internal topics excluded) at each metadata refresh.
Topics = Sequence[str] | re.Pattern[str]
#: A rebalance listener: ``async def on_assigned(partitions)``.
Listener = Callable[[Sequence[AssignedPartition]], Awaitable[None]]
#: ``offset_commit_policy="consumer_managed"``: the application's own committed offsets
#: (brod's ``get_committed_offset``): for each partition, the offset to start at (the next
#: message to consume, as a Kafka commit), or None for ``begin_offset``.
CommittedOffsets = Callable[
    [Sequence[TopicPartition]], Awaitable[Mapping[TopicPartition, int | None]]
]


class Assignor(Protocol):
    """What the member needs of an assignor (``trio_brod.groups.assignors.Assignor``)."""

    @property
    def name(self) -> str: ...

    @property
    def rebalance_protocols(self) -> tuple[str, ...]: ...

    def subscription_user_data(
        self, topics: Sequence[str], owned: Sequence[TopicPartition]
    ) -> bytes | None: ...

    def assign(
        self,
        partitions_per_topic: Mapping[str, int],
        subscriptions: Mapping[str, MemberSubscription],
    ) -> dict[str, MemberAssignment]: ...


def resolve_assignor_spec(spec: object) -> Assignor:
    if isinstance(spec, str):
        return resolve_assignor(spec)
    return spec  # type: ignore[return-value]


@dataclass(frozen=True)
class PartitionHealth:
    """One assigned partition, as :meth:`GroupMember.health` reports it.

    ``position`` is the next offset to commit (last acknowledged + 1), ``committed`` the last
    committed one, ``lag`` the high watermark minus the position (or the committed offset),
    None where unknown.
    """

    position: int | None
    committed: int | None
    lag: int | None


@dataclass(frozen=True)
class GroupHealth:
    """brod's health check: where the member is, and each partition's progress.

    ``state`` is ``"stable"``, ``"rebalancing"``, ``"joining"``, ``"left"`` or ``"failed"``
    (with ``reason``); ``last_heartbeat`` is the Trio clock time of the last heartbeat
    answered without error (None before the first).
    """

    state: str
    reason: str | None
    generation_id: int
    member_id: str
    assignment: frozenset[TopicPartition]
    last_heartbeat: float | None
    partitions: Mapping[TopicPartition, PartitionHealth]


class GroupClient(Protocol):
    """What a group member needs of a :class:`~trio_brod.Client`."""

    @property
    def pool(self) -> ConnectionPool: ...

    @property
    def metadata(self) -> MetadataCache: ...


def group_error(code: int, group_id: str) -> KafkaError | None:
    """The error class of a group response's code, with the group in its context; None for 0."""
    return for_code(code)(group_id=group_id) if code else None
