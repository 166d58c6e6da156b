"""Known-answer tests of the generated codecs, written by hand from the Kafka protocol guide,
and the errors they raise for values they cannot write and bytes they cannot read."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from trio_brod.protocol import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    ConsumerGroupHeartbeatResponse,
    ConsumerProtocolSubscription,
    DecodeError,
    EncodeError,
    FetchRequest,
    FetchResponse,
    HeartbeatResponse,
    Message,
    MetadataRequest,
    MetadataResponse,
    ProduceRequest,
    ProduceResponse,
    RequestHeader,
    ResponseHeader,
    encode_request,
)


def test_api_versions_request_v0_frame() -> None:
    frame = encode_request(ApiVersionsRequest(), 0, correlation_id=1, client_id="abc")
    assert frame == bytes.fromhex(
        "0000000d"  # size: 13 bytes follow
        "0012"  # api key 18
        "0000"  # version 0
        "00000001"  # correlation id
        "0003616263"  # client id "abc", int16 length
    )


def test_flexible_request_v3_frame_has_compact_strings_and_tagged_fields() -> None:
    request = ApiVersionsRequest(client_software_name="trio-brod", client_software_version="1.0")
    frame = encode_request(request, 3, correlation_id=7, client_id="c")
    assert frame == bytes.fromhex(
        "0000001b"  # size 27
        "0012"
        "0003"
        "00000007"  # api key, version, correlation id
        "000163"  # client id: still a classic int16-length string in header v2
        "00"  # header tagged fields: none
        "0a"
        + b"trio-brod".hex()  # compact string: varint(9 + 1)
        + "04"
        + b"1.0".hex()
        + "00"  # body tagged fields: none
    )


def test_metadata_request_v1_null_topics_is_minus_one() -> None:
    assert MetadataRequest(topics=None).encode(1) == b"\xff\xff\xff\xff"
    topic = MetadataRequest.MetadataRequestTopic(name="a")
    assert MetadataRequest(topics=[topic]).encode(1) == bytes.fromhex("00000001000161")
    # flexible: compact array (0 = null) and compact nullable strings, v10 adds the topic id
    assert MetadataRequest(topics=None).encode(9)[:1] == b"\x00"
    assert MetadataRequest(topics=[topic]).encode(10) == (
        b"\x02" + bytes(16) + b"\x02a" + b"\x00" + b"\x01\x00\x00" + b"\x00"
    )


def test_produce_request_v3() -> None:
    partition = ProduceRequest.PartitionProduceData(index=0, records=b"abc")
    topic = ProduceRequest.TopicProduceData(name="t", partition_data=[partition])
    request = ProduceRequest(transactional_id=None, acks=-1, timeout_ms=1000, topic_data=[topic])
    expected = bytes.fromhex(
        "ffff"  # transactional id: null
        "ffff"  # acks -1
        "000003e8"  # timeout 1000
        "00000001"
        "000174"  # one topic, "t"
        "00000001"
        "00000000"
        "00000003616263"  # one partition, index 0, records b"abc"
    )
    assert request.encode(3) == expected
    assert ProduceRequest.decode(expected, 3) == request


def test_nullable_struct_uses_an_int8_marker() -> None:
    response = ConsumerGroupHeartbeatResponse(member_id="m", assignment=None)
    encoded = response.encode(0)
    assert encoded.endswith(b"\xff\x00")  # assignment: -1 (null), then the tagged fields
    assert ConsumerGroupHeartbeatResponse.decode(encoded, 0) == response
    response.assignment = ConsumerGroupHeartbeatResponse.Assignment()
    assert response.encode(0).endswith(b"\x01\x01\x00\x00")  # present, empty array, 2x tags
    assert ConsumerGroupHeartbeatResponse.decode(response.encode(0), 0) == response


def _api_versions_v3(tagged: bytes) -> bytes:
    return (
        b"\x00\x00"  # error code
        + b"\x02"  # one api key (compact array)
        + b"\x00\x12\x00\x00\x00\x04\x00"  # ApiVersions 0-4, no tagged fields
        + b"\x00\x00\x00\x0a"  # throttle time 10
        + tagged
    )


def test_unknown_tagged_fields_are_skipped() -> None:
    tagged = (
        b"\x03"  # three tagged fields
        + b"\x01\x08"
        + (5).to_bytes(8, "big")  # tag 1: FinalizedFeaturesEpoch = 5
        + b"\x63\x03xyz"  # tag 99, unknown: skipped
        + b"\xac\x02\x00"  # tag 300 (a two-byte varint), empty: skipped
    )
    response = ApiVersionsResponse.decode(_api_versions_v3(tagged), 3)
    assert response.finalized_features_epoch == 5
    assert response.throttle_time_ms == 10
    assert [(k.api_key, k.min_version, k.max_version) for k in response.api_keys] == [(18, 0, 4)]


def test_tagged_fields_are_written_only_when_not_default() -> None:
    response = ApiVersionsResponse()
    assert response.encode(3).endswith(b"\x00")
    response.finalized_features_epoch = 5
    response.zk_migration_ready = True
    assert response.encode(3).endswith(
        b"\x02" + b"\x01\x08" + (5).to_bytes(8, "big") + b"\x03\x01\x01"
    )


def test_known_tagged_field_with_wrong_size_is_rejected() -> None:
    tagged = b"\x01" + b"\x01\x04" + bytes(4)  # tag 1 is an int64, but the size says 4
    with pytest.raises(DecodeError, match="declares 4 bytes"):
        ApiVersionsResponse.decode(_api_versions_v3(tagged) + bytes(4), 3)


def test_tagged_struct_field_in_fetch_response() -> None:
    partition = FetchResponse.PartitionData(
        partition_index=1,
        current_leader=FetchResponse.LeaderIdAndEpoch(leader_id=3, leader_epoch=7),
        records=b"x",
    )
    response = FetchResponse(
        responses=[FetchResponse.FetchableTopicResponse(topic="t", partitions=[partition])]
    )
    assert FetchResponse.decode(response.encode(12), 12) == response
    # CurrentLeader is tagged from v12 and not ignorable: v11 cannot carry it
    with pytest.raises(EncodeError, match=r"partitions\[0\]\.current_leader is"):
        response.encode(11)


def test_bool_bytes_other_than_zero_and_one_are_true() -> None:
    # Like Kafka's Java code: any non-zero byte is true.
    decoded = MetadataRequest.decode(b"\x00\x00\x00\x00" + b"\x02", 4)
    assert decoded.allow_auto_topic_creation is True
    assert (
        MetadataRequest.decode(b"\x00\x00\x00\x00" + b"\x00", 4).allow_auto_topic_creation is False
    )


def test_request_header_class_matches_the_framing() -> None:
    header = RequestHeader(
        request_api_key=3, request_api_version=12, correlation_id=9, client_id="x"
    )
    frame = encode_request(MetadataRequest(topics=None), 12, correlation_id=9, client_id="x")
    assert frame[4:].startswith(header.encode(2))
    assert header.encode(2) == bytes.fromhex("0003000c0000000900017800")
    assert RequestHeader(client_id=None).encode(1).endswith(b"\xff\xff")
    assert ResponseHeader(correlation_id=5).encode(1) == b"\x00\x00\x00\x05\x00"


def test_consumer_protocol_subscription_round_trip_and_newer_versions() -> None:
    subscription = ConsumerProtocolSubscription(topics=["a", "b"], user_data=None, rack_id="r")
    encoded = subscription.encode(3)
    assert ConsumerProtocolSubscription.decode(encoded, 3) == subscription
    # A newer member may add fields at the end: decode_from reads what it knows.
    decoded, end = ConsumerProtocolSubscription.decode_from(encoded + b"future", 0, 3)
    assert (decoded, end) == (subscription, len(encoded))


# ------------------------------------------------------------------------------------ encode


def test_encode_rejects_versions_out_of_range() -> None:
    with pytest.raises(EncodeError, match=r"MetadataRequest v13.*0-12"):
        MetadataRequest().encode(13)


def test_encode_names_an_int_out_of_range() -> None:
    request = ProduceRequest(acks=40000)
    with pytest.raises(EncodeError, match=r"ProduceRequest v3: ProduceRequest\.acks = 40000"):
        request.encode(3)


def test_encode_names_a_nested_field() -> None:
    partitions = [ProduceRequest.PartitionProduceData(index=i) for i in (0, 2**31)]
    request = ProduceRequest(
        topic_data=[ProduceRequest.TopicProduceData(name="t", partition_data=partitions)]
    )
    for version in (8, 9):  # classic and flexible encodings
        with pytest.raises(EncodeError, match=r"topic_data\[0\]\.partition_data\[1\]\.index"):
            request.encode(version)


def test_encode_rejects_none_where_the_version_does_not_allow_it() -> None:
    with pytest.raises(EncodeError, match=r"topics is None.*not nullable in version 0"):
        MetadataRequest(topics=None).encode(0)
    topic = MetadataResponse.MetadataResponseTopic(name=None)
    with pytest.raises(EncodeError, match=r"topics\[0\]\.name is None"):
        MetadataResponse(topics=[topic]).encode(11)  # nullable only from v12
    assert MetadataResponse.decode(MetadataResponse(topics=[topic]).encode(12), 12).topics == [
        topic
    ]


def test_encode_rejects_non_default_values_in_missing_non_ignorable_fields() -> None:
    # AllowAutoTopicCreation exists from v4 and is not ignorable: v3 cannot say "false"
    with pytest.raises(EncodeError, match=r"allow_auto_topic_creation.*version 3 does not have"):
        MetadataRequest(allow_auto_topic_creation=False).encode(3)
    # ... but an ignorable field is silently dropped
    response = ProduceResponse(throttle_time_ms=5)  # ThrottleTimeMs (1+) is ignorable
    assert ProduceResponse.decode(response.encode(0), 0).throttle_time_ms == 0
    fetch = FetchRequest(rack_id="rack")  # RackId (11+) is ignorable
    assert FetchRequest.decode(fetch.encode(10), 10).rack_id == ""


def test_encode_rejects_too_long_strings() -> None:
    long_name = "x" * 0x8000
    for version in (1, 9):
        with pytest.raises(EncodeError, match="over Kafka's limit 32767"):
            MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=long_name)]).encode(
                version
            )
    assert MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name="x" * 0x7FFF)]).encode(
        9
    )


def _bad(value: object) -> Any:
    """A value of the wrong type, for the type checker's peace of mind."""
    return value


def _produce_data(records: bytes) -> ProduceRequest.TopicProduceData:
    partition = ProduceRequest.PartitionProduceData(index=0, records=records)
    return ProduceRequest.TopicProduceData(name="t", partition_data=[partition])


@pytest.mark.parametrize(
    ("message", "version", "match"),
    [
        (ProduceRequest(acks=_bad("1")), 9, r"acks must be an int"),
        (ProduceRequest(transactional_id=_bad(5)), 9, r"transactional_id must be a str"),
        (ProduceRequest(topic_data=[_bad(1)]), 9, r"topic_data\[0\] must be a ProduceRequest\.Top"),
        (ProduceRequest(topic_data=_bad(None)), 9, r"topic_data is None"),
        (ProduceRequest(transactional_id="\udc80"), 9, r"cannot be encoded as UTF-8"),
        (
            MetadataResponse(
                topics=[_bad(MetadataResponse.MetadataResponseTopic(topic_id=_bad("x")))]
            ),
            12,
            r"must be a uuid.UUID",
        ),
        (MetadataResponse(brokers=_bad((1, 2))), 12, r"brokers\[0\] must be a MetadataRes"),
        (MetadataResponse(brokers=_bad("xy")), 1, r"brokers must be a list, not str"),
        (ProduceRequest(topic_data=[_produce_data(_bad("str"))]), 9, r"records must be bytes"),
        (ProduceRequest(topic_data=[_produce_data(_bad(["x"]))]), 3, r"records must be bytes"),
        (ProduceRequest(topic_data=[_produce_data(_bad(7))]), 3, r"records must be bytes"),
    ],
)
def test_encode_explains_bad_types(message: Message, version: int, match: str) -> None:
    with pytest.raises(EncodeError, match=match):
        message.encode(version)
    with pytest.raises(EncodeError, match=match):
        encode_request(message, version, 1, "client")


# ------------------------------------------------------------------------------------ decode


def test_decode_rejects_trailing_bytes() -> None:
    with pytest.raises(DecodeError, match=r"HeartbeatResponse v0: 1 unexpected bytes"):
        HeartbeatResponse.decode(b"\x00\x00\x00", 0)


def test_decode_rejects_unsupported_versions() -> None:
    with pytest.raises(DecodeError, match=r"HeartbeatResponse v9"):
        HeartbeatResponse.decode(b"\x00\x00", 9)


def test_decode_reports_truncation() -> None:
    encoded = MetadataResponse(cluster_id="c").encode(12)
    for cut in range(len(encoded)):
        with pytest.raises(DecodeError, match=r"MetadataResponse v12: .*(truncated|past the end)"):
            MetadataResponse.decode(encoded[:cut], 12)


def test_decode_reports_negative_lengths_of_non_nullable_fields() -> None:
    # v1: no brokers, controller -1, one topic: error code 0, then a name of length -1
    data = bytes.fromhex("00000000ffffffff000000010000ffff") + bytes(16)
    with pytest.raises(DecodeError, match=r"at byte 16: non-nullable string has length -1"):
        MetadataResponse.decode(data, 1)


def test_decode_refuses_huge_counts_before_allocating() -> None:
    data = bytes.fromhex("000000007fffffff")  # v3: throttle time, then 2**31 - 1 brokers
    with pytest.raises(DecodeError, match=r"MetadataResponse v3: at byte 8: array of 2147483647"):
        MetadataResponse.decode(data, 3)
    # v2, deeper: one topic "t" claiming 2**31 - 1 partitions
    data = bytes.fromhex("00000000ffff00000000000000010000000174007fffffff")
    with pytest.raises(DecodeError, match=r"at byte 24: array of 2147483647"):
        MetadataResponse.decode(data, 2)
    # flexible: a compact count of 2**32 - 2
    data = bytes.fromhex("00000000ffffffff0f")
    with pytest.raises(DecodeError, match=r"v9: at byte 9: array of 4294967294"):
        MetadataResponse.decode(data, 9)


def test_decode_reports_bad_utf8_with_its_offset() -> None:
    data = b"\x00\x00\x00\x00" + b"\x00\x00\x00\x01" + b"\x00\x00" + b"\x00\x02a\xff" + bytes(8)
    with pytest.raises(DecodeError, match=r"at byte 13: string is not valid UTF-8"):
        MetadataResponse.decode(data, 0)


def test_decode_rejects_overlong_varints() -> None:
    data = b"\x00\x00" + b"\xff\xff\xff\xff\xff\x01"  # api keys count: 6-byte varint
    with pytest.raises(DecodeError, match=r"at byte 2: unsigned varint is longer than 5 bytes"):
        ApiVersionsResponse.decode(data, 3)


def test_decode_accepts_every_kind_of_buffer() -> None:
    topic_id = uuid.uuid4()
    response = MetadataResponse(topics=[MetadataResponse.MetadataResponseTopic(topic_id=topic_id)])
    encoded = response.encode(12)
    assert MetadataResponse.decode(memoryview(bytearray(encoded)).cast("b"), 12) == response
    with pytest.raises(TypeError):
        MetadataResponse.decode(encoded.decode("latin-1"), 12)  # type: ignore[arg-type]
