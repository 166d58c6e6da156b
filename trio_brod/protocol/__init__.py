"""The Kafka wire protocol, sans-IO: bytes in, objects out.

Every request, response, header and embedded data type of the APIs trio-brod uses is a class
here (``MetadataRequest``, ``ProduceResponse``, ``ConsumerProtocolAssignment`` ...), generated
from Apache Kafka's JSON schemas. One class covers every version of its message: fields are
snake_case dataclass fields with Kafka's defaults, structures inside a message are nested
classes (``MetadataResponse.MetadataResponseTopic``), and the version is an argument of
``encode(version)`` and ``decode(data, version)``.

Nothing here does I/O, so the protocol can be used synchronously, e.g. with a plain socket::

    import socket
    from trio_brod.protocol import (
        ApiVersionsRequest, ApiVersionsResponse, FrameDecoder, decode_response, encode_request,
    )

    request = ApiVersionsRequest(client_software_name="demo", client_software_version="1.0")
    frame = encode_request(request, version=3, correlation_id=1, client_id="demo")

    with socket.create_connection(("localhost", 9092)) as sock:
        sock.sendall(frame)
        decoder = FrameDecoder(max_frame_size=1024 * 1024)
        while (reply := decoder.next_frame()) is None:
            decoder.feed(sock.recv(65536))

    response = decode_response(reply, ApiVersionsResponse, version=3)
    for api in response.api_keys:
        print(api.api_key, api.min_version, api.max_version)

Bad input never escapes as ``IndexError`` or ``struct.error``: decoders raise
:class:`DecodeError`, encoders :class:`EncodeError` naming the field at fault.

Conventions, as in Kafka's own Java code:

* A field the version does not have is left at its default when decoding. When encoding, a
  non-default value there raises :class:`EncodeError`, unless the schema marks the field
  ignorable (then it is silently dropped).
* Tagged fields are written only when they differ from their default; tags the decoder does
  not know (brokers add them to existing versions) are skipped.
* Booleans decode any non-zero byte as True.
* Arrays are lists, also those Kafka keys by a field ("mapKey"); records are ``bytes`` or
  None, to be read by :mod:`trio_brod.protocol.records`.
* Every class has ``API_KEY``, ``NAME``, ``MIN_VERSION``, ``MAX_VERSION``,
  ``MAX_STABLE_VERSION`` (lower when Kafka marks the highest version unstable) and
  ``FLEXIBLE_VERSION``; requests have ``RESPONSE`` and responses ``REQUEST``.
* ``ConsumerProtocolSubscription`` and ``ConsumerProtocolAssignment`` are encoded without
  the int16 version that precedes them in a JoinGroup/SyncGroup; write and read it yourself,
  and decode a newer member's data with ``decode_from`` (which ignores trailing fields).
"""

from __future__ import annotations

from trio_brod.protocol import _gen, records
from trio_brod.protocol._gen import *  # noqa: F403 - every message class, REQUESTS, RESPONSES
from trio_brod.protocol._primitives import Message
from trio_brod.protocol.errors import (
    BrodError,
    DecodeError,
    EncodeError,
    KafkaError,
    ProtocolError,
)
from trio_brod.protocol.frames import (
    FrameDecoder,
    FrameTooLarge,
    decode_response,
    encode_request,
    peek_correlation_id,
    response_header_version,
)

__all__ = [
    "BrodError",
    "DecodeError",
    "EncodeError",
    "FrameDecoder",
    "FrameTooLarge",
    "KafkaError",
    "Message",
    "ProtocolError",
    "decode_response",
    "encode_request",
    "peek_correlation_id",
    "records",
    "response_header_version",
]
__all__ += _gen.__all__
