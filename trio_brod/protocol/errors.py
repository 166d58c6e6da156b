"""Exceptions of the protocol layer, and every Kafka error code as an exception class.

The root of every exception trio-brod raises on purpose is :class:`BrodError`. Below it:

* :class:`ProtocolError` -- bytes that are not valid Kafka protocol (:class:`DecodeError`) or a
  message that cannot be written in the requested version (:class:`EncodeError`);
* :class:`KafkaError` -- an error code a broker answered with. Each code has its own subclass,
  named as in Kafka's documentation (``UNKNOWN_TOPIC_OR_PARTITION`` becomes
  :class:`UnknownTopicOrPartitionError`), carrying ``code``, ``name``, ``retriable`` and a
  default ``message``.
"""

from __future__ import annotations

__all__ = [
    "BrodError",
    "DecodeError",
    "EncodeError",
    "KafkaError",
    "ProtocolError",
]


class BrodError(Exception):
    """Base class of every error trio-brod raises on purpose."""


class ProtocolError(BrodError):
    """Bytes on the wire, or a message to be written, do not follow the Kafka protocol."""


class DecodeError(ProtocolError):
    """Malformed or truncated bytes were given to a decoder.

    Decoders raise this, and only this, for bad input: never ``IndexError``,
    ``struct.error``, ``UnicodeDecodeError`` or the like.
    """


class EncodeError(ProtocolError, ValueError):
    """A message cannot be encoded in the requested version (a field out of range, a
    required field missing, or a value the version cannot carry)."""


class KafkaError(BrodError):
    """An error code returned by a Kafka broker.

    Subclasses exist for every code; :func:`for_code` maps a code to its class.
    """

    #: The numeric error code on the wire.
    code: int = -1
    #: The error's name as Kafka spells it, e.g. ``"NOT_LEADER_OR_FOLLOWER"``.
    name: str = "UNKNOWN_SERVER_ERROR"
    #: True if retrying the same request may succeed.
    retriable: bool = False
    #: Kafka's description of the error.
    message: str = "The server experienced an unexpected error when processing the request."
