"""Records: delete a partition's records before an offset (Kafka's DeleteRecords, sent to the
partitions' leaders)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from trio_brod._backoff import Retry
from trio_brod._exceptions import BrokerConnectionError, NoLeader
from trio_brod._net import Connection
from trio_brod.admin._common import (
    DEFAULT_TIMEOUT,
    check_partition_key,
    ms,
    raise_collected,
)
from trio_brod.client import Client
from trio_brod.protocol import DeleteRecordsRequest
from trio_brod.protocol.errors import (
    BrodError,
    KafkaError,
    LeaderNotAvailableError,
    NotLeaderOrFollowerError,
    for_code,
)

__all__ = ["delete_records"]

#: The answers that mean the request must go to the partition's new leader.
_LEADER_MOVED: Final = (LeaderNotAvailableError, NotLeaderOrFollowerError)


async def delete_records(
    client: Client,
    before: Mapping[tuple[str, int], int],
    *,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 (sent to the broker as timeout_ms)
) -> dict[tuple[str, int], int]:
    """Delete the records of partitions before an offset (Kafka's DeleteRecords).

    Each partition's log start moves up to the offset, so consumers starting at
    ``"earliest"`` begin there. Requests go to the partitions' leaders, one per leader;
    a leader that moved is followed.

    Args:
        client: An open client.
        before: For each ``(topic, partition)``, the first offset to keep; -1 for the high
            watermark (delete everything there is now).
        timeout: Seconds the leader may wait for its followers to catch up.

    Returns:
        Each partition's new low watermark (its first offset).

    Raises:
        OffsetOutOfRangeError: An offset is past the partition's high watermark.
        UnknownTopicOrPartitionError: No such topic or partition.
        PolicyViolationError: The topic is compacted (``cleanup.policy=compact`` only).
    """
    pending = dict(before)
    for key, offset in pending.items():
        check_partition_key(key, "delete_records")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < -1:
            raise ValueError(f"delete_records: {key[0]}[{key[1]}]: bad offset {offset!r}")
    total = len(pending)
    result: dict[tuple[str, int], int] = {}
    errors: list[BrodError] = []
    retry = Retry(timeout + client.config.get_metadata_timeout)
    refresh = False
    while pending:
        by_leader: dict[str, tuple[Connection, list[tuple[str, int]]]] = {}
        again: dict[tuple[str, int], int] = {}
        for key in pending:
            try:
                # This waits for a leader itself (up to get_metadata_timeout): what it raises
                # is final.
                connection = await client.get_leader_connection(*key, refresh=refresh)
            except (KafkaError, NoLeader, BrokerConnectionError) as exc:
                errors.append(exc)
                continue
            by_leader.setdefault(connection.address, (connection, []))[1].append(key)
        for connection, keys in by_leader.values():
            try:
                answers = await _delete_records_on(connection, keys, pending, timeout, client)
            except BrokerConnectionError as exc:
                if not exc.retriable or retry.expired:
                    raise
                again.update((key, pending[key]) for key in keys)
                continue
            for key, (code, low) in answers.items():
                if not code:
                    result[key] = low
                    continue
                error = for_code(code)(topic=key[0], partition=key[1])
                if isinstance(error, _LEADER_MOVED) and not retry.expired:
                    again[key] = pending[key]
                else:
                    errors.append(error)
        pending = again
        if pending:
            # The leader moved (or its connection broke): look it up again.
            refresh = True
            await retry.wait()
    raise_collected(errors, "delete_records", total)
    return result


async def _delete_records_on(
    connection: Connection,
    keys: list[tuple[str, int]],
    offsets: Mapping[tuple[str, int], int],
    timeout: float,  # noqa: ASYNC109 (sent to the broker as timeout_ms)
    client: Client,
) -> dict[tuple[str, int], tuple[int, int]]:
    api = DeleteRecordsRequest
    by_topic: dict[str, list[DeleteRecordsRequest.DeleteRecordsPartition]] = {}
    for topic, partition in keys:
        by_topic.setdefault(topic, []).append(
            api.DeleteRecordsPartition(partition_index=partition, offset=offsets[topic, partition])
        )
    request = api(
        topics=[api.DeleteRecordsTopic(name=t, partitions=ps) for t, ps in by_topic.items()],
        timeout_ms=ms(timeout),
    )
    response = await connection.request(
        request, connection.best_version(api), timeout=timeout + client.config.request_timeout
    )
    return {
        (t.name, p.partition_index): (p.error_code, p.low_watermark)
        for t in response.topics
        for p in t.partitions
    }
