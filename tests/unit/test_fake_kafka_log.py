"""The fake Kafka's pure cores: the partition log (validation, sequences, offsets) and the
cluster model (topics, leaders), with hypothesis; and the server against mutated frames.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import socket
import subprocess
import sys

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_brod.protocol import REQUESTS
from trio_brod.protocol.errors import (
    CorruptMessageError,
    InvalidPartitionsError,
    InvalidProducerEpochError,
    InvalidRecordError,
    InvalidReplicationFactorError,
    InvalidTopicError,
    MessageTooLargeError,
    OffsetOutOfRangeError,
    OutOfOrderSequenceNumberError,
    TopicAlreadyExistsError,
)
from trio_brod.protocol.records import (
    ControlRecordType,
    decode_batches,
    encode_batch,
    encode_control_batch,
)
from trio_brod.testing import fake_kafka
from trio_brod.testing import strategies as kst
from trio_brod.testing.fake import ClusterModel, LogError, ModelError, PartitionLog
from trio_brod.testing.fake._wire import fit


def batch(values: list[bytes], ts: int = 1000, **producer: int) -> bytes:
    return encode_batch([(ts + i, None, v, ()) for i, v in enumerate(values)], **producer)


def read_all(log: PartitionLog, offset: int = 0) -> list[tuple[int, bytes | None]]:
    data = log.read(offset, 1 << 30, upto=log.high_watermark, min_one=True)
    return [
        (r.offset, r.value)
        for b in decode_batches(data).batches
        for r in b.records()
        if r.offset >= offset
    ]


@given(st.lists(kst.record_batches(idempotent=False), max_size=8))
def test_appended_batches_get_consecutive_offsets_and_read_back(batches: list[bytes]) -> None:
    log = PartitionLog()
    expected: list[tuple[int, bytes | None]] = []
    for data in batches:
        base = log.append(data).base_offset
        assert base == log.high_watermark - len(decode_batches(data).batches[0])
        (decoded,) = decode_batches(data).batches
        expected += [(base + r.offset, r.value) for r in decoded.records()]
    assert log.high_watermark == len(expected)
    assert read_all(log) == expected
    for batch_ in log.batches:  # the stored bytes keep a valid CRC after the offset rewrite
        decode_batches(batch_.data, verify_crc=True)


@given(
    st.lists(st.integers(1, 5), min_size=1, max_size=6),
    st.data(),
)
def test_read_cuts_at_max_bytes_but_returns_one_batch_first(
    sizes: list[int], data: st.DataObject
) -> None:
    log = PartitionLog()
    for i, size in enumerate(sizes):
        log.append(batch([b"x" * 10 * i] * size))
    offset = data.draw(st.integers(0, log.high_watermark))
    max_bytes = data.draw(st.integers(0, 2000))
    for min_one in (True, False):
        got = log.read(offset, max_bytes, upto=log.high_watermark, min_one=min_one)
        whole = log.read(offset, 1 << 30, upto=log.high_watermark, min_one=False)
        assert whole.startswith(got)
        first = next((b for b in log.batches if b.last_offset >= offset), None)
        floor = len(first.data) if (min_one and first is not None) else 0
        assert len(got) == min(len(whole), max(max_bytes, floor))


def test_produced_batches_are_validated_as_kafka_does() -> None:
    log = PartitionLog(max_message_bytes=200)
    good = batch([b"a"])
    corrupt = bytearray(good)
    corrupt[-1] ^= 1
    cases = {
        bytes(corrupt): CorruptMessageError,
        good + good: InvalidRecordError,
        good[:-3]: CorruptMessageError,
        batch([b"x" * 300]): MessageTooLargeError,
        encode_control_batch(
            ControlRecordType.COMMIT,
            producer_id=1,
            producer_epoch=0,
            coordinator_epoch=0,
            timestamp_ms=0,
        ): InvalidRecordError,
    }
    for data, error in cases.items():
        with pytest.raises(LogError) as raised:
            log.append(data)
        assert raised.value.error is error
    assert log.high_watermark == 0


def test_idempotent_sequences() -> None:
    log = PartitionLog()
    pid = {"producer_id": 7, "producer_epoch": 0}
    assert log.append(batch([b"a", b"b"], base_sequence=0, **pid)).base_offset == 0
    # A retry of the last batch (or an older one of the last five) is not written again.
    retry = log.append(batch([b"a", b"b"], base_sequence=0, **pid))
    assert (retry.base_offset, retry.duplicate) == (0, True)
    with pytest.raises(LogError) as raised:  # a gap
        log.append(batch([b"c"], base_sequence=5, **pid))
    assert raised.value.error is OutOfOrderSequenceNumberError
    assert log.append(batch([b"c"], base_sequence=2, **pid)).base_offset == 2
    with pytest.raises(LogError) as raised:  # a new epoch must start at 0
        log.append(batch([b"d"], base_sequence=3, producer_id=7, producer_epoch=1))
    assert raised.value.error is OutOfOrderSequenceNumberError
    assert log.append(batch([b"d"], base_sequence=0, producer_id=7, producer_epoch=1))
    with pytest.raises(LogError) as raised:  # the old epoch is fenced
        log.append(batch([b"e"], base_sequence=3, **pid))
    assert raised.value.error is InvalidProducerEpochError
    with pytest.raises(LogError) as raised:  # an unknown producer must start at 0
        log.append(batch([b"f"], base_sequence=4, producer_id=8, producer_epoch=0))
    assert raised.value.error is OutOfOrderSequenceNumberError
    assert [v for _, v in read_all(log)] == [b"a", b"b", b"c", b"d"]


@given(st.lists(st.integers(0, 50), min_size=1, max_size=20), st.integers(-5, 60))
def test_offset_for_timestamp_is_the_first_record_at_or_after(
    timestamps: list[int], target: int
) -> None:
    log = PartitionLog()
    for ts in timestamps:
        log.append(encode_batch([(ts, None, b"v", ())]))
    expected = next(((o, t) for o, t in enumerate(timestamps) if t >= target), None)
    assert log.offset_for_timestamp(target) == expected
    best = max(timestamps)
    assert log.max_timestamp_offset() == (timestamps.index(best), best)


@given(st.integers(1, 10), st.data())
def test_delete_records_moves_the_log_start(count: int, data: st.DataObject) -> None:
    log = PartitionLog()
    for i in range(count):
        log.append(batch([b"%d" % i]))
    cut = data.draw(st.integers(0, count))
    assert log.delete_records(cut) == cut
    assert [o for o, _ in read_all(log, cut)] == list(range(cut, count))
    with pytest.raises(LogError) as raised:
        log.read(cut - 1, 100, upto=count, min_one=True) if cut else log.delete_records(count + 1)
    assert raised.value.error is OffsetOutOfRangeError


@given(kst.topic_layouts(), st.integers(1, 4))
def test_the_model_assigns_live_leaders_and_moves_them(
    layout: dict[str, int], brokers: int
) -> None:
    model = ClusterModel(broker_ids=list(range(1, brokers + 1)))
    for name, partitions in layout.items():
        model.create_topic(name, partitions, min(brokers, 2))
    for topic in model.topics.values():
        for partition in topic.partitions:
            assert partition.leader == partition.replicas[0]
    model.stop_broker(1)
    for topic in model.topics.values():
        for partition in topic.partitions:
            assert partition.leader != 1
            assert partition.leader == -1 or partition.leader in partition.replicas
            assert (partition.leader == -1) == (partition.replicas == [1])
    model.start_broker(1)
    assert all(p.leader != -1 for t in model.topics.values() for p in t.partitions)


def test_the_model_refuses_what_kafka_refuses() -> None:
    model = ClusterModel(broker_ids=[1, 2])
    model.create_topic("t", 2, 2)
    for call, error in [
        (lambda: model.create_topic("t"), TopicAlreadyExistsError),
        (lambda: model.create_topic("bad name"), InvalidTopicError),
        (lambda: model.create_topic(".."), InvalidTopicError),
        (lambda: model.create_topic("u", 1, 3), InvalidReplicationFactorError),
        (lambda: model.create_topic("u", 0, 1), InvalidPartitionsError),
        (lambda: model.create_partitions("t", 2), InvalidPartitionsError),
    ]:
        with pytest.raises(ModelError) as raised:
            call()
        assert raised.value.error is error


def _send(address: str, frame: bytes) -> None:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(frame)
        sock.shutdown(socket.SHUT_WR)
        try:
            while sock.recv(65536):
                pass
        except ConnectionResetError:
            pass  # hung up on with bytes unread: an answer too


@settings(max_examples=30, deadline=None)
@given(st.lists(kst.mutated_frames(), min_size=1, max_size=4))
def test_the_server_survives_mutated_frames(frames: list[bytes]) -> None:
    async def main() -> None:
        async with fake_kafka() as fake:
            fake.create_topic("t")
            address = fake.bootstrap_servers[0]
            for frame in frames:
                with trio.fail_after(10):  # answered or hung up on, never hung
                    await trio.to_thread.run_sync(_send, address, frame)
            # Still serving: a produce through a fresh connection works.
            fake.log("t", 0).append(batch([b"ok"]))
            assert fake.log("t", 0).high_watermark == 1

    errors: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = errors.append  # type: ignore[method-assign]
    logger = logging.getLogger("trio_brod.testing.fake")
    logger.addHandler(handler)
    try:
        trio.run(main)
    finally:
        logger.removeHandler(handler)
    # Bad frames are answered or hung up on, never by an error of the fake's own.
    assert [r.getMessage() for r in errors if r.exc_info] == []


def test_a_leader_move_bumps_the_leader_epoch() -> None:
    model = ClusterModel(broker_ids=[1, 2])
    model.create_topic("t", 1, 2)
    old = model.partition("t", 0).leader
    new = model.move_leader("t", 0)
    assert new != old
    assert model.partition("t", 0).leader_epoch == 1


def test_strategies_need_hypothesis() -> None:
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "try:\n    import trio_brod.testing.strategies\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "testing" in out.stdout
    assert "pip install" in out.stdout


def test_topic_by_id_follows_deletes_and_re_creates() -> None:
    # Lookups by id are indexed: the index must never answer for a topic that is gone.
    model = ClusterModel(broker_ids=[1])
    first = model.create_topic("a", 1)
    other = model.create_topic("b", 2)
    assert model.topic_by_id(first.topic_id) is first
    model.delete_topic("a")
    assert model.topic_by_id(first.topic_id) is None
    again = model.create_topic("a", 3)
    assert again.topic_id != first.topic_id
    assert model.topic_by_id(first.topic_id) is None
    assert model.topic_by_id(again.topic_id) is again
    assert model.topic_by_id(other.topic_id) is other


def _fit_reference(message: object, version: int) -> None:
    """fit as first written: every field looked at, on every call."""
    defaults = {f.name: f for f in dataclasses.fields(message)}  # type: ignore[arg-type]
    for schema in type(message)._SCHEMA:  # type: ignore[attr-defined]
        value = getattr(message, schema.name)
        if version not in schema.versions:
            spec = defaults[schema.name]
            if spec.default_factory is not dataclasses.MISSING:
                setattr(message, schema.name, spec.default_factory())
            else:
                setattr(message, schema.name, spec.default)
        elif schema.kind == "struct" and value is not None:
            _fit_reference(value, version)
        elif schema.kind == "array" and schema.element == "struct" and value:
            for item in value:
                _fit_reference(item, version)


@settings(max_examples=200)
@given(st.data())
def test_fit_clears_what_a_version_lacks(data: st.DataObject) -> None:
    # The fake fits each response to the version asked for, from plans cached per class and
    # version; a message filled in its newest version is fitted to an older one exactly as
    # the field-by-field walk does.
    cls = data.draw(st.sampled_from(sorted({r.RESPONSE for r in REQUESTS.values()}, key=str)))
    message = data.draw(kst.messages(cls, cls.MAX_VERSION))
    version = data.draw(st.integers(cls.MIN_VERSION, cls.MAX_VERSION))
    expected = copy.deepcopy(message)
    _fit_reference(expected, version)
    fit(message, version)
    assert message == expected
