"""Folding over a partition: brod's ``fold/8``, behind :meth:`Client.fold <trio_brod.Client.fold>`.

A fold reads a partition from an offset with one-off fetches (no worker, no subscription),
calls ``fun(message, acc)`` for each message in order, and stops at the first limit reached:

* ``message_count`` messages were folded;
* the message at ``reach_offset`` (or, if compaction removed it, the first one after it)
  was folded;
* the end of the partition as it was when last fetched (the high watermark; with
  ``read_committed``, the last stable offset);
* or a fetch failed: the error is *returned*, with the accumulator as it was, because what
  was folded before the failure is still worth having (a state rebuild can resume at
  :attr:`FoldResult.next_offset`).

An exception raised by ``fun`` is not a stop reason: it propagates as itself, since it is
the caller's own bug or decision, not something Kafka did.

``fun`` may be a plain function or an ``async def`` one: whatever it returns is awaited when
it is awaitable. So an accumulator may be anything *but* an awaitable.

The one-off fetch itself, :func:`fetch_once`, is here too: :meth:`Client.fetch
<trio_brod.Client.fetch>` is one of them, without a fold.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from trio_brod._cluster import MetadataCache
from trio_brod._cluster.requests import leader_request
from trio_brod._config import ConsumerConfig
from trio_brod._exceptions import BrokerConnectionError, NoLeader
from trio_brod.consumer._fetch import (
    FETCH_MIN_VERSION,
    FETCH_TOPIC_ID_VERSION,
    MAX_FETCH_BYTES,
    fetch_request,
    fetched_partition,
    isolation_code,
    select_runs,
    visible_end,
)
from trio_brod.consumer.message_set import MessageSet
from trio_brod.protocol.errors import KafkaError
from trio_brod.protocol.records import Record

__all__ = ["FoldFun", "FoldResult", "FoldStop", "fetch_once", "fold"]

A = TypeVar("A")

#: ``fun(message, acc)`` returning the next accumulator, or an awaitable of it.
FoldFun = Callable[[Record, A], A | Awaitable[A]]


class FoldStop(enum.Enum):
    """Why a fold stopped (brod's ``fold_stop_reason()``)."""

    #: The fold reached the partition's end as last fetched (``reached_end_of_partition``).
    END_OF_PARTITION = "reached_end_of_partition"
    #: ``message_count`` messages were folded (``reached_message_count_limit``).
    MESSAGE_COUNT = "reached_message_count"
    #: The message at ``reach_offset`` (or the first after it) was folded
    #: (``reached_target_offset``).
    TARGET_OFFSET = "reached_target_offset"
    #: A fetch failed; :attr:`FoldResult.error` says how (brod's ``{error, Reason}``).
    ERROR = "error"


@dataclasses.dataclass(frozen=True)
class FoldResult(Generic[A]):
    """What :meth:`Client.fold <trio_brod.Client.fold>` returns (brod's ``{Acc, Offset, Reason}``).

    Attributes:
        acc: The accumulator after the last message folded (the initial one if none was).
        next_offset: Where to continue: the offset after the last message folded, or the
            start offset if nothing was.
        reason: Why the fold stopped.
        error: With :attr:`FoldStop.ERROR`, the error of the fetch that failed; else None.
    """

    acc: A
    next_offset: int
    reason: FoldStop
    error: KafkaError | BrokerConnectionError | NoLeader | None = None


async def fold(
    metadata: MetadataCache,
    topic: str,
    partition: int,
    offset: int,
    fun: FoldFun[A],
    acc: A,
    config: ConsumerConfig,
    *,
    message_count: int | None = None,
    reach_offset: int | None = None,
) -> FoldResult[A]:
    """Fold ``fun`` over a partition from ``offset`` until a limit (see the module).

    Args:
        metadata: Where leaders and topic ids come from.
        topic: The topic.
        partition: The partition.
        offset: The first offset to fold.
        fun: ``fun(message, acc) -> acc``, sync or async.
        acc: The initial accumulator.
        config: ``max_wait_time``, ``max_bytes`` and ``isolation_level`` of the fetches.
        message_count: Stop after this many messages (>= 1).
        reach_offset: Stop once the message at this offset (or the first after it) was
            folded.

    Raises:
        ValueError: A bad ``offset``, ``message_count`` or ``reach_offset``.
    """
    _check_offset("offset", offset)
    if reach_offset is not None:
        _check_offset("reach_offset", reach_offset)
    if message_count is not None and (
        isinstance(message_count, bool) or not isinstance(message_count, int) or message_count < 1
    ):
        raise ValueError(f"message_count must be an int >= 1 or None, not {message_count!r}")
    folded = 0
    while True:
        if reach_offset is not None and offset > reach_offset:
            return FoldResult(acc, offset, FoldStop.TARGET_OFFSET)
        try:
            message_set = await fetch_once(metadata, topic, partition, offset, config)
        except (KafkaError, BrokerConnectionError, NoLeader) as exc:
            return FoldResult(acc, offset, FoldStop.ERROR, exc)
        for message in message_set:
            result = fun(message, acc)
            acc = await result if inspect.isawaitable(result) else result
            offset = message.offset + 1
            folded += 1
            if message_count is not None and folded >= message_count:
                return FoldResult(acc, offset, FoldStop.MESSAGE_COUNT)
            if reach_offset is not None and message.offset >= reach_offset:
                return FoldResult(acc, offset, FoldStop.TARGET_OFFSET)
        # Past the set's last record: aborted transactions and compacted gaps at its end.
        offset = max(offset, message_set.next_offset)
        if offset >= message_set.high_watermark:
            return FoldResult(acc, offset, FoldStop.END_OF_PARTITION)


def _check_offset(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, not {value!r}")


async def fetch_once(
    metadata: MetadataCache, topic: str, partition: int, offset: int, config: ConsumerConfig
) -> MessageSet:
    """One fetch from a partition's leader, without a worker (:meth:`Client.fetch
    <trio_brod.Client.fetch>`).

    When only the start of a batch comes back, fetches again with a larger ``max_bytes``.

    Raises:
        KafkaError: The broker answered with an error (e.g. OffsetOutOfRangeError).
    """
    isolation = isolation_code(config.isolation_level)
    topic_id = await metadata.topic_id(topic)
    max_bytes = config.max_bytes
    while True:
        request = fetch_request(topic, topic_id, partition, offset, max_bytes, config, isolation)
        response = await leader_request(
            metadata,
            topic,
            partition,
            request,
            min_version=FETCH_MIN_VERSION,
            max_version=None if topic_id is not None else FETCH_TOPIC_ID_VERSION - 1,
            timeout=config.effective_max_wait_time + metadata.config.request_timeout,
        )
        data = fetched_partition(response, topic, partition, offset)
        selected = select_runs(topic, partition, offset, data, config.isolation_level)
        if selected.needed_bytes is not None:
            max_bytes = min(max(selected.needed_bytes, max_bytes * 2), MAX_FETCH_BYTES)
            continue
        return MessageSet(
            topic, partition, visible_end(data, isolation), selected.runs, selected.next_offset
        )
