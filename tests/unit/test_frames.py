"""Request/response framing and the sans-IO FrameDecoder."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_brod.protocol import (
    REQUESTS,
    RESPONSES,
    ApiVersionsResponse,
    DecodeError,
    EncodeError,
    FetchRequest,
    FrameDecoder,
    FrameTooLarge,
    HeartbeatResponse,
    MetadataRequest,
    MetadataResponse,
    ProduceRequest,
    ProtocolError,
    SaslAuthenticateRequest,
    decode_response,
    encode_request,
    peek_correlation_id,
    response_header_version,
)


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


# ------------------------------------------------------------------------ encode_request


def test_encode_request_uses_header_v1_for_classic_versions() -> None:
    frame = encode_request(MetadataRequest(topics=None), 8, correlation_id=5, client_id=None)
    body = MetadataRequest(topics=None).encode(8)
    assert frame == _frame(bytes.fromhex("0003000800000005ffff") + body)


def test_encode_request_uses_header_v2_for_flexible_versions() -> None:
    frame = encode_request(MetadataRequest(topics=None), 9, correlation_id=5, client_id="id")
    body = MetadataRequest(topics=None).encode(9)
    assert frame == _frame(bytes.fromhex("00030009000000050002696400") + body)


def test_encode_request_copies_a_large_blob_once_and_keeps_it_whole() -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB
    partition = ProduceRequest.PartitionProduceData(index=0, records=blob)
    request = ProduceRequest(
        acks=1, topic_data=[ProduceRequest.TopicProduceData(name="t", partition_data=[partition])]
    )
    frame = encode_request(request, 9, correlation_id=1, client_id="c")
    assert struct.unpack_from(">i", frame)[0] == len(frame) - 4
    assert frame.endswith(blob + b"\x00\x00\x00")  # then the partition, topic, body tags


@pytest.mark.parametrize(
    ("correlation_id", "client_id"), [(2**31, "c"), (-(2**31) - 1, "c"), (1, "x" * 40000)]
)
def test_encode_request_rejects_bad_header_values(correlation_id: int, client_id: str) -> None:
    with pytest.raises(EncodeError, match="request header of MetadataRequest"):
        encode_request(MetadataRequest(), 9, correlation_id, client_id)


def test_encode_request_names_a_bytes_field_holding_a_str() -> None:
    # A str has a length, so it gets as far as joining the frame: the error must still
    # name the field, not be a bare TypeError from bytes.join.
    request = SaslAuthenticateRequest(auth_bytes="not bytes")  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match=r"SaslAuthenticateRequest.auth_bytes must be bytes"):
        encode_request(request, 2, 1, "c")


def test_encode_request_rejects_unsupported_versions() -> None:
    with pytest.raises(EncodeError, match="FetchRequest v99"):
        encode_request(FetchRequest(), 99, 1, None)


# ------------------------------------------------------------------------ responses


def test_response_header_version() -> None:
    assert response_header_version(MetadataResponse.API_KEY, 8) == 0
    assert response_header_version(MetadataResponse.API_KEY, 9) == 1
    for version in range(5):
        assert response_header_version(ApiVersionsResponse.API_KEY, version) == 0
    with pytest.raises(ValueError, match="unknown API key 9999"):
        response_header_version(9999, 0)


def test_every_request_knows_its_response() -> None:
    assert set(REQUESTS) == set(RESPONSES)
    for key, request in REQUESTS.items():
        assert key == request.API_KEY
        assert request.RESPONSE is RESPONSES[key]  # type: ignore[attr-defined]
        assert request.RESPONSE.REQUEST is request  # type: ignore[attr-defined]


def test_peek_correlation_id() -> None:
    assert peek_correlation_id(b"\x00\x00\x01\x02rest") == 258
    assert peek_correlation_id(memoryview(b"\xff\xff\xff\xfe")) == -2
    with pytest.raises(DecodeError):
        peek_correlation_id(b"\x00\x00")


def test_decode_response_header_v0() -> None:
    body = HeartbeatResponse(throttle_time_ms=3, error_code=27).encode(3)
    frame = b"\x00\x00\x00\x07" + body
    assert decode_response(frame, HeartbeatResponse, 3) == HeartbeatResponse(3, 27)


def test_decode_response_header_v1_skips_tagged_fields() -> None:
    body = HeartbeatResponse(throttle_time_ms=3, error_code=27).encode(4)
    header = b"\x00\x00\x00\x07" + b"\x01" + b"\x05\x02hi"  # one unknown tagged field
    assert decode_response(header + body, HeartbeatResponse, 4) == HeartbeatResponse(3, 27)
    with pytest.raises(DecodeError, match="ResponseHeader v1"):
        decode_response(b"\x00\x00\x00\x07\x01\x05\x09hi", HeartbeatResponse, 4)
    with pytest.raises(DecodeError, match="ResponseHeader v1"):
        decode_response(b"\x00\x00\x00\x07", HeartbeatResponse, 4)


def test_decode_response_api_versions_header_is_always_v0() -> None:
    body = ApiVersionsResponse(error_code=35).encode(3)
    response = decode_response(b"\x00\x00\x00\x01" + body, ApiVersionsResponse, 3)
    assert response.error_code == 35


def test_decode_response_rejects_leftovers_and_short_frames() -> None:
    body = HeartbeatResponse().encode(0)
    with pytest.raises(DecodeError, match="2 unexpected bytes"):
        decode_response(b"\x00\x00\x00\x01" + body + b"??", HeartbeatResponse, 0)
    with pytest.raises(DecodeError):
        decode_response(b"\x00\x00", HeartbeatResponse, 0)


# ------------------------------------------------------------------------ FrameDecoder


def test_frame_decoder_byte_at_a_time() -> None:
    frames = [b"first", b"", b"third frame"]
    stream = b"".join(_frame(f) for f in frames)
    decoder = FrameDecoder(max_frame_size=100)
    received = []
    for i in range(len(stream)):
        decoder.feed(stream[i : i + 1])
        while (frame := decoder.next_frame()) is not None:
            received.append(frame)
    assert received == frames
    assert decoder.buffered == 0
    assert decoder.next_frame() is None


def test_frame_decoder_many_frames_in_one_chunk() -> None:
    frames = [bytes([i % 256]) * (i % 7) for i in range(1000)]
    decoder = FrameDecoder(max_frame_size=100)
    decoder.feed(b"".join(_frame(f) for f in frames) + b"\x00\x00")  # and half a prefix
    received = []
    while (frame := decoder.next_frame()) is not None:
        received.append(frame)
    assert received == frames
    assert decoder.buffered == 2


def test_frame_decoder_large_frame_in_pieces() -> None:
    payload = bytes(range(256)) * (8 * 4096)  # 8 MiB
    stream = _frame(payload) + _frame(b"next")
    decoder = FrameDecoder(max_frame_size=len(payload))
    received = []
    for start in range(0, len(stream), 65536):
        decoder.feed(memoryview(stream)[start : start + 65536])
        while (frame := decoder.next_frame()) is not None:
            received.append(frame)
    assert received == [payload, b"next"]


def test_frame_decoder_rejects_oversized_prefix_at_once() -> None:
    decoder = FrameDecoder(max_frame_size=1000)
    decoder.feed(struct.pack(">i", 1001))  # only the prefix has arrived
    with pytest.raises(FrameTooLarge, match="1001 bytes is larger than the limit of 1000") as info:
        decoder.next_frame()
    assert isinstance(info.value, ProtocolError)
    assert (info.value.size, info.value.limit) == (1001, 1000)


def test_frame_decoder_rejects_negative_prefix() -> None:
    decoder = FrameDecoder(max_frame_size=1000)
    decoder.feed(b"\xff\xff\xff\xfe")
    with pytest.raises(DecodeError, match="negative"):
        decoder.next_frame()


def test_frame_decoder_limit_is_inclusive() -> None:
    decoder = FrameDecoder(max_frame_size=3)
    decoder.feed(_frame(b"abc"))
    assert decoder.next_frame() == b"abc"


@settings(max_examples=100, deadline=None)
@given(
    frames=st.lists(st.binary(max_size=40), max_size=10),
    cuts=st.lists(st.integers(0, 500), max_size=12),
)
def test_frame_decoder_any_split_gives_the_same_frames(
    frames: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(_frame(f) for f in frames)
    points = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    decoder = FrameDecoder(max_frame_size=40)
    received = []
    for start, end in itertools.pairwise(points):
        decoder.feed(bytearray(stream[start:end]))
        while (frame := decoder.next_frame()) is not None:
            received.append(frame)
    assert received == frames


def test_metadata_response_through_frames() -> None:
    response = MetadataResponse(
        brokers=[MetadataResponse.MetadataResponseBroker(node_id=1, host="h", port=9092)],
        topics=[MetadataResponse.MetadataResponseTopic(name="t")],
    )
    frame = _frame(b"\x00\x00\x00\x2a" + b"\x00" + response.encode(12))
    decoder = FrameDecoder(max_frame_size=1 << 20)
    decoder.feed(frame)
    payload = decoder.next_frame()
    assert payload is not None
    assert peek_correlation_id(payload) == 42
    assert decode_response(payload, MetadataResponse, 12) == response
