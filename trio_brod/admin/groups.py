"""Groups: list, describe and delete consumer groups; read and commit their offsets
(Kafka's ListGroups, DescribeGroups, DeleteGroups, OffsetFetch and OffsetCommit).

ListGroups goes to every broker, as each knows only the groups it coordinates; the other
requests go to each group's coordinator, found again whenever it moved or is still loading.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

import trio

from trio_brod._backoff import Retry
from trio_brod._exceptions import BrokerConnectionError
from trio_brod._metadata import BrokerMetadata
from trio_brod._net import Connection
from trio_brod.admin._common import (
    check_names,
    check_partition_key,
    raise_collected,
)
from trio_brod.client import Client
from trio_brod.groups.offsets import (
    COMMIT_MIN_VERSION,
    FETCH_ALL_TOPICS_MIN_VERSION,
    FETCH_MIN_VERSION,
    offset_commit_request,
    offset_fetch_partitions,
    offset_fetch_request,
)
from trio_brod.protocol import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
    DecodeError,
    DeleteGroupsRequest,
    DescribeGroupsRequest,
    ListGroupsRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
)
from trio_brod.protocol.errors import (
    BrodError,
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    KafkaError,
    NotCoordinatorError,
    UnstableOffsetCommitError,
    for_code,
)

__all__ = [
    "CommittedOffset",
    "GroupDescription",
    "GroupListing",
    "MemberDescription",
    "commit_offsets",
    "delete_groups",
    "describe_groups",
    "fetch_committed_offsets",
    "list_groups",
]

_T = TypeVar("_T")

#: The answers that mean "ask again, elsewhere or later": the group's coordinator moved, is
#: loading the group, or is not there yet.
_COORDINATOR_MOVED: Final = (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    NotCoordinatorError,
)
#: Those, and a transactional commit still pending for an offset (the coordinator wants us
#: to ask again).
_ASK_AGAIN: Final = (*_COORDINATOR_MOVED, UnstableOffsetCommitError)


@dataclasses.dataclass(frozen=True, slots=True)
class GroupListing:
    """A group as :func:`list_groups` finds it.

    Attributes:
        group_id: The group's id.
        protocol_type: ``"consumer"`` for Kafka consumers (and simple groups that only
            commit offsets show ``""``), ``"connect"`` for Kafka Connect ...
        state: ``"Stable"``, ``"Empty"``, ``"PreparingRebalance"`` ... from brokers 2.6+
            (ListGroups v4); None from older ones.
        type: ``"classic"`` or ``"consumer"`` (KIP-848) from brokers 3.8+; else None.
        coordinator_id: The node id of the broker coordinating the group.
    """

    group_id: str
    protocol_type: str
    state: str | None
    type: str | None
    coordinator_id: int


@dataclasses.dataclass(frozen=True, slots=True)
class MemberDescription:
    """A member of a group, as :func:`describe_groups` reports it.

    Attributes:
        member_id: The id the coordinator gave the member.
        group_instance_id: The static member id (KIP-345), if the member has one.
        client_id: The member's ``client.id``.
        client_host: The address the member connects from.
        assignment: For ``"consumer"`` groups, the partitions assigned to the member, by
            topic; None for other protocol types, or if the bytes could not be decoded.
        subscription: For ``"consumer"`` groups, the topics the member subscribes to; None
            otherwise.
        metadata: The member's raw protocol metadata (its subscription).
        raw_assignment: The member's raw assignment bytes.
    """

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    assignment: Mapping[str, tuple[int, ...]] | None
    subscription: tuple[str, ...] | None
    metadata: bytes
    raw_assignment: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class GroupDescription:
    """A consumer group, as :func:`describe_groups` reports it.

    Attributes:
        group_id: The group's id.
        state: ``"Stable"``, ``"Empty"``, ``"PreparingRebalance"``, ``"CompletingRebalance"``,
            or ``"Dead"`` for a group that does not exist.
        protocol_type: ``"consumer"`` for Kafka consumers; ``""`` for an empty group.
        protocol: The agreed protocol: the assignor (``"range"``, ``"cooperative-sticky"``)
            for consumer groups, while the group is stable.
        members: The members, while there are any.
        coordinator: The broker coordinating the group.
    """

    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: tuple[MemberDescription, ...]
    coordinator: BrokerMetadata


async def list_groups(client: Client) -> list[GroupListing]:
    """Every group in the cluster (Kafka's ListGroups, asked of every broker).

    Each broker knows the groups it coordinates, so all are asked, at the same time.

    Returns:
        The groups, sorted by id.

    Raises:
        KafkaError: A broker refused (e.g. ClusterAuthorizationFailedError), naming it.
        BrokerConnectionError: A broker could not be reached, within the client's
            ``request_timeout``.
    """
    brokers = list((await client.get_metadata([])).brokers.values())
    found: list[GroupListing] = []

    async def ask(broker: BrokerMetadata) -> None:
        retry = Retry(client.config.request_timeout)
        while True:
            try:
                connection = await client.get_connection(broker.host, broker.port)
                response = await connection.request(
                    ListGroupsRequest(), connection.best_version(ListGroupsRequest)
                )
                code = response.error_code
                if not code:
                    break
                error: BrodError = for_code(code)(node_id=broker.node_id)
            except BrokerConnectionError as exc:
                error = exc
            if not error.retriable or retry.expired:
                raise error
            await retry.wait()
        found.extend(
            GroupListing(
                group_id=g.group_id,
                protocol_type=g.protocol_type,
                state=g.group_state or None,
                type=g.group_type or None,
                coordinator_id=broker.node_id,
            )
            for g in response.groups
        )

    async with trio.open_nursery() as nursery:
        for broker in brokers:
            nursery.start_soon(ask, broker)
    return sorted(found, key=lambda g: g.group_id)


async def _per_group(
    client: Client,
    group_ids: Sequence[str],
    send: Callable[[Connection, list[str]], Awaitable[Mapping[str, _T | KafkaError]]],
) -> tuple[dict[str, tuple[_T, BrokerMetadata]], list[BrodError]]:
    """Send a request for groups to their coordinators; retry what the coordinators say.

    ``send`` asks one coordinator about its groups and returns, per group, a result or the
    error the coordinator answered. Groups whose coordinator moved or is loading, and
    lost connections, are retried (after finding the coordinator again) until the client's
    ``request_timeout``. Returns the results (with the coordinator) and the other errors.
    """
    retry = Retry(client.config.request_timeout)
    pending = list(group_ids)
    results: dict[str, tuple[_T, BrokerMetadata]] = {}
    errors: list[BrodError] = []
    while pending:
        again: dict[str, BrodError] = {}
        by_coordinator: dict[BrokerMetadata, list[str]] = {}
        for group_id in pending:
            try:
                coordinator = await client.get_group_coordinator(group_id)
            except KafkaError as exc:
                errors.append(exc)
                continue
            by_coordinator.setdefault(coordinator, []).append(group_id)
        for coordinator, ids in by_coordinator.items():
            try:
                connection = await client.get_connection(coordinator.host, coordinator.port)
                answers = await send(connection, ids)
            except BrokerConnectionError as exc:
                if not exc.retriable:
                    raise
                again.update((group_id, exc) for group_id in ids)
                continue
            for group_id in ids:
                answer = answers.get(group_id)
                if answer is None:
                    errors.append(
                        KafkaError("the coordinator did not answer for it", group_id=group_id)
                    )
                elif isinstance(answer, KafkaError):
                    if isinstance(answer, _ASK_AGAIN):
                        again[group_id] = answer
                    else:
                        errors.append(answer)
                else:
                    results[group_id] = (answer, coordinator)
        if again and retry.expired:
            for error in again.values():
                if isinstance(error, KafkaError):
                    errors.append(error)
                else:
                    raise error
            break
        pending = list(again)
        if pending:
            await retry.wait()
    return results, errors


async def describe_groups(client: Client, group_ids: Sequence[str]) -> dict[str, GroupDescription]:
    """Describe groups: state, protocol, members and their assignments (DescribeGroups).

    Asks each group's coordinator. Members' assignments of ``"consumer"`` groups are decoded
    (:attr:`MemberDescription.assignment`).

    DescribeGroups knows only classic groups. A group of the KIP-848 consumer protocol
    (``group.protocol=consumer``) comes back as ``"Dead"`` from Kafka 4 (checked with 4.3),
    although it lives: :func:`list_groups` shows it, with ``type="consumer"``.
    :func:`~trio_brod.admin.describe_consumer_groups` (ConsumerGroupDescribe) describes it.

    Returns:
        Each group's description, by id. A group that does not exist is ``"Dead"``.

    Raises:
        GroupAuthorizationFailedError, GroupIdNotFoundError: For that group (and other
            :class:`~trio_brod.KafkaError` subclasses for other refusals).
    """
    ids = check_names(group_ids, "describe_groups")

    async def send(connection: Connection, members: list[str]) -> dict[str, Any]:
        api = DescribeGroupsRequest
        response = await connection.request(api(groups=members), connection.best_version(api))
        return {
            g.group_id: for_code(g.error_code)(group_id=g.group_id) if g.error_code else g
            for g in response.groups
        }

    results, errors = await _per_group(client, ids, send)
    raise_collected(errors, "describe_groups", len(ids))
    return {
        group_id: GroupDescription(
            group_id=g.group_id,
            state=g.group_state,
            protocol_type=g.protocol_type,
            protocol=g.protocol_data,
            members=tuple(_member(m, g.protocol_type) for m in g.members),
            coordinator=coordinator,
        )
        for group_id, (g, coordinator) in results.items()
    }


def _member(member: Any, protocol_type: str) -> MemberDescription:
    assignment = subscription = None
    if protocol_type == "consumer":
        decoded = _decode_versioned(ConsumerProtocolAssignment, member.member_assignment)
        if decoded is not None:
            assignment = {tp.topic: tuple(tp.partitions) for tp in decoded.assigned_partitions}
        joined = _decode_versioned(ConsumerProtocolSubscription, member.member_metadata)
        if joined is not None:
            subscription = tuple(joined.topics)
    return MemberDescription(
        member_id=member.member_id,
        group_instance_id=member.group_instance_id,
        client_id=member.client_id,
        client_host=member.client_host,
        assignment=assignment,
        subscription=subscription,
        metadata=member.member_metadata,
        raw_assignment=member.member_assignment,
    )


_M = TypeVar("_M", ConsumerProtocolAssignment, ConsumerProtocolSubscription)


def _decode_versioned(cls: type[_M], data: bytes) -> _M | None:
    """Decode consumer protocol bytes: an int16 version, then the message in that version.

    The generated classes leave the version prefix to the caller. A member newer than this
    code writes a higher version; its known fields come first, so it is read as our highest
    version, ignoring what follows. No bytes (a member that has not synced yet) is an
    empty assignment. Returns None for bytes that are not the consumer protocol.
    """
    if not data:
        return cls()
    if len(data) < 2:
        return None
    version = int.from_bytes(data[:2], "big", signed=True)
    if version < 0:
        return None
    try:
        message, _end = cls.decode_from(data, 2, min(version, cls.MAX_VERSION))
    except DecodeError:
        return None
    return message


async def delete_groups(client: Client, group_ids: Sequence[str]) -> None:
    """Delete groups and their committed offsets (Kafka's DeleteGroups, to the coordinators).

    Raises:
        NonEmptyGroupError: A group still has members.
        GroupIdNotFoundError: A group does not exist.
    """
    ids = check_names(group_ids, "delete_groups")

    async def send(connection: Connection, members: list[str]) -> dict[str, Any]:
        api = DeleteGroupsRequest
        response = await connection.request(api(groups_names=members), connection.best_version(api))
        return {
            r.group_id: for_code(r.error_code)(group_id=r.group_id) if r.error_code else True
            for r in response.results
        }

    _results, errors = await _per_group(client, ids, send)
    raise_collected(errors, "delete_groups", len(ids))


# ---------------------------------------------------------------------------- committed offsets


@dataclasses.dataclass(frozen=True, slots=True)
class CommittedOffset:
    """An offset committed for a group.

    Attributes:
        offset: The committed offset: the next message the group will consume.
        metadata: The string committed with it.
        leader_epoch: The leader epoch committed with it (KIP-320), if any.
    """

    offset: int
    metadata: str = ""
    leader_epoch: int | None = None


async def fetch_committed_offsets(
    client: Client, group_id: str, topics: Sequence[str] | None = None
) -> dict[tuple[str, int], CommittedOffset]:
    """A group's committed offsets (Kafka's OffsetFetch, to the group's coordinator).

    Args:
        client: An open client.
        group_id: The group.
        topics: Only these topics (all their partitions); None for every topic the group
            has committed offsets for.

    Returns:
        The committed offset of each ``(topic, partition)`` that has one. Partitions
        without a commit are left out.

    Raises:
        GroupAuthorizationFailedError, UnknownTopicOrPartitionError: The coordinator
            refused (or another :class:`~trio_brod.KafkaError` subclass).
    """
    if not isinstance(group_id, str) or not group_id:
        raise TypeError(f"group_id must be a non-empty str, not {group_id!r}")
    wanted: dict[str, list[int]] | None = None
    if topics is not None:
        wanted = {}
        for topic in check_names(topics, "fetch_committed_offsets topics"):
            wanted[topic] = list(range(await client.get_partitions_count_safe(topic)))

    async def send(connection: Connection, ids: list[str]) -> dict[str, Any]:
        # v1 is the first that reads offsets from Kafka (v0: ZooKeeper); "all topics" is v2+.
        version = connection.best_version(
            OffsetFetchRequest,
            min_version=FETCH_MIN_VERSION if wanted is not None else FETCH_ALL_TOPICS_MIN_VERSION,
        )
        request = offset_fetch_request(group_id, wanted, version)
        code, answers = offset_fetch_partitions(await connection.request(request, version))
        if code:
            return {group_id: for_code(code)(group_id=group_id)}
        offsets: dict[tuple[str, int], CommittedOffset] = {}
        for a in answers:
            if a.error_code:
                return {
                    group_id: for_code(a.error_code)(
                        group_id=group_id, topic=a.topic, partition=a.partition
                    )
                }
            if a.offset >= 0:
                offsets[a.topic, a.partition] = CommittedOffset(
                    a.offset, a.metadata or "", a.leader_epoch if a.leader_epoch >= 0 else None
                )
        return {group_id: offsets}

    results, errors = await _per_group(client, [group_id], send)
    raise_collected(errors, "fetch_committed_offsets", 1)
    offsets: dict[tuple[str, int], CommittedOffset] = results[group_id][0]
    return offsets


async def commit_offsets(
    client: Client,
    group_id: str,
    offsets: Mapping[tuple[str, int], int],
    metadata: str = "",
) -> None:
    """Commit offsets for a group that has no members (Kafka's OffsetCommit).

    For tools and for consumers that assign partitions themselves and keep their positions
    in Kafka (brod's ``commit_offsets`` for non-members; Kafka's "simple" consumer groups).
    The commit carries no member id or generation, so the coordinator refuses it while the
    group has active members (UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION): stop the members,
    or commit through the group subscriber instead.

    Args:
        client: An open client.
        group_id: The group.
        offsets: For each ``(topic, partition)``, the offset to commit: the next message
            the group should consume.
        metadata: A string stored with each offset.

    Raises:
        UnknownMemberIdError, IllegalGenerationError: The group has active members.
        UnknownTopicOrPartitionError: A partition does not exist.
        OffsetMetadataTooLargeError: ``metadata`` is over the broker's limit.
    """
    if not isinstance(group_id, str) or not group_id:
        raise TypeError(f"group_id must be a non-empty str, not {group_id!r}")
    by_topic: dict[str, dict[int, tuple[int, str | None]]] = {}
    for key, offset in offsets.items():
        check_partition_key(key, "commit_offsets")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"commit_offsets: {key[0]}[{key[1]}]: bad offset {offset!r}")
        by_topic.setdefault(key[0], {})[key[1]] = (offset, metadata)
    if not by_topic:
        await trio.lowlevel.checkpoint()
        return

    async def send(connection: Connection, ids: list[str]) -> dict[str, Any]:
        version = connection.best_version(OffsetCommitRequest, min_version=COMMIT_MIN_VERSION)
        # generation -1 and no member id (the defaults): a commit from outside the group.
        request = offset_commit_request(group_id, by_topic, version)
        response = await connection.request(request, version)
        failed = [
            for_code(p.error_code)(group_id=group_id, topic=t.name, partition=p.partition_index)
            for t in response.topics
            for p in t.partitions
            if p.error_code
        ]
        for error in failed:
            if isinstance(error, _COORDINATOR_MOVED):
                return {group_id: error}  # the whole commit goes to the new coordinator
        return {group_id: failed}

    results, errors = await _per_group(client, [group_id], send)
    raise_collected(errors, "commit_offsets", 1)
    failed: list[KafkaError] = results[group_id][0]
    raise_collected(failed, "commit_offsets", len(offsets))
