"""Committed offsets: commit a group's positions to its coordinator, and read them back.

Kafka's OffsetCommit and OffsetFetch, for group members (with their generation and member
id) and for "simple" groups that only keep offsets (generation -1, no member id). The
requests go through a :class:`~trio_brod.groups._coordinator.GroupCoordinator`, which
follows the coordinator when it moves. The request builders and the reading of OffsetFetch's
two response shapes are public too: :mod:`trio_brod.admin.groups` uses them, so that the
wire format of both is written once.

A committed offset is the *next* message to consume, as everywhere in Kafka: after handling
offset 41, commit 42.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeAlias

import trio

from trio_brod._backoff import Retry
from trio_brod._util import ms_up
from trio_brod.groups._coordinator import GroupCoordinator
from trio_brod.observe import _hooks as observe
from trio_brod.protocol import OffsetCommitRequest, OffsetFetchRequest
from trio_brod.protocol.errors import UnstableOffsetCommitError, for_code

__all__ = [
    "CommitValue",
    "FetchedOffset",
    "TopicPartition",
    "check_commit_offsets",
    "commit_offsets",
    "commit_versions",
    "fetch_committed",
    "offset_commit_request",
    "offset_fetch_partitions",
    "offset_fetch_request",
]

TopicPartition: TypeAlias = tuple[str, int]
#: What is committed for a partition: the offset, or the offset and a metadata string.
CommitValue: TypeAlias = int | tuple[int, str | None]

#: Kafka 4 speaks OffsetCommit from v2 and OffsetFetch from v1 (the first versions that keep
#: offsets in Kafka rather than ZooKeeper); OffsetFetch for every topic needs v2.
COMMIT_MIN_VERSION: Final = 2
FETCH_MIN_VERSION: Final = 1
FETCH_ALL_TOPICS_MIN_VERSION: Final = 2
#: The first OffsetCommit a KIP-848 consumer group takes (with the member epoch).
MEMBER_EPOCH_COMMIT_VERSION: Final = 9
#: The versions of OffsetCommit that carry a retention time (v5 dropped it, KIP-211).
_RETENTION_VERSIONS: Final = range(2, 5)
#: The first OffsetCommit that carries a group instance id (KIP-345).
_INSTANCE_ID_VERSION: Final = 7
#: The first OffsetFetch that can ask for stable offsets only (KIP-447), and the first
#: that puts groups in an array (KIP-709).
_REQUIRE_STABLE_VERSION: Final = 7
_GROUPS_VERSION: Final = 8


# ---------------------------------------------------------------------------- OffsetCommit


def check_commit_offsets(
    offsets: Mapping[TopicPartition, CommitValue], what: str
) -> dict[str, dict[int, tuple[int, str | None]]]:
    """``offsets`` checked and grouped by topic: ``{topic: {partition: (offset, metadata)}}``.

    Raises:
        TypeError: A key is not ``(topic, partition)`` or a value not an offset (with
            metadata); the message starts with ``what``.
        ValueError: A negative offset or partition.
    """
    by_topic: dict[str, dict[int, tuple[int, str | None]]] = {}
    for key, value in offsets.items():
        if not (
            isinstance(key, tuple)
            and len(key) == 2
            and isinstance(key[0], str)
            and key[0]
            and isinstance(key[1], int)
            and not isinstance(key[1], bool)
        ):
            raise TypeError(f"{what}: keys must be (topic, partition), not {key!r}")
        offset, metadata = value if isinstance(value, tuple) else (value, "")
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise TypeError(f"{what}: {key[0]}[{key[1]}]: bad offset {value!r}")
        if metadata is not None and not isinstance(metadata, str):
            raise TypeError(f"{what}: {key[0]}[{key[1]}]: metadata must be a str or None")
        if key[1] < 0:
            raise ValueError(f"{what}: {key!r}: a partition is >= 0")
        if offset < 0:
            raise ValueError(f"{what}: {key[0]}[{key[1]}]: bad offset {offset!r}")
        by_topic.setdefault(key[0], {})[key[1]] = (offset, metadata)
    return by_topic


def offset_commit_request(
    group_id: str,
    by_topic: Mapping[str, Mapping[int, tuple[int, str | None]]],
    version: int,
    *,
    generation_id: int = -1,
    member_id: str = "",
    group_instance_id: str | None = None,
    retention_ms: int = -1,
) -> OffsetCommitRequest:
    """An OffsetCommit request in the shape ``version`` can carry.

    The group instance id goes only where the version has it (v7+); a retention time only
    where it has that (v2-v4). Pick the version with :func:`commit_versions`.
    """
    api = OffsetCommitRequest
    return api(
        group_id=group_id,
        generation_id_or_member_epoch=generation_id,
        member_id=member_id,
        group_instance_id=group_instance_id if version >= _INSTANCE_ID_VERSION else None,
        retention_time_ms=retention_ms if version in _RETENTION_VERSIONS else -1,
        topics=[
            api.OffsetCommitRequestTopic(
                name=topic,
                partitions=[
                    api.OffsetCommitRequestPartition(
                        partition_index=partition,
                        committed_offset=offset,
                        committed_metadata=metadata,
                    )
                    for partition, (offset, metadata) in partitions.items()
                ],
            )
            for topic, partitions in by_topic.items()
        ],
    )


def commit_versions(retention_ms: int) -> tuple[int, int]:
    """The OffsetCommit versions to choose from: any from v2, or v2-v4 to carry a retention."""
    if retention_ms >= 0:
        return _RETENTION_VERSIONS[0], _RETENTION_VERSIONS[-1]
    return COMMIT_MIN_VERSION, OffsetCommitRequest.MAX_STABLE_VERSION


async def commit_offsets(
    coordinator: GroupCoordinator,
    group_id: str,
    offsets: Mapping[TopicPartition, CommitValue],
    *,
    generation_id: int = -1,
    member_id: str = "",
    group_instance_id: str | None = None,
    retention: float | None = None,
    member_epoch: bool = False,
) -> None:
    """Commit offsets for a group (OffsetCommit, highest version both sides speak).

    A member commits with its generation and member id (and a static member with its
    instance id); the coordinator refuses a commit from a generation that is over, which is
    how stale commits are kept out. Generation -1 with no member id is a "simple" commit,
    from outside any membership, which the coordinator takes only while the group has no
    members.

    Args:
        coordinator: The group's coordinator.
        group_id: The group.
        offsets: For each ``(topic, partition)``, the offset to commit (the next message to
            consume), or ``(offset, metadata)`` to store a string with it.
        generation_id: The member's generation; -1 for a simple commit.
        member_id: The member's id; ``""`` for a simple commit.
        group_instance_id: A static member's instance id (KIP-345); sent where the version
            has it (v7+).
        retention: Seconds to keep the offsets once the group is empty; None for the
            broker's ``offsets.retention.minutes``. Only OffsetCommit v2-v4 carry it, so
            the commit is sent as v4 at most (and without the instance id).
        member_epoch: ``generation_id`` is a KIP-848 member epoch: the commit is sent as
            v9+ (the first version a ``consumer`` group takes), or not at all.

    Raises:
        IllegalGenerationError: The generation is over (a rebalance happened).
        UnknownMemberIdError: The coordinator does not know the member (evicted), or the
            group has members and this was a simple commit.
        RebalanceInProgressError: The group is rebalancing; commit again after rejoining.
        FencedInstanceIdError: Another member took the instance id.
        KafkaError: Another refusal, as the first failed partition's error class, with the
            group, topic and partition in its context.
    """
    by_topic = check_commit_offsets(offsets, "commit_offsets")
    retention_ms = -1
    if retention is not None:
        if isinstance(retention, bool) or not retention > 0 or math.isinf(retention):
            raise ValueError(f"commit_offsets: retention must be seconds > 0, not {retention!r}")
        retention_ms = ms_up(retention)
    if not by_topic:
        await trio.lowlevel.checkpoint()
        return
    started = time.perf_counter()
    try:
        await _commit(
            coordinator,
            group_id,
            by_topic,
            retention_ms,
            generation_id,
            member_id,
            group_instance_id,
            member_epoch,
        )
    except Exception as exc:
        observe.committed(observe.hooks_of(coordinator.pool), group_id, len(offsets), started, exc)
        raise
    observe.committed(observe.hooks_of(coordinator.pool), group_id, len(offsets), started, None)


async def _commit(
    coordinator: GroupCoordinator,
    group_id: str,
    by_topic: Any,
    retention_ms: int,
    generation_id: int,
    member_id: str,
    group_instance_id: str | None,
    member_epoch: bool,
) -> None:
    low, high = commit_versions(retention_ms)
    if member_epoch:
        low = max(low, MEMBER_EPOCH_COMMIT_VERSION)
    response = await coordinator.request_versioned(
        OffsetCommitRequest,
        lambda version: offset_commit_request(
            group_id,
            by_topic,
            version,
            generation_id=generation_id,
            member_id=member_id,
            group_instance_id=group_instance_id,
            retention_ms=retention_ms,
        ),
        min_version=low,
        max_version=high,
    )
    for topic in response.topics:
        for partition in topic.partitions:
            if partition.error_code:
                raise for_code(partition.error_code)(
                    group_id=group_id, topic=topic.name, partition=partition.partition_index
                )


# ---------------------------------------------------------------------------- OffsetFetch


@dataclasses.dataclass(frozen=True, slots=True)
class FetchedOffset:
    """One partition of an OffsetFetch answer, in either of its shapes.

    ``offset`` is -1 where nothing is committed; ``leader_epoch`` -1 where none was.
    """

    topic: str
    partition: int
    offset: int
    metadata: str | None
    leader_epoch: int
    error_code: int


def offset_fetch_request(
    group_id: str,
    topics: Mapping[str, Sequence[int]] | None,
    version: int,
    *,
    require_stable: bool = False,
) -> OffsetFetchRequest:
    """An OffsetFetch request in the shape ``version`` has (a groups array from v8).

    ``topics`` None asks for every partition the group has committed (v2+).
    ``require_stable`` goes where the version has it (v7+).
    """
    api = OffsetFetchRequest
    stable = require_stable and version >= _REQUIRE_STABLE_VERSION
    if version >= _GROUPS_VERSION:
        return api(
            groups=[
                api.OffsetFetchRequestGroup(
                    group_id=group_id,
                    topics=None
                    if topics is None
                    else [
                        api.OffsetFetchRequestTopics(name=t, partition_indexes=list(ps))
                        for t, ps in topics.items()
                    ],
                )
            ],
            require_stable=stable,
        )
    return api(
        group_id=group_id,
        topics=None
        if topics is None
        else [
            api.OffsetFetchRequestTopic(name=t, partition_indexes=list(ps))
            for t, ps in topics.items()
        ],
        require_stable=stable,
    )


def offset_fetch_partitions(response: Any) -> tuple[int, list[FetchedOffset]]:
    """The group's error code and its partitions, from an OffsetFetch response of any version
    (one group, as :func:`offset_fetch_request` asks)."""
    if response.groups:
        (group,) = response.groups
        code, topics = group.error_code, group.topics
    else:
        code, topics = response.error_code, response.topics
    return code, [
        FetchedOffset(
            topic.name,
            p.partition_index,
            p.committed_offset,
            p.metadata,
            p.committed_leader_epoch,
            p.error_code,
        )
        for topic in topics
        for p in topic.partitions
    ]


async def fetch_committed(
    coordinator: GroupCoordinator,
    group_id: str,
    partitions: Iterable[TopicPartition],
    *,
    timeout: float | None = None,  # noqa: ASYNC109 (bounds the retries, as request_timeout does)
) -> dict[TopicPartition, int | None]:
    """The offsets a group has committed for some partitions (OffsetFetch).

    Asks for stable offsets only, where the coordinator can (KIP-447, v7+): a partition with
    a transactional commit still pending is answered UNSTABLE_OFFSET_COMMIT, and asked again
    after a backoff until the transaction ends, so that a new owner never starts from an
    offset that the transaction will move. Without that, it could read the offset from
    before the transaction, and consume again what the transaction consumed.

    Args:
        coordinator: The group's coordinator.
        group_id: The group.
        partitions: The ``(topic, partition)`` pairs to ask about.
        timeout: How long a pending transaction is waited for (default: the client's
            ``request_timeout``).

    Returns:
        Each asked partition's committed offset, or None where nothing is committed.

    Raises:
        UnstableOffsetCommitError: A transaction stayed pending past ``timeout``.
        KafkaError: The coordinator refused (GroupAuthorizationFailedError ...), as the
            error's class with the group (and topic and partition) in its context.
    """
    wanted: dict[str, list[int]] = {}
    for topic, partition in partitions:
        wanted.setdefault(topic, []).append(partition)
    if not wanted:
        await trio.lowlevel.checkpoint()
        return {}
    retry = Retry(coordinator.metadata.config.request_timeout if timeout is None else timeout)
    while True:
        response = await coordinator.request_versioned(
            OffsetFetchRequest,
            lambda version: offset_fetch_request(group_id, wanted, version, require_stable=True),
            min_version=FETCH_MIN_VERSION,
        )
        code, answers = offset_fetch_partitions(response)
        errors = [
            for_code(a.error_code)(group_id=group_id, topic=a.topic, partition=a.partition)
            for a in answers
            if a.error_code
        ]
        if code:
            errors.insert(0, for_code(code)(group_id=group_id))
        if not errors:
            found = {(a.topic, a.partition): a.offset for a in answers}
            return {
                (topic, partition): _offset(found.get((topic, partition), -1))
                for topic, ps in wanted.items()
                for partition in ps
            }
        refused = [e for e in errors if not isinstance(e, UnstableOffsetCommitError)]
        if refused:
            raise refused[0]
        if retry.expired:
            raise errors[0]
        await retry.wait()


def _offset(committed: int) -> int | None:
    return None if committed < 0 else committed
