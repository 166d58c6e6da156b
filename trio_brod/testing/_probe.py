"""Two hand-built Kafka requests over a blocking socket, to tell when brokers are ready.

The harness must not depend on the client it tests, and a JVM tool costs a second of start-up
on every poll, so readiness checks speak the wire protocol directly. Only two old, stable,
non-flexible versions are needed:

* ApiVersions v0 (api key 18): the broker answers once its request handlers run.
* Metadata v4 (api key 3): which brokers are alive (registered and unfenced) and which
  partitions have leaders. v4 is the first version where asking for a topic does not create
  it (``allow_auto_topic_creation``), and the last before the response grows fields we would
  have to skip.

Request header v1: int16 api_key, int16 api_version, int32 correlation_id, int16-length
client_id. Response header v0: int32 correlation_id. Every message is preceded by its int32
size.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from trio_brod.protocol.errors import DecodeError

__all__ = [
    "BrokerInfo",
    "ClusterMetadata",
    "PartitionInfo",
    "TopicInfo",
    "api_versions",
    "metadata",
]

_CLIENT_ID = b"trio-brod-testing"
_API_VERSIONS = 18
_METADATA = 3
# The most a readiness probe accepts: a Metadata response for thousands of partitions is a
# few hundred KiB; anything far larger means we are not talking to a Kafka broker.
_MAX_RESPONSE = 64 * 1024 * 1024

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


@dataclass(frozen=True)
class BrokerInfo:
    """A broker as Metadata lists it."""

    node_id: int
    host: str
    port: int
    rack: str | None


@dataclass(frozen=True)
class PartitionInfo:
    """One partition as Metadata describes it; ``leader`` is -1 while there is none."""

    error_code: int
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True)
class TopicInfo:
    """One topic as Metadata describes it (``error_code`` 3: it does not exist)."""

    error_code: int
    name: str
    is_internal: bool
    partitions: dict[int, PartitionInfo] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterMetadata:
    """A Metadata v4 response: live brokers, the controller id and the topics asked for."""

    brokers: dict[int, BrokerInfo]
    cluster_id: str | None
    controller_id: int
    topics: dict[str, TopicInfo]


class _Reader:
    """Reads big-endian fields from a response, raising DecodeError when it runs short."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, n: int) -> bytes:
        end = self._pos + n
        if n < 0 or end > len(self._data):
            raise DecodeError(
                f"Metadata response truncated: wanted {n} bytes at offset {self._pos}, "
                f"{len(self._data) - self._pos} left"
            )
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def int8(self) -> int:
        return self._take(1)[0]

    def int16(self) -> int:
        value: int = _I16.unpack(self._take(2))[0]
        return value

    def int32(self) -> int:
        value: int = _I32.unpack(self._take(4))[0]
        return value

    def nullable_string(self) -> str | None:
        length = self.int16()
        if length == -1:
            return None
        try:
            return self._take(length).decode()
        except UnicodeDecodeError as exc:
            raise DecodeError(f"string in Metadata response is not UTF-8: {exc}") from exc

    def string(self) -> str:
        value = self.nullable_string()
        if value is None:
            raise DecodeError("null where Metadata response needs a string")
        return value

    def count(self) -> int:
        n = self.int32()
        if n < 0:
            # Nullable arrays do not occur in the responses we read.
            raise DecodeError(f"negative array length {n} in Metadata response")
        return n

    def int32_array(self) -> tuple[int, ...]:
        return tuple(self.int32() for _ in range(self.count()))


def _header(api_key: int, api_version: int, correlation_id: int) -> bytes:
    return struct.pack(">hhih", api_key, api_version, correlation_id, len(_CLIENT_ID)) + _CLIENT_ID


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise ConnectionError("broker closed the connection before answering")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _round_trip(
    address: tuple[str, int], request: bytes, correlation_id: int, timeout: float
) -> bytes:
    """Send one framed request on a new connection; return the response body after the header.

    Raises OSError (ConnectionError, TimeoutError ...) when the broker cannot be reached, and
    DecodeError when what comes back is not a Kafka response to this request.
    """
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(_I32.pack(len(request)) + request)
        (size,) = _I32.unpack(_recv_exactly(sock, 4))
        if not 4 <= size <= _MAX_RESPONSE:
            raise DecodeError(f"implausible response size {size} from {address}")
        response = _recv_exactly(sock, size)
    (got,) = _I32.unpack_from(response)
    if got != correlation_id:
        raise DecodeError(f"correlation id {got} in response, expected {correlation_id}")
    return response[4:]


def api_versions(host: str, port: int, *, timeout: float = 2.0) -> int:
    """Send ApiVersions v0 and return the error code of the answer (0 when all is well).

    Raises:
        OSError: The broker could not be reached or closed the connection.
        DecodeError: The answer is not an ApiVersions response.
    """
    correlation_id = 1
    body = _round_trip(
        (host, port), _header(_API_VERSIONS, 0, correlation_id), correlation_id, timeout
    )
    if len(body) < 2:
        raise DecodeError("ApiVersions response has no error code")
    error_code: int = _I16.unpack_from(body)[0]
    return error_code


def metadata(
    host: str, port: int, topics: list[str] | None = None, *, timeout: float = 5.0
) -> ClusterMetadata:
    """Send Metadata v4 and decode the answer.

    Args:
        host: The broker's host.
        port: The broker's port.
        topics: The topics to describe; ``None`` for all, ``[]`` for none (brokers only).
            Topics are never created by asking.
        timeout: Seconds for connecting, and for each read.

    Raises:
        OSError: The broker could not be reached or closed the connection.
        DecodeError: The answer is not a Metadata v4 response.
    """
    correlation_id = 2
    request = bytearray(_header(_METADATA, 4, correlation_id))
    if topics is None:
        request += _I32.pack(-1)
    else:
        request += _I32.pack(len(topics))
        for name in topics:
            encoded = name.encode()
            request += _I16.pack(len(encoded)) + encoded
    request += b"\x00"  # allow_auto_topic_creation = false
    body = _round_trip((host, port), bytes(request), correlation_id, timeout)
    return _decode_metadata_v4(body)


def _decode_metadata_v4(body: bytes) -> ClusterMetadata:
    r = _Reader(body)
    r.int32()  # throttle_time_ms
    brokers = {}
    for _ in range(r.count()):
        broker = BrokerInfo(
            node_id=r.int32(), host=r.string(), port=r.int32(), rack=r.nullable_string()
        )
        brokers[broker.node_id] = broker
    cluster_id = r.nullable_string()
    controller_id = r.int32()
    topics = {}
    for _ in range(r.count()):
        error_code = r.int16()
        name = r.string()
        is_internal = r.int8() != 0
        partitions = {}
        for _ in range(r.count()):
            p = PartitionInfo(
                error_code=r.int16(),
                partition=r.int32(),
                leader=r.int32(),
                replicas=r.int32_array(),
                isr=r.int32_array(),
            )
            partitions[p.partition] = p
        topics[name] = TopicInfo(error_code, name, is_internal, partitions)
    return ClusterMetadata(brokers, cluster_id, controller_id, topics)
