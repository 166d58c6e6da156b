"""How ``trio-brod`` shows what it fetched and found: record lines (``--fmt``) and tables."""

from __future__ import annotations

import datetime
import json
import string
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from trio_brod.protocol.records import Record, TimestampType

__all__ = ["FORMAT_FIELDS", "record_formatter", "table_lines"]

#: The fields a ``--fmt`` format string may use.
FORMAT_FIELDS = (
    "offset",
    "key",
    "value",
    "ts",
    "time",
    "ts_type",
    "headers",
    "partition",
    "topic",
)


def _text(data: bytes | None) -> str:
    """Bytes as text: UTF-8, with anything that is not as ``\\xNN``; None as ``""``."""
    return "" if data is None else data.decode("utf-8", "backslashreplace")


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _record_time(timestamp: int) -> str:
    """A record's timestamp as ISO 8601 UTC, exact to the millisecond (integer arithmetic,
    not a float); "" for none (-1) or one past what ``datetime`` can show (year 9999): any
    int64 is a valid timestamp on the wire, and showing one must not stop a consumer."""
    if timestamp < 0:
        return ""
    try:
        moment = _EPOCH + datetime.timedelta(milliseconds=timestamp)
    except OverflowError:
        return ""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _record_fields(record: Record, topic: str, partition: int) -> dict[str, Any]:
    moment = _record_time(record.timestamp)
    return {
        "offset": record.offset,
        "key": _text(record.key),
        "value": _text(record.value),
        "ts": record.timestamp,
        "time": moment,
        "ts_type": record.timestamp_type.name.lower(),
        "headers": ",".join(f"{name}={_text(value)}" for name, value in record.headers),
        "partition": partition,
        "topic": topic,
    }


def record_formatter(fmt: str, kv_sep: str = ":") -> Callable[[Record, str, int], str]:
    """A function that turns a fetched record into one line of output, for ``--fmt``.

    ``fmt`` is ``"v"`` (the value), ``"kv"`` (key, separator, value), ``"okv"`` (offset,
    key and value), ``"json"`` (one JSON object per record), or a ``str.format`` string
    using the fields ``{offset} {key} {value} {ts} {time} {ts_type} {headers} {partition}
    {topic}`` (``ts`` in milliseconds, ``time`` in ISO 8601 UTC).

    Raises:
        ValueError: ``fmt`` is none of those (a format string with an unknown field, a bad
            format spec, or no field at all, which is most likely a typo).
    """
    if fmt == "v":
        return lambda record, topic, partition: _text(record.value)
    if fmt == "kv":
        return lambda record, topic, partition: f"{_text(record.key)}{kv_sep}{_text(record.value)}"
    if fmt == "okv":
        return lambda record, topic, partition: (
            f"{record.offset}{kv_sep}{_text(record.key)}{kv_sep}{_text(record.value)}"
        )
    if fmt == "json":
        return _json_line
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(fmt) if name is not None]
    except ValueError as exc:
        raise ValueError(f"bad --fmt {fmt!r}: {exc}") from None
    if not fields:
        raise ValueError(
            f"unknown --fmt {fmt!r}: use v, kv, okv, json, or a format string with fields "
            f"such as {{offset}} {{key}} {{value}}"
        )
    for name in fields:
        if name not in FORMAT_FIELDS:
            raise ValueError(
                f"bad --fmt {fmt!r}: unknown field {{{name}}}; the fields are "
                + " ".join(f"{{{f}}}" for f in FORMAT_FIELDS)
            )
    sample = Record(0, 0, TimestampType.CREATE_TIME, b"k", b"v", ())
    try:
        fmt.format(**_record_fields(sample, "t", 0))
    except (ValueError, IndexError, KeyError, AttributeError, TypeError) as exc:
        raise ValueError(f"bad --fmt {fmt!r}: {exc}") from None
    return lambda record, topic, partition: fmt.format(**_record_fields(record, topic, partition))


def _json_line(record: Record, topic: str, partition: int) -> str:
    return json.dumps(
        {
            "topic": topic,
            "partition": partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
            "key": None if record.key is None else _text(record.key),
            "value": None if record.value is None else _text(record.value),
            "headers": [[name, None if v is None else _text(v)] for name, v in record.headers],
        },
        ensure_ascii=False,
    )


def table_lines(header: Sequence[str], rows: Sequence[Sequence[object]]) -> Iterator[str]:
    """Lines of a plain table: columns padded to their widest cell, two spaces apart."""
    cells = [list(header)] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        yield "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
