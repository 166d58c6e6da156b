"""W3C Trace Context ``traceparent`` values: parse, format, and carry in message headers.

A ``traceparent`` is ``VERSION-TRACE_ID-PARENT_ID-FLAGS`` in lowercase hex, for example
``00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01``. trio-brod writes version 00
and reads any version it may (a later version may append fields after a dash, which are
ignored, as the W3C recommendation asks). Nothing here needs OpenTelemetry: the values are
plain integers, so parsing a header a producer got wrong costs a ``None``, never a crash.

A producer with ``ProducerConfig(trace_context=True)`` adds the header to each message from
the span current when ``produce`` is called; a subscriber with
``ConsumerConfig(trace_context=True)`` links its handler's span to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final, NamedTuple

__all__ = ["HEADER", "TraceParent", "find_traceparent", "format_traceparent", "parse_traceparent"]

#: The header's name, in messages as in HTTP.
HEADER: Final = "traceparent"
_HEX: Final = frozenset("0123456789abcdef")


class TraceParent(NamedTuple):
    """The parts of a ``traceparent``: 128-bit trace id, 64-bit span id, 8 flag bits."""

    trace_id: int
    span_id: int
    flags: int


def format_traceparent(trace_id: int, span_id: int, flags: int) -> str:
    """The version-00 ``traceparent`` of a span.

    Raises:
        ValueError: An id is zero or out of range (the W3C format forbids zero ids).
    """
    if not (0 < trace_id < 1 << 128 and 0 < span_id < 1 << 64 and 0 <= flags < 256):
        raise ValueError("trace id and span id must be non-zero and in range, flags 0-255")
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


def parse_traceparent(value: str | bytes | None) -> TraceParent | None:
    """The parts of a ``traceparent`` value, or None if it is not a valid one.

    Invalid: not ASCII, wrong lengths or dashes, upper-case or non-hex digits, version
    ``ff``, an all-zero trace or span id, or a version-00 value with anything after the flags.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if len(value) < 55 or value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    version = value[:2]
    if len(value) > 55 and (version == "00" or value[55] != "-"):
        return None
    digits = value[:2] + value[3:35] + value[36:52] + value[53:55]
    if not _HEX.issuperset(digits) or version == "ff":
        return None
    trace_id, span_id = int(value[3:35], 16), int(value[36:52], 16)
    if trace_id == 0 or span_id == 0:
        return None
    return TraceParent(trace_id, span_id, int(value[53:55], 16))


def find_traceparent(headers: Iterable[tuple[str, Any]]) -> TraceParent | None:
    """The parsed ``traceparent`` among a message's headers (the first valid one), or None.

    Headers are whatever a producer wrote: any that do not parse are skipped.
    """
    for key, value in headers:
        if key == HEADER and isinstance(value, (bytes, str)):
            parsed = parse_traceparent(value)
            if parsed is not None:
                return parsed
    return None


def add_header(headers: Sequence[tuple[str, bytes | None]], value: str) -> list[Any]:
    """``headers`` with a ``traceparent`` header appended (replacing any there was)."""
    kept = [header for header in headers if header[0] != HEADER]
    kept.append((HEADER, value.encode("ascii")))
    return kept
