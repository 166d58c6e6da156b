"""trio_brod.testing.strategies draws what it promises."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_brod.protocol import REQUESTS, RESPONSES
from trio_brod.protocol.records import decode_batches, encode_batch
from trio_brod.testing import strategies as kst
from trio_brod.testing.fake._model import check_topic_name
from trio_brod.testing.fake._wire import parse_request


@given(kst.records())
def test_records_encode_and_decode_back(records: list) -> None:
    (batch,) = decode_batches(encode_batch(records)).batches
    assert [(r.timestamp, r.key, r.value, list(r.headers)) for r in batch.records()] == [
        (t, k, v, list(h)) for t, k, v, h in records
    ]


@given(kst.record_batches(idempotent=True))
def test_idempotent_batches_carry_producer_state(data: bytes) -> None:
    (batch,) = decode_batches(data).batches
    assert batch.producer_id >= 0
    assert batch.base_sequence >= 0
    assert batch.base_sequence + batch.last_offset_delta <= 2**31 - 1


@given(kst.topic_layouts())
def test_topic_names_are_legal(layout: dict[str, int]) -> None:
    for name, partitions in layout.items():
        check_topic_name(name)  # raises for a name Kafka refuses
        assert partitions >= 1


@settings(max_examples=200)
@given(st.data())
def test_messages_of_any_class_round_trip(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from([*REQUESTS.values(), *RESPONSES.values()]))
    version = data.draw(st.integers(cls.MIN_VERSION, cls.MAX_VERSION))
    message = data.draw(kst.messages(cls, version))
    encoded = message.encode(version)
    assert cls.decode(encoded, version).encode(version) == encoded


@settings(max_examples=200)
@given(kst.request_frames())
def test_request_frames_parse_as_the_fake_reads_them(frame: bytes) -> None:
    (size,) = struct.unpack_from(">i", frame)
    assert size == len(frame) - 4
    request = parse_request(frame[4:])
    assert request.body is not None
    assert type(request.body) is REQUESTS[request.api_key]
