"""The fake broker's side of the wire: request headers in, response frames out. Pure.

The client's side of framing is :mod:`trio_brod.protocol.frames`; this is the other side,
built from the same generated classes: :func:`parse_request` reads a request frame's header
(and its body when the API is known), :func:`response_frame` writes a response frame, and
:func:`fit` clears the fields a response version does not have, so that a handler can fill
in everything and the encoder still accepts an old version. :func:`error_response` builds the
answer to a whole request that fails with one error (fault injection, unsupported versions).
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any, NamedTuple

from trio_brod.protocol import REQUESTS, Message
from trio_brod.protocol._primitives import (
    DecodeFailure,
    FieldSchema,
    explain_encode_failure,
    join_encoded,
    skip_tagged_fields,
)
from trio_brod.protocol.errors import DecodeError
from trio_brod.protocol.frames import response_header_version

__all__ = ["RequestFrame", "error_response", "fit", "parse_request", "response_frame"]

_HEADER = struct.Struct(">hhih")
_SIZE = struct.Struct(">i")
_HEADER_V1 = struct.Struct(">iB")


class RequestFrame(NamedTuple):
    """A request's header, and its decoded body (None if the API or version is unknown).

    A named tuple rather than a frozen dataclass: one is made per request, and a frozen
    dataclass sets each field through ``object.__setattr__``.
    """

    api_key: int
    version: int
    correlation_id: int
    client_id: str | None
    body: Message | None


def parse_request(frame: bytes) -> RequestFrame:
    """Read a request frame (without its size prefix).

    The body is decoded when trio-brod's generated code knows the API and the version; else
    it is None and the caller answers UNSUPPORTED_VERSION (or hangs up, if no response can
    be written).

    Raises:
        DecodeError: The header, or a known body, is malformed.
    """
    if len(frame) < _HEADER.size:
        raise DecodeError(f"request frame of {len(frame)} bytes has no complete header")
    api_key, version, correlation_id, id_length = _HEADER.unpack_from(frame)
    pos = _HEADER.size
    client_id = None
    if id_length >= 0:
        if pos + id_length > len(frame):
            raise DecodeError("the request header's client id runs past the frame")
        client_id = frame[pos : pos + id_length].decode("utf-8", "replace")
        pos += id_length
    cls = REQUESTS.get(api_key)
    if cls is None or not cls.MIN_VERSION <= version <= cls.MAX_VERSION:
        return RequestFrame(api_key, version, correlation_id, client_id, None)
    if cls.FLEXIBLE_VERSION is not None and version >= cls.FLEXIBLE_VERSION:
        try:
            pos = skip_tagged_fields(frame, pos)
        except (DecodeFailure, IndexError):
            raise DecodeError("the request header's tagged fields are malformed") from None
    body = cls.decode(frame[pos:], version)
    return RequestFrame(api_key, version, correlation_id, client_id, body)


def response_frame(api_key: int, version: int, correlation_id: int, body: Message) -> bytes:
    """A whole response frame: size prefix, response header, body (fitted to *version*)."""
    fit(body, version)
    # The response header is the correlation id, and from v1 an empty tagged field section.
    if response_header_version(api_key, version):
        header = _HEADER_V1.pack(correlation_id, 0)
    else:
        header = _SIZE.pack(correlation_id)
    parts = [b"", header]
    body.encode_into(version, parts)
    try:
        size = sum(map(len, parts))
    except TypeError as exc:  # a bytes field holding something without a length
        raise explain_encode_failure(body, version, exc) from None
    parts[0] = _SIZE.pack(size)
    return join_encoded(body, version, parts)


def _schema(obj: object) -> tuple[FieldSchema, ...]:
    cls = obj if isinstance(obj, type) else type(obj)
    schema: tuple[FieldSchema, ...] = getattr(cls, "_SCHEMA", ())
    return schema


#: What :func:`fit` does to a field: reset it to a default, to a default factory's value,
#: or fit the struct (or each struct of the array) it holds.
_RESET, _RESET_FACTORY, _STRUCT, _ARRAY = range(4)

#: (message class, version) -> the fields :func:`fit` must touch, worked out once: a
#: response is fitted on every answer, and most fields need nothing.
_plans: dict[tuple[type, int], tuple[tuple[str, int, Any], ...]] = {}


def _plan(cls: type, version: int) -> tuple[tuple[str, int, Any], ...]:
    plan = _plans.get((cls, version))
    if plan is not None:
        return plan
    defaults = {f.name: f for f in dataclasses.fields(cls)}
    steps: list[tuple[str, int, Any]] = []
    for schema in _schema(cls):
        if version not in schema.versions:
            spec = defaults[schema.name]
            if spec.default_factory is not dataclasses.MISSING:
                steps.append((schema.name, _RESET_FACTORY, spec.default_factory))
            else:
                steps.append((schema.name, _RESET, spec.default))
        elif schema.struct is None or not _plan(schema.struct, version):
            continue  # nothing in it to reset
        elif schema.kind == "struct":
            steps.append((schema.name, _STRUCT, None))
        elif schema.kind == "array" and schema.element == "struct":
            steps.append((schema.name, _ARRAY, None))
    plan = _plans[cls, version] = tuple(steps)
    return plan


def fit(message: object, version: int) -> None:
    """Reset, in place, every field *version* lacks to its default, nested ones included."""
    for name, action, default in _plan(type(message), version):
        if action == _RESET:
            setattr(message, name, default)
        elif action == _RESET_FACTORY:
            setattr(message, name, default())
        else:
            value = getattr(message, name)
            if action == _STRUCT:
                if value is not None:
                    fit(value, version)
            elif value:
                for item in value:
                    fit(item, version)


def error_response(api_key: int, request: Any, code: int) -> Message:
    """The response to a whole request that fails with one error code.

    Every error code field the response has gets *code*: the top-level one, and one entry
    per topic, partition, resource or key the request named.
    """
    request_cls: Any = REQUESTS[api_key]
    cls: Any = request_cls.RESPONSE
    names = {f.name for f in dataclasses.fields(cls)}
    response = cls()
    if "error_code" in names:
        response.error_code = code
    builder = _MIRRORS.get(api_key)
    if builder is not None:
        builder(cls, request, response, code)
    return response  # type: ignore[no-any-return]


class _Partitioned:
    """A mirror that answers each partition of each topic of the request with the code.

    A request's partitions are structs (their index in *index_attr*) or plain indexes; an
    answer's error field is ``error_code`` or ``partition_error_code``, whichever it has.
    *part_fields* are set on every answered partition as well.
    """

    def __init__(
        self,
        topics_attr: str,
        partitions_attr: str,
        index_attr: str,
        out_topics: str,
        out_parts: str,
        **part_fields: Any,
    ) -> None:
        self.topics_attr = topics_attr
        self.partitions_attr = partitions_attr
        self.index_attr = index_attr
        self.out_topics = out_topics
        self.out_parts = out_parts
        self.part_fields = part_fields

    def __call__(self, cls: Any, request: Any, response: Any, code: int) -> None:
        setattr(
            response, self.out_topics, self.topics(cls, getattr(request, self.topics_attr), code)
        )

    def topics(self, cls: Any, request_topics: Any, code: int) -> list[Any]:
        """The answer's topic entries (of *cls*'s topic list) for *request_topics*."""
        topic_cls = _element(cls, self.out_topics)
        part_cls = _element(topic_cls, self.out_parts)
        error_out = "error_code" if hasattr(part_cls(), "error_code") else "partition_error_code"
        topics = []
        for topic in request_topics or []:
            entry = topic_cls()
            for attribute in ("name", "topic", "topic_id"):
                if hasattr(entry, attribute) and hasattr(topic, attribute):
                    setattr(entry, attribute, getattr(topic, attribute))
            parts = []
            for partition in getattr(topic, self.partitions_attr) or []:
                item = part_cls(**self.part_fields)
                setattr(item, error_out, code)
                index_out = "partition_index" if hasattr(item, "partition_index") else "index"
                if isinstance(partition, int):
                    setattr(item, index_out, partition)
                else:
                    setattr(item, index_out, getattr(partition, self.index_attr))
                parts.append(item)
            setattr(entry, self.out_parts, parts)
            topics.append(entry)
        return topics


def _element(cls: Any, attribute: str) -> Any:
    for schema in _schema(cls):
        if schema.name == attribute:
            return schema.struct
    raise KeyError(attribute)


def _metadata(cls: Any, request: Any, response: Any, code: int) -> None:
    topic_cls = _element(cls, "topics")
    # A topic asked for by id has no name, and the answer's name is nullable only from v12:
    # an empty name is what every version can carry.
    response.topics = [
        topic_cls(error_code=code, name=t.name or "", topic_id=t.topic_id)
        for t in request.topics or []
    ]


def _named(request_attr: str, key: str, out_attr: str, out_key: str) -> Any:
    def build(cls: Any, request: Any, response: Any, code: int) -> None:
        item_cls = _element(cls, out_attr)
        items = []
        for entry in getattr(request, request_attr) or []:
            value = entry if isinstance(entry, str) else getattr(entry, key)
            items.append(item_cls(error_code=code, **{out_key: value}))
        setattr(response, out_attr, items)

    return build


def _delete_topics(cls: Any, request: Any, response: Any, code: int) -> None:
    item_cls = _element(cls, "responses")
    response.responses = [item_cls(name=n, error_code=code) for n in request.topic_names] + [
        item_cls(name=t.name, topic_id=t.topic_id, error_code=code) for t in request.topics
    ]


def _resources(out_attr: str) -> Any:
    def build(cls: Any, request: Any, response: Any, code: int) -> None:
        item_cls = _element(cls, out_attr)
        items = [
            item_cls(error_code=code, resource_type=r.resource_type, resource_name=r.resource_name)
            for r in request.resources
        ]
        setattr(response, out_attr, items)

    return build


#: OffsetFetch's partitions answered with an error carry no offset (-1), as Kafka's do.
_offset_fetch_topics = _Partitioned(
    "topics", "partition_indexes", "", "topics", "partitions", committed_offset=-1
)


def _offset_fetch(cls: Any, request: Any, response: Any, code: int) -> None:
    """OffsetFetch: the topics of one group (v0-7), or each group's, with its own code (v8+)."""
    _offset_fetch_topics(cls, request, response, code)
    group_cls = _element(cls, "groups")
    response.groups = [
        group_cls(
            group_id=group.group_id,
            error_code=code,
            topics=_offset_fetch_topics.topics(group_cls, group.topics, code),
        )
        for group in request.groups or []
    ]


_MIRRORS: dict[int, Any] = {
    0: _Partitioned("topic_data", "partition_data", "index", "responses", "partition_responses"),
    1: _Partitioned("topics", "partitions", "partition", "responses", "partitions"),
    2: _Partitioned("topics", "partitions", "partition_index", "topics", "partitions"),
    3: _metadata,
    8: _Partitioned("topics", "partitions", "partition_index", "topics", "partitions"),
    10: _named("coordinator_keys", "", "coordinators", "key"),
    15: _named("groups", "", "groups", "group_id"),
    19: _named("topics", "name", "topics", "name"),
    20: _delete_topics,
    9: _offset_fetch,
    21: _Partitioned("topics", "partitions", "partition_index", "topics", "partitions"),
    24: _Partitioned(
        "v3_and_below_topics",
        "partitions",
        "",
        "results_by_topic_v3_and_below",
        "results_by_partition",
    ),
    28: _Partitioned("topics", "partitions", "partition_index", "topics", "partitions"),
    32: _resources("results"),
    37: _named("topics", "name", "results", "name"),
    42: _named("groups_names", "", "results", "group_id"),
    44: _resources("responses"),
    69: _named("group_ids", "", "groups", "group_id"),
}
