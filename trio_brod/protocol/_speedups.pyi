"""Type stub of the C extension ``trio_brod.protocol._speedups`` (see _speedups.c)."""

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

_R = TypeVar("_R", bound=tuple[Any, ...])
# The producer's RecordTuple (trio_brod.producer._buffer); prepare_records' have no headers.
_ProducerRecord = tuple[int, bytes | None, bytes | None, Sequence[tuple[str, bytes | None]]]

def decode_records(
    record_class: type[_R],
    buf: bytes | bytearray | memoryview,
    pos: int,
    end: int,
    count: int,
    base_offset: int,
    base_timestamp: int,
    timestamp_type: object,
    append_time: int | None,
    /,
) -> list[_R]: ...
def encode_records(
    records: Iterable[object],
    base_timestamp: int,
    slow: Callable[[int, object, int], tuple[bytes, int]],
    /,
) -> tuple[bytes, int]: ...
def record_fields(record_class: type[tuple[Any, ...]], /) -> None: ...
def murmur2_u32(data: bytes | bytearray | memoryview, /) -> int: ...
def gc_untrack(obj: object, /) -> None: ...
def gc_track(obj: object, /) -> None: ...
def prepare_records(
    messages: object,
    now: int,
    overhead: int,
    message_type: type[tuple[Any, ...]],
    /,
) -> tuple[list[_ProducerRecord], int] | None: ...
