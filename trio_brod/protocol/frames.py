"""Request and response framing, sans-IO.

On the wire, every Kafka request and response is a *frame*: a 4-byte big-endian size, then
that many bytes. A request frame holds a request header and the request body; a response frame
holds a response header and the body.

* Request header v1 (``RequestApiKey`` int16, ``RequestApiVersion`` int16, ``CorrelationId``
  int32, ``ClientId`` nullable string) is used for non-flexible request versions; v2 adds an
  empty tagged-field section for flexible ones. ``ClientId`` keeps its classic int16 length even
  in v2, so that any broker can read the header of any ApiVersions request.
* Response header v0 is just the ``CorrelationId``; v1 (flexible versions) adds tagged fields.
  ApiVersions responses always use v0, whatever the version: a client must be able to read the
  answer before it knows which versions the broker speaks.

Nothing here does I/O: :func:`encode_request` returns bytes to send, :class:`FrameDecoder`
is fed bytes as they arrive and hands back whole frames.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import TypeVar

from trio_brod.protocol._gen import RESPONSES
from trio_brod.protocol._primitives import (
    Buffer,
    DecodeFailure,
    Message,
    explain_encode_failure,
    join_encoded,
    skip_tagged_fields,
)
from trio_brod.protocol.errors import DecodeError, EncodeError, ProtocolError

__all__ = [
    "FrameDecoder",
    "FrameTooLarge",
    "decode_response",
    "encode_request",
    "peek_correlation_id",
    "response_header_version",
]

_M = TypeVar("_M", bound=Message)

#: ApiVersions' key: its response header is v0 in every version.
_API_VERSIONS_KEY = 18

_SIZE = struct.Struct(">i")
_MAX_SIZE = 2**31 - 1
# RequestApiKey, RequestApiVersion, CorrelationId and the length of ClientId
_REQUEST_HEADER = struct.Struct(">hhih")


class FrameTooLarge(ProtocolError):
    """A frame's size prefix is over the decoder's limit (or the stream is not Kafka at all)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"frame of {size} bytes is larger than the limit of {limit} bytes "
            f"(max_frame_size); the peer may not be speaking the Kafka protocol"
        )
        self.size = size
        self.limit = limit


def encode_request(
    request: Message, version: int, correlation_id: int, client_id: str | None
) -> bytes:
    """Encode a whole request frame: size prefix, request header and body.

    The header is v2 if *version* of the request is flexible, else v1.

    Raises:
        EncodeError: The request cannot be written in that version, the correlation id does
            not fit an int32, or the client id is too long.
    """
    cls = type(request)
    parts: list[bytes] = [b"", b""]  # size and header, filled in below
    request.encode_into(version, parts)  # validates the version and the fields
    flexible = cls.FLEXIBLE_VERSION is not None and version >= cls.FLEXIBLE_VERSION
    try:
        encoded_id = None if client_id is None else client_id.encode()
        header = _REQUEST_HEADER.pack(
            cls.API_KEY, version, correlation_id, -1 if encoded_id is None else len(encoded_id)
        )
    except (struct.error, UnicodeEncodeError) as exc:
        raise EncodeError(
            f"cannot encode the request header of {cls.NAME} (correlation id "
            f"{correlation_id!r}, client id {client_id!r:.60}): {exc}"
        ) from None
    if encoded_id is not None:
        header += encoded_id
    if flexible:
        header += b"\x00"  # no tagged fields
    parts[1] = header
    try:
        size = sum(map(len, parts))
    except TypeError as exc:  # a bytes field holding something without a length
        raise explain_encode_failure(request, version, exc) from None
    if size > _MAX_SIZE:
        raise EncodeError(f"{cls.NAME} v{version} request of {size} bytes is too large")
    parts[0] = _SIZE.pack(size)
    return join_encoded(request, version, parts)


def response_header_version(api_key: int, version: int) -> int:
    """The response header version for a response: 1 if *version* is flexible, else 0.

    ApiVersions (key 18) is the exception: its response header is always v0.

    Raises:
        ValueError: The API key is not one trio-brod knows.
    """
    if api_key == _API_VERSIONS_KEY:
        return 0
    try:
        cls = RESPONSES[api_key]
    except KeyError:
        raise ValueError(f"unknown API key {api_key}") from None
    return _header_version(cls, version)


def _header_version(cls: type[Message], version: int) -> int:
    if cls.API_KEY == _API_VERSIONS_KEY:
        return 0
    return 1 if cls.FLEXIBLE_VERSION is not None and version >= cls.FLEXIBLE_VERSION else 0


def peek_correlation_id(frame: Buffer) -> int:
    """Read the correlation id of a response frame (the bytes after the size prefix).

    Both response header versions start with it, so this works before the caller knows which
    request, and so which response type, the frame answers.

    Raises:
        DecodeError: The frame is shorter than 4 bytes.
    """
    if len(frame) < 4:
        raise DecodeError(f"response frame of {len(frame)} bytes has no correlation id")
    correlation_id: int = _SIZE.unpack_from(frame)[0]
    return correlation_id


def decode_response(frame: Buffer, response_cls: type[_M], version: int) -> _M:
    """Decode a response frame (the bytes after the size prefix): skip the response header,
    then decode the body, which must fill the rest of the frame.

    Raises:
        DecodeError: The frame is not a valid response of that type and version.
    """
    if len(frame) < 4:
        raise DecodeError(f"response frame of {len(frame)} bytes has no correlation id")
    pos = 4
    if _header_version(response_cls, version) == 1:
        try:
            pos = skip_tagged_fields(frame, pos)
        except DecodeFailure as exc:
            raise DecodeError(f"ResponseHeader v1: at byte {exc.offset}: {exc.what}") from None
        except IndexError:
            raise DecodeError("ResponseHeader v1: the frame ends inside the header") from None
    response, end = response_cls.decode_from(frame, pos, version)
    if end != len(frame):
        raise DecodeError(
            f"{response_cls.NAME} v{version}: {len(frame) - end} unexpected bytes after the "
            f"response (it ends at byte {end} of the {len(frame)}-byte frame)"
        )
    return response


class FrameDecoder:
    """Split a byte stream into frames, h11-style: :meth:`feed` it what the socket gives,
    then call :meth:`next_frame` until it returns None.

    Example::

        decoder = FrameDecoder(max_frame_size=100 * 1024 * 1024)
        while True:
            decoder.feed(await stream.receive_some())
            while (frame := decoder.next_frame()) is not None:
                handle(frame)

    Received chunks are kept as they are, in a queue, and a frame is copied out of them once:
    many small frames in one chunk are sliced out one after the other, and a 100 MB frame that
    arrives in 64 KiB pieces is joined once, when its last piece is in. No call is slower than
    the frame it returns.

    :meth:`next_frame` raises :class:`FrameTooLarge` or :class:`DecodeError` for a size prefix
    over *max_frame_size* or below zero; after either, the stream is out of step and the
    connection should be closed.
    """

    def __init__(self, max_frame_size: int) -> None:
        if max_frame_size < 0:
            raise ValueError(f"max_frame_size must not be negative, not {max_frame_size}")
        self.max_frame_size = max_frame_size
        self._chunks: deque[bytes] = deque()
        self._offset = 0  # where the unread bytes of the first chunk start
        self._buffered = 0  # unread bytes over all chunks
        self._frame_size = -1  # size of the frame being received, once its prefix is read

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet returned as frames."""
        return self._buffered

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes received from the peer (a copy is kept if they are not ``bytes``)."""
        if not data:
            return
        if not isinstance(data, bytes):
            data = bytes(data)
        self._chunks.append(data)
        self._buffered += len(data)

    def next_frame(self) -> bytes | None:
        """Return the next complete frame, without its size prefix, or None if more bytes are
        needed first.

        Raises:
            FrameTooLarge: A size prefix is over *max_frame_size*; raised as soon as the prefix
                is in, without waiting for the frame.
            DecodeError: A size prefix is negative.
        """
        size = self._frame_size
        if size < 0:
            if self._buffered < 4:
                return None
            size = _SIZE.unpack(self._take(4))[0]
            if size < 0:
                raise DecodeError(f"frame size prefix is negative ({size})")
            if size > self.max_frame_size:
                raise FrameTooLarge(size, self.max_frame_size)
            self._frame_size = size
        if self._buffered < size:
            return None
        self._frame_size = -1
        return self._take(size)

    def _take(self, count: int) -> bytes:
        """Remove and return the next *count* bytes (which must be buffered)."""
        if not count:
            return b""
        self._buffered -= count
        chunks = self._chunks
        first = chunks[0] if chunks else b""
        start = self._offset
        end = start + count
        if end <= len(first):
            # The common case: the bytes are all in the first chunk. Slice, without copying
            # the rest of the chunk, which may hold many more frames.
            if start == 0 and end == len(first):
                chunks.popleft()
                self._offset = 0
                return first
            if end == len(first):
                chunks.popleft()
                self._offset = 0
            else:
                self._offset = end
            return first[start:end]
        # The bytes span chunks: gather the pieces and join them once.
        pieces = []
        needed = count
        while needed:
            chunk = chunks[0]
            available = len(chunk) - self._offset
            if available <= needed:
                pieces.append(chunk[self._offset :] if self._offset else chunk)
                chunks.popleft()
                self._offset = 0
                needed -= available
            else:
                pieces.append(chunk[self._offset : self._offset + needed])
                self._offset += needed
                needed = 0
        return b"".join(pieces)
