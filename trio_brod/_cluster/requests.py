"""One-partition requests sent to the partition's leader, with retries: the pieces of brod's
``resolve_offset`` and ``fetch`` that know brokers but not consumers.

:func:`leader_request` is how a one-off call reaches a leader: it looks the leader up in the
metadata cache, sends, and retries what trying again may cure (a lost connection, a leader
that moved, offsets not yet settled after an election) until ``get_metadata_timeout``,
refreshing metadata first when the error says the cache is stale.
"""

from __future__ import annotations

import datetime
from typing import Any

from trio_brod._backoff import Retry
from trio_brod._cluster.metadata import MetadataCache
from trio_brod._config import Timestamp
from trio_brod._exceptions import BrokerConnectionError, NoLeader
from trio_brod.protocol import ListOffsetsRequest
from trio_brod.protocol.errors import KafkaError, for_code

__all__ = ["EARLIEST", "LATEST", "leader_request", "list_offset", "list_offsets_request"]

#: ListOffsets' special timestamps.
LATEST = -1
EARLIEST = -2


async def leader_request(
    metadata: MetadataCache,
    topic: str,
    partition: int,
    request: Any,
    *,
    min_version: int | None = None,
    max_version: int | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 (a per-request timeout, not a deadline)
) -> Any:
    """Send a one-partition request to the partition's leader; return the response.

    Retriable errors (of the connection, or the partition's error code) are retried until
    ``get_metadata_timeout``, with metadata refreshed first when they mean the leader moved.
    Any other partition error is left in the response for the caller.
    """
    retry = Retry(metadata.config.get_metadata_timeout)
    refresh = False
    api = type(request)
    highest = api.MAX_STABLE_VERSION if max_version is None else max_version
    while True:
        try:
            connection = await metadata.leader_connection(topic, partition, refresh=refresh)
            version = connection.version_for(
                api.API_KEY, highest, api.MIN_VERSION if min_version is None else min_version
            )
            response = await connection.request(request, version, timeout=timeout)
            code = first_partition_error(response)
            if code:
                error = for_code(code)(topic=topic, partition=partition)
                if not error.retriable:
                    return response
                raise error
            return response
        except (BrokerConnectionError, NoLeader, KafkaError) as exc:
            if not exc.retriable or retry.expired:
                raise
            refresh = not isinstance(exc, KafkaError) or exc.invalid_metadata
            await retry.wait()


def first_partition_error(response: Any) -> int:
    """The error code of the first partition of a one-partition response (0 if none)."""
    topics: Any = getattr(response, "topics", None) or getattr(response, "responses", ())
    for topic in topics:
        for partition in topic.partitions:
            code: int = partition.error_code
            return code
    return 0


def list_offsets_request(
    topic: str, partition: int, timestamp: int, isolation: int
) -> ListOffsetsRequest:
    """A ListOffsets request for one partition."""
    return ListOffsetsRequest(
        replica_id=-1,
        isolation_level=isolation,
        topics=[
            ListOffsetsRequest.ListOffsetsTopic(
                name=topic,
                partitions=[
                    ListOffsetsRequest.ListOffsetsPartition(
                        partition_index=partition, timestamp=timestamp
                    )
                ],
            )
        ],
    )


async def list_offset(
    metadata: MetadataCache, topic: str, partition: int, timestamp: int, isolation: int
) -> int:
    """The offset ListOffsets gives for ``timestamp`` (ms, or :data:`LATEST`/:data:`EARLIEST`).

    A timestamp after the last message gives the end of the log, as brod's
    ``resolve_offset`` does (the broker itself answers -1 there).

    Raises:
        KafkaError: The broker refused (e.g. the topic or partition does not exist).
    """
    request = list_offsets_request(topic, partition, timestamp, isolation)
    result = await leader_request(metadata, topic, partition, request, min_version=1)
    answer = result.topics[0].partitions[0]
    if answer.error_code:
        raise for_code(answer.error_code)(topic=topic, partition=partition)
    if answer.offset < 0 and timestamp >= 0:
        # No message at or after that time: the end of the log.
        return await list_offset(metadata, topic, partition, LATEST, isolation)
    offset: int = answer.offset
    return offset


def offset_time_ms(time: object) -> int:
    """ListOffsets' timestamp for ``"earliest"``, ``"latest"``, a :class:`Timestamp`, an
    aware datetime or an int of milliseconds (-1 and -2 mean latest and earliest, as in brod).

    Raises:
        TypeError: ``time`` is none of those.
        ValueError: A negative timestamp other than -1 and -2.
    """
    if time == "earliest":
        timestamp = EARLIEST
    elif time == "latest":
        timestamp = LATEST
    elif isinstance(time, Timestamp):
        # -1 and -2 mean "latest" and "earliest" only as plain ints (brod's); a Timestamp
        # is a time, and must not turn into one of them.
        timestamp = time.ms
        if isinstance(timestamp, bool) or not isinstance(timestamp, int):
            raise TypeError(f"time={time!r}: a Timestamp holds int milliseconds")
        if timestamp < 0:
            raise ValueError(f"time={time!r}: a timestamp must be >= 0")
    elif isinstance(time, datetime.datetime):
        timestamp = Timestamp.from_datetime(time).ms
    elif isinstance(time, int) and not isinstance(time, bool):
        timestamp = time
    else:
        raise TypeError(f"time must be 'earliest', 'latest' or a timestamp, not {time!r}")
    if timestamp < 0 and timestamp not in (EARLIEST, LATEST):
        raise ValueError(f"time={time!r}: a timestamp must be >= 0 (or -1, -2)")
    return timestamp
