"""Merging one-partition requests into one request, and splitting its response again.

trio-brod keeps brod's design: a worker per partition, each sending the Produce or Fetch
requests of its own partition. With many partitions led by one broker that makes many
small requests, where the Java client sends one Produce request per broker carrying every
partition's batch, and one Fetch for all of the broker's partitions. A
:class:`~trio_brod._net.connection.Connection` closes that gap without changing the workers:
one-partition requests that wait in its queue at the same moment, and that agree on
everything but their partition, are written as one request; its response is split into one
one-partition response per part, each as if its request had been sent alone.

This module is the sans-IO half:

* :func:`part_for` decides whether a request can be merged at all, and with which others
  (its *merge key*: the API, the version and every request-level field);
* :func:`plan` groups the queue's items into requests, keeping each partition's requests
  in the order they were sent;
* :func:`merge` builds a group's request, :func:`split` takes its response apart, and
  :func:`answer_parts` gives each part's caller its share.

Merging never waits: what is queued while the connection's writer is busy merges, and a
request sent to an idle connection is written alone, at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterable
from typing import Any, Final, TypeVar

from trio_brod._net.pending import MergedRequest, Part, PendingResponse
from trio_brod.protocol import (
    DecodeError,
    FetchRequest,
    ProduceRequest,
    ProduceResponse,
    decode_response,
)

__all__ = [
    "FETCH_MAX_BYTES",
    "PRODUCE_MERGE_LIMIT",
    "answer_parts",
    "lone_part",
    "merge",
    "part_for",
    "plan",
    "split",
]

_PRODUCE: Final = ProduceRequest.API_KEY
_FETCH: Final = FetchRequest.API_KEY
#: Fetch v13 names topics by id; before, by name.
_FETCH_TOPIC_ID_VERSION: Final = 13
#: A merged Produce request stops taking parts at this many bytes of record batches, so that
#: it stays far below the broker's ``socket.request.max.bytes`` (100 MiB by default) and one
#: request does not hold back the next for long. (Java packs up to ``max.request.size``,
#: 1 MiB; a part larger than the limit still goes, alone.)
PRODUCE_MERGE_LIMIT: Final = 4 * 1024 * 1024
#: The response size a merged Fetch asks for at most (the Java consumer's ``fetch.max.bytes``
#: default). Each part keeps its own ``partition_max_bytes``; the request's ``max_bytes`` is
#: the sum of the parts', up to this.
FETCH_MAX_BYTES: Final = 50 * 1024 * 1024

#: About how many bytes one partition adds to a Fetch request.
_FETCH_PART_SIZE: Final = 40

_Item = TypeVar("_Item")


def part_for(
    message: Any, version: int, expect_response: bool, pending: PendingResponse
) -> Part | None:
    """The request as a mergeable part, or None if it cannot be merged.

    Mergeable are Produce requests for exactly one partition, and Fetch requests for exactly
    one partition outside a fetch session (KIP-227 sessions are per request stream, so
    their requests must stay as they are).
    """
    cls = type(message)
    if cls is ProduceRequest:
        topics = message.topic_data
        if len(topics) != 1 or len(topics[0].partition_data) != 1:
            return None
        topic = topics[0]
        data = topic.partition_data[0]
        key: tuple[Hashable, ...] = (
            _PRODUCE,
            version,
            expect_response,
            message.transactional_id,
            message.acks,
            message.timeout_ms,
        )
        size = len(data.records) if data.records is not None else 0
        return Part(key, (topic.name, data.index), message, pending, expect_response, size)
    if cls is FetchRequest:
        fetch_topics = message.topics
        if (
            len(fetch_topics) != 1
            or len(fetch_topics[0].partitions) != 1
            or message.session_id != 0
            or message.session_epoch != -1
            or message.forgotten_topics_data
        ):
            return None
        fetch_topic = fetch_topics[0]
        state = message.replica_state
        key = (
            _FETCH,
            version,
            expect_response,
            message.cluster_id,
            message.replica_id,
            state.replica_id,
            state.replica_epoch,
            message.max_wait_ms,
            message.min_bytes,
            message.isolation_level,
            message.rack_id,
        )
        name: Hashable = (
            fetch_topic.topic_id if version >= _FETCH_TOPIC_ID_VERSION else fetch_topic.topic
        )
        address = (name, fetch_topic.partitions[0].partition)
        return Part(key, address, message, pending, expect_response, _FETCH_PART_SIZE)
    return None


def lone_part(message: Any, version: int, expect_response: bool, pending: PendingResponse) -> Part:
    """A request that goes out exactly as it was sent, as a part all the same.

    A connection queues every Fetch request as a part, mergeable or not (several
    partitions, a fetch session, merging turned off), so that it can hold it back while
    another fetch is in flight. The key and the address of a lone part are its own, shared
    with no other part: :func:`plan` never merges it, and orders it only as queued.
    """
    own = object()
    key = (type(message).API_KEY, own)
    return Part(key, (own, -1), message, pending, expect_response, _FETCH_PART_SIZE)


class _Group:
    __slots__ = ("index", "parts", "size")

    def __init__(self, index: int, part: Part) -> None:
        self.index = index
        self.parts = [part]
        self.size = part.size


def plan(items: Iterable[_Item | Part]) -> list[_Item | Part | list[Part]]:
    """Group queued items into the requests to write, in order.

    Items that are not :class:`Part` (already encoded frames) stay where they are. A part
    joins the latest group of its merge key if that group does not hold its address yet,
    no later request holds it either (so each partition's requests keep the order they were
    sent in: a worker with five Produce requests in flight relies on that), and the group
    is not full (:data:`PRODUCE_MERGE_LIMIT`); otherwise it starts a new group. A group is
    written where its first part was queued: a part may overtake unrelated requests, never
    one of its own partition. Parts whose caller gave up (abandoned) before they were
    written are dropped.

    Returns:
        Each entry is an item as given, a lone :class:`Part` (written as sent), or a list of
        two or more parts to merge.
    """
    out: list[Any] = []
    latest: dict[tuple[Hashable, ...], _Group] = {}
    # For each (API key, address), the index in ``out`` of the last request holding it.
    last_at: dict[tuple[Hashable, ...], int] = {}
    for item in items:
        if type(item) is not Part:
            out.append(item)
            continue
        if item.pending.abandoned:
            continue
        place = (item.key[0], item.address)
        group = latest.get(item.key)
        if (
            group is not None
            and group.index > last_at.get(place, -1)
            and (item.key[0] != _PRODUCE or group.size + item.size <= PRODUCE_MERGE_LIMIT)
        ):
            group.parts.append(item)
            group.size += item.size
            last_at[place] = group.index
            continue
        group = latest[item.key] = _Group(len(out), item)
        last_at[place] = group.index
        out.append(group)
    for index, entry in enumerate(out):
        if type(entry) is _Group:
            out[index] = entry.parts[0] if len(entry.parts) == 1 else entry.parts
    return out


def merge(parts: list[Part], max_frame_size: int) -> Any:
    """The one request that carries every part (two or more, of one merge key).

    Args:
        parts: The parts, in the order they were queued.
        max_frame_size: The largest response frame the connection accepts; a merged Fetch
            asks for at most half of it, leaving room for the brokers' KIP-74 exception
            (the first batch comes whole, even beyond ``max_bytes``).
    """
    first = parts[0].message
    if type(first) is ProduceRequest:
        topics: dict[str, Any] = {}
        for part in parts:
            topic = part.message.topic_data[0]
            merged_topic = topics.get(topic.name)
            if merged_topic is None:
                merged_topic = topics[topic.name] = ProduceRequest.TopicProduceData(
                    name=topic.name, partition_data=[]
                )
            merged_topic.partition_data.append(topic.partition_data[0])
        return ProduceRequest(
            transactional_id=first.transactional_id,
            acks=first.acks,
            timeout_ms=first.timeout_ms,
            topic_data=list(topics.values()),
        )
    fetch_topics: dict[tuple[Hashable, ...], Any] = {}
    total = largest = 0
    for part in parts:
        fetch_topic = part.message.topics[0]
        name = (fetch_topic.topic, fetch_topic.topic_id)
        merged_fetch_topic = fetch_topics.get(name)
        if merged_fetch_topic is None:
            merged_fetch_topic = fetch_topics[name] = FetchRequest.FetchTopic(
                topic=fetch_topic.topic, topic_id=fetch_topic.topic_id, partitions=[]
            )
        merged_fetch_topic.partitions.append(fetch_topic.partitions[0])
        wanted = part.message.max_bytes
        total += wanted
        largest = max(largest, wanted)
    # The sum, so that each partition can get what it would have alone; bounded so that the
    # response fits the frame limit, but never below what one part alone asked for.
    max_bytes = max(largest, min(total, FETCH_MAX_BYTES, max_frame_size // 2))
    return dataclasses.replace(first, max_bytes=max_bytes, topics=list(fetch_topics.values()))


def split(response: Any, parts: list[Part], version: int) -> list[Any]:
    """Take a merged request's response apart: one response per part, in order.

    Each holds the part's own partition only, with the response's top-level fields (error
    code, throttle time, node endpoints: shared, not copied), as the broker would have
    answered the part alone. A partition the broker did not answer about gets a response
    without topics, which the caller reports as it would for a lone request.
    """
    by_address: dict[tuple[Hashable, int], tuple[Any, Any]] = {}
    if type(response) is ProduceResponse:
        partitions_field = "partition_responses"
        for topic in response.responses:
            for data in topic.partition_responses:
                by_address[topic.name, data.index] = (topic, data)
    else:
        partitions_field = "partitions"
        by_id = version >= _FETCH_TOPIC_ID_VERSION
        for topic in response.responses:
            name: Hashable = topic.topic_id if by_id else topic.topic
            for data in topic.partitions:
                by_address[name, data.partition_index] = (topic, data)
    answers = []
    for part in parts:
        found = by_address.get(part.address)
        if found is None:
            answers.append(dataclasses.replace(response, responses=[]))
            continue
        topic, data = found
        alone = dataclasses.replace(topic, **{partitions_field: [data]})
        answers.append(dataclasses.replace(response, responses=[alone]))
    return answers


def answer_parts(request: MergedRequest, frame: bytes) -> None:
    """Decode a merged request's response frame and give each part its share.

    Parts whose caller gave up are left out. A frame that cannot be decoded fails every
    part (the frame boundary is intact, so only this request failed).
    """
    parts = [part for part in request.parts if not part.pending.abandoned]
    if not parts:
        return
    try:
        response = decode_response(frame, request.response_cls, request.version)
    except DecodeError as exc:
        # Each part gets its own exception object, as they are raised in different tasks.
        for part in parts:
            error = DecodeError(str(exc))
            error.__cause__ = exc
            part.pending.fail(error)
        return
    for part, answer in zip(parts, split(response, parts, request.version), strict=True):
        part.pending.response = answer
        part.pending.finish()
