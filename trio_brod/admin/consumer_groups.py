"""KIP-848 consumer groups: :func:`describe_consumer_groups` (ConsumerGroupDescribe).

Groups of the ``consumer`` protocol (``GroupConfig(group_protocol="consumer")``, Java's and
librdkafka's ``group.protocol=consumer``) are not known to DescribeGroups: Kafka 4 answers
them as ``"Dead"``. ConsumerGroupDescribe reports what such a group is made of instead: its
epochs, the broker-side assignor, and each member's epoch, subscription, current assignment
and target assignment (what it is reconciling towards; the two differ while partitions
move).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from trio_brod._metadata import BrokerMetadata
from trio_brod._net import Connection
from trio_brod.admin._common import check_names, raise_collected
from trio_brod.admin.groups import _per_group
from trio_brod.client import Client
from trio_brod.protocol import ConsumerGroupDescribeRequest
from trio_brod.protocol.errors import for_code

__all__ = ["ConsumerGroupDescription", "ConsumerMemberDescription", "describe_consumer_groups"]


@dataclasses.dataclass(frozen=True, slots=True)
class ConsumerMemberDescription:
    """A member of a KIP-848 consumer group.

    Attributes:
        member_id: The member's id.
        instance_id: The static member's ``group_instance_id``, if any.
        rack_id: The member's rack, if it gave one.
        member_epoch: The member's epoch (it reaches the group's assignment epoch once it
            has reconciled).
        client_id: The member's ``client.id``.
        client_host: The address the member connects from.
        subscribed_topic_names: The topics it subscribes to by name.
        subscribed_topic_regex: Its server-side regular expression, if it gave one.
        assignment: The partitions it owns now, by topic name.
        target_assignment: The partitions the assignor gave it, by topic name.
    """

    member_id: str
    instance_id: str | None
    rack_id: str | None
    member_epoch: int
    client_id: str
    client_host: str
    subscribed_topic_names: tuple[str, ...]
    subscribed_topic_regex: str | None
    assignment: Mapping[str, tuple[int, ...]]
    target_assignment: Mapping[str, tuple[int, ...]]


@dataclasses.dataclass(frozen=True, slots=True)
class ConsumerGroupDescription:
    """A KIP-848 consumer group, as :func:`describe_consumer_groups` reports it.

    Attributes:
        group_id: The group's id.
        state: ``"Empty"``, ``"Assigning"``, ``"Reconciling"``, ``"Stable"`` or ``"Dead"``.
        group_epoch: Bumped at each change of membership or subscriptions.
        assignment_epoch: The epoch of the target assignment last computed.
        assignor_name: The broker-side assignor that computed it (``"uniform"``...).
        members: The members.
        coordinator: The broker coordinating the group.
    """

    group_id: str
    state: str
    group_epoch: int
    assignment_epoch: int
    assignor_name: str
    members: tuple[ConsumerMemberDescription, ...]
    coordinator: BrokerMetadata


async def describe_consumer_groups(
    client: Client, group_ids: Sequence[str]
) -> dict[str, ConsumerGroupDescription]:
    """Describe KIP-848 consumer groups (ConsumerGroupDescribe, Kafka 4.0+).

    Asks each group's coordinator (found again if it moved, as :func:`describe_groups`).

    Returns:
        Each group's description, by id.

    Raises:
        GroupIdNotFoundError: The group does not exist, or is a classic group (describe
            that with :func:`~trio_brod.admin.describe_groups`).
        KafkaError: Another refusal (GroupAuthorizationFailedError ...); several failed
            groups raise an exception group.
        UnsupportedVersion: The broker lacks ConsumerGroupDescribe (before Kafka 4.0).
    """
    ids = check_names(group_ids, "describe_consumer_groups")

    async def send(connection: Connection, wanted: list[str]) -> dict[str, Any]:
        api = ConsumerGroupDescribeRequest
        response = await connection.request(api(group_ids=wanted), connection.best_version(api))
        return {
            g.group_id: for_code(g.error_code)(g.error_message or "", group_id=g.group_id)
            if g.error_code
            else g
            for g in response.groups
        }

    results, errors = await _per_group(client, ids, send)
    raise_collected(errors, "describe_consumer_groups", len(ids))
    return {
        group_id: ConsumerGroupDescription(
            group_id=g.group_id,
            state=g.group_state,
            group_epoch=g.group_epoch,
            assignment_epoch=g.assignment_epoch,
            assignor_name=g.assignor_name,
            members=tuple(_member(m) for m in g.members),
            coordinator=coordinator,
        )
        for group_id, (g, coordinator) in results.items()
    }


def _member(m: Any) -> ConsumerMemberDescription:
    return ConsumerMemberDescription(
        member_id=m.member_id,
        instance_id=m.instance_id,
        rack_id=m.rack_id,
        member_epoch=m.member_epoch,
        client_id=m.client_id,
        client_host=m.client_host,
        subscribed_topic_names=tuple(m.subscribed_topic_names),
        subscribed_topic_regex=m.subscribed_topic_regex,
        assignment=_by_name(m.assignment),
        target_assignment=_by_name(m.target_assignment),
    )


def _by_name(assignment: Any) -> dict[str, tuple[int, ...]]:
    return {
        tp.topic_name: tuple(sorted(tp.partitions))
        for tp in sorted(assignment.topic_partitions, key=lambda tp: tp.topic_name)
    }
