"""Hypothesis strategies for Kafka data and protocol frames, for property-based tests.

Needs hypothesis (``pip install 'trio-brod[testing]'``); importing this module without it
raises an ImportError that says so.

Data: :func:`keys`, :func:`values`, :func:`headers`, :func:`records` (``(timestamp, key,
value, headers)`` tuples as :func:`~trio_brod.protocol.records.encode_batch` takes them),
:func:`record_batches` (encoded v2 batches), :func:`topic_names` and :func:`topic_layouts`
(topic name to partition count).

Protocol: :func:`messages` builds any generated request or response class in a version,
field by field from its schema; :func:`request_frames` encodes requests into whole frames as
a client sends them; :func:`mutated_frames` damages such frames (flipped, cut, inserted or
dropped bytes, wrong size prefixes, wrong API keys or versions), to check that a server
survives whatever arrives::

    from hypothesis import given
    from trio_brod.testing import strategies as kst

    @given(kst.record_batches())
    def test_my_decoder(batch: bytes) -> None:
        ...
"""

from __future__ import annotations

import struct
import uuid
from typing import Any

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "trio_brod.testing.strategies needs hypothesis: install the 'testing' extra "
        "(pip install 'trio-brod[testing]')"
    ) from exc

from trio_brod.protocol import REQUESTS, Message, encode_request
from trio_brod.protocol.records import Compression, encode_batch

__all__ = [
    "headers",
    "keys",
    "messages",
    "mutated_frames",
    "record_batches",
    "records",
    "request_frames",
    "topic_layouts",
    "topic_names",
    "values",
]

_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
}
#: Timestamps from 2001 to 2286, in ms.
_TIMESTAMPS = st.integers(min_value=1_000_000_000_000, max_value=9_999_999_999_999)


def keys(max_size: int = 32) -> st.SearchStrategy[bytes | None]:
    """Record keys: None (no key) or bytes."""
    return st.none() | st.binary(max_size=max_size)


def values(max_size: int = 256) -> st.SearchStrategy[bytes | None]:
    """Record values: None (a tombstone) or bytes."""
    return st.none() | st.binary(max_size=max_size)


def headers(max_headers: int = 4) -> st.SearchStrategy[list[tuple[str, bytes | None]]]:
    """Record headers: (name, value) pairs, names repeating as Kafka allows."""
    return st.lists(
        st.tuples(st.text(max_size=16), st.none() | st.binary(max_size=32)),
        max_size=max_headers,
    )


def records(
    min_size: int = 1, max_size: int = 20
) -> st.SearchStrategy[
    list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]]
]:
    """Lists of ``(timestamp_ms, key, value, headers)``, as ``encode_batch`` takes them."""
    return st.lists(
        st.tuples(_TIMESTAMPS, keys(), values(), headers()), min_size=min_size, max_size=max_size
    )


@st.composite
def record_batches(
    draw: st.DrawFn,
    *,
    compressions: tuple[Compression, ...] = (Compression.NONE, Compression.GZIP),
    idempotent: bool | None = None,
) -> bytes:
    """Encoded v2 record batches (base offset 0), optionally with producer state.

    Args:
        draw: Hypothesis's draw function (given by ``st.composite``).
        compressions: The codecs to draw from (snappy, lz4 and zstd need cramjam).
        idempotent: True: always with a producer id, epoch and sequence; False: never;
            None: either.
    """
    batch_records = draw(records())
    with_producer = draw(st.booleans()) if idempotent is None else idempotent
    compression = draw(st.sampled_from(compressions))
    if not with_producer:
        return encode_batch(batch_records, compression=compression)
    return encode_batch(
        batch_records,
        compression=compression,
        producer_id=draw(st.integers(0, 2**40)),
        producer_epoch=draw(st.integers(0, 100)),
        base_sequence=draw(st.integers(0, 2**31 - 1 - len(batch_records))),
    )


def topic_names(max_size: int = 40) -> st.SearchStrategy[str]:
    """Legal topic names: ``[a-zA-Z0-9._-]``, not ``.`` or ``..``."""
    return st.from_regex(rf"[a-zA-Z0-9._-]{{1,{max_size}}}", fullmatch=True).filter(
        lambda name: name not in (".", "..")
    )


def topic_layouts(
    max_topics: int = 4, max_partitions: int = 8
) -> st.SearchStrategy[dict[str, int]]:
    """Topic name to partition count."""
    return st.dictionaries(
        topic_names(), st.integers(1, max_partitions), min_size=1, max_size=max_topics
    )


def _field_strategy(schema: Any, version: int) -> st.SearchStrategy[Any]:
    kind = schema.kind
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        base: st.SearchStrategy[Any] = st.integers(low, high)
    elif kind == "bool":
        base = st.booleans()
    elif kind == "float64":
        base = st.floats(allow_nan=False)
    elif kind == "uuid":
        base = st.uuids().map(lambda u: uuid.UUID(int=u.int))
    elif kind == "string":
        base = st.text(max_size=20)
    elif kind == "bytes":
        base = st.binary(max_size=32)
    elif kind == "records":
        base = record_batches()
    elif kind == "struct":
        base = messages(schema.struct, version)
    else:  # array
        element = schema.element
        if element == "struct":
            item = messages(schema.struct, version)
        else:
            plain = type(schema)(schema.name, schema.wire_name, element, range(1))
            item = _field_strategy(plain, version)
        base = st.lists(item, max_size=3)
    if version in schema.nullable:
        base = st.none() | base
    return base


def messages(cls: type[Any], version: int) -> st.SearchStrategy[Any]:
    """Instances of a generated message (or nested struct) class, with every field of
    *version* drawn and the others at their defaults, so that they encode in *version*.
    """
    fields = {
        schema.name: _field_strategy(schema, version)
        for schema in getattr(cls, "_SCHEMA", ())
        if version in schema.versions
    }
    return st.builds(cls, **fields)


@st.composite
def request_frames(draw: st.DrawFn, api_keys: tuple[int, ...] | None = None) -> bytes:
    """Whole request frames (size prefix, header, body) of any generated request, in any of
    its versions, as a client would send them.
    """
    key = draw(st.sampled_from(sorted(api_keys or REQUESTS)))
    cls = REQUESTS[key]
    version = draw(st.integers(cls.MIN_VERSION, cls.MAX_VERSION))
    message: Message = draw(messages(cls, version))
    client_id = draw(st.none() | st.text(max_size=10))
    return encode_request(message, version, draw(st.integers(0, 2**31 - 1)), client_id)


@st.composite
def mutated_frames(draw: st.DrawFn, api_keys: tuple[int, ...] | None = None) -> bytes:
    """Request frames damaged in one of several ways: what a server must survive."""
    frame = bytearray(draw(request_frames(api_keys)))
    how = draw(st.sampled_from(["flip", "cut", "insert", "drop", "size", "api_key", "version"]))
    if how == "flip":
        position = draw(st.integers(4, len(frame) - 1))
        frame[position] ^= draw(st.integers(1, 255))
    elif how == "cut":
        cut = draw(st.integers(4, len(frame) - 1))
        frame = frame[:cut]
        struct.pack_into(">i", frame, 0, len(frame) - 4)
    elif how == "insert":
        position = draw(st.integers(4, len(frame)))
        frame[position:position] = draw(st.binary(min_size=1, max_size=8))
        struct.pack_into(">i", frame, 0, len(frame) - 4)
    elif how == "drop":
        position = draw(st.integers(4, len(frame) - 1))
        del frame[position]
        struct.pack_into(">i", frame, 0, len(frame) - 4)
    elif how == "size":
        struct.pack_into(">i", frame, 0, draw(st.sampled_from([-1, 0, 1, 2**31 - 1])))
    elif how == "api_key":
        struct.pack_into(">h", frame, 4, draw(st.integers(-(2**15), 2**15 - 1)))
    else:
        struct.pack_into(">h", frame, 6, draw(st.integers(-(2**15), 2**15 - 1)))
    return bytes(frame)
