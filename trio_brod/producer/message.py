"""What a producer is handed: :class:`Message`, and the checks every message goes through.

Keys, values, headers and timestamps are checked (and mutable buffers copied) when a message
is accepted, never later in the worker: a caller who passed a ``str`` or a negative
timestamp gets the error from its own call, naming the field, and what is sent is what the
caller held at that moment even if it reuses the buffer at once. The client's ``produce``
checks with these before asking the partitioner, and the partition producer before
accepting a call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

__all__ = [
    "Header",
    "Message",
    "check_messages_container",
    "checked_bytes",
    "checked_headers",
    "checked_timestamp",
]

#: One record header: its name and its value (None for a header with no value).
Header = tuple[str, bytes | None]
#: Record timestamps are int64 milliseconds; the Java producer refuses negative ones.
_MAX_TIMESTAMP: Final = 2**63 - 1


class Message(NamedTuple):
    """One message for :meth:`Client.produce_batch <trio_brod.Client.produce_batch>`.

    A plain ``(key, value)`` tuple is accepted there too. Note the order of the fields:
    ``Message(value, key)``. Nothing is checked when a Message is made; ``produce_batch``
    checks each one, naming the message and the field at fault, and copies a ``bytearray``
    or ``memoryview`` key, value or header value then, so that the Message's buffers may be
    reused once ``produce_batch`` has returned.
    """

    value: bytes | None
    key: bytes | None = None
    #: ``(name, value)`` tuples, the name a str, the value bytes or None.
    headers: Sequence[Header] = ()
    #: CreateTime in milliseconds since the epoch (an int >= 0); None for now.
    timestamp: int | None = None


def checked_timestamp(timestamp: object) -> int:
    """A record timestamp given by the caller, checked: int milliseconds, not negative.

    A wrong type is a TypeError and a number out of range a ValueError, each naming the
    field, so that a caller who passed ``-1`` (Kafka's "no timestamp") or seconds as a float
    sees at once which argument is wrong.
    """
    if type(timestamp) is not int:
        if not isinstance(timestamp, int) or isinstance(timestamp, bool):
            raise TypeError(
                "timestamp must be an int of milliseconds since the epoch (or None for now), "
                f"not {type(timestamp).__name__}"
            )
        timestamp = int(timestamp)  # an IntEnum or other subclass: its plain value
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise ValueError(
            f"timestamp must be milliseconds since the epoch, from 0 to 2**63-1, not {timestamp}"
        )
    return timestamp


def checked_bytes(data: object, what: str) -> bytes | None:
    """``data`` as immutable ``bytes`` (or None), or a TypeError naming ``what``.

    A ``bytearray`` or ``memoryview`` is copied: what the caller passed at the moment of the
    call is what is sent, even if the caller changes the buffer afterwards (as the Java
    producer serialises at ``send()``).
    """
    if data is None or type(data) is bytes:
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(
        f"{what} must be bytes, bytearray, memoryview or None, not {type(data).__name__}"
    )


def checked_headers(headers: object) -> tuple[Header, ...]:
    """``headers`` as a tuple of ``(str, bytes | None)`` tuples, or a TypeError naming the
    header at fault.

    Header values that the caller could change later (``bytearray``, ``memoryview``) are
    copied, as keys and values are (see :func:`checked_bytes`); names that are a ``str``
    subclass become plain ``str``. Headers that are already plain come back as they are.
    """
    if not isinstance(headers, Sequence) or isinstance(
        headers, (str, bytes, bytearray, memoryview)
    ):
        hint = " (for a dict, pass list(headers.items()))" if isinstance(headers, dict) else ""
        raise TypeError(
            "headers must be a sequence of (name, value) pairs, name a str and value bytes "
            f"or None, not {type(headers).__name__}{hint}"
        )
    frozen: list[Header] | None = None
    for number, header in enumerate(headers):
        if type(header) is tuple and len(header) == 2:
            name, value = header
            if type(name) is str and (value is None or type(value) is bytes):
                if frozen is not None:
                    frozen.append(header)
                continue
        if not isinstance(header, tuple) or len(header) != 2:
            raise TypeError(f"header {number} must be a (name, value) tuple, not {header!r:.100}")
        name, value = header
        if not isinstance(name, str):
            raise TypeError(f"header {number} name must be a str, not {type(name).__name__}")
        if frozen is None:
            frozen = list(headers)[:number]
        frozen.append((str.__str__(name), checked_bytes(value, f"header {name!r} value")))
    if frozen is not None:
        return tuple(frozen)
    return headers if type(headers) is tuple else tuple(headers)


def check_messages_container(messages: object) -> None:
    """A TypeError for what ``produce_batch`` would otherwise take apart by mistake: one
    message, or bytes, given instead of a collection of messages."""
    if isinstance(messages, (Message, str, bytes, bytearray, memoryview)):
        raise TypeError(
            "messages must be an iterable of Message objects or (key, value) tuples, "
            f"not {type(messages).__name__} (for one message, pass [message])"
        )
    if not isinstance(messages, Iterable):
        raise TypeError(
            "messages must be an iterable of Message objects or (key, value) tuples, "
            f"not {type(messages).__name__}"
        )
