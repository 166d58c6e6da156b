"""Record batches: byte layouts checked against the spec, legacy message sets built by hand,
and the API's behaviour at its edges. Property tests are in test_records_properties.py.

Every test here runs twice: with the C record codec (trio_brod.protocol._speedups) and with the
pure-Python one (the ``codec`` fixture, which test_records_properties.py uses too). The C runs
are skipped where the extension is not built; test_speedups.py makes that a failure when
TRIO_BROD_REQUIRE_SPEEDUPS is set, as the noxfile's test session does.
"""

from __future__ import annotations

import gzip
import pickle
import struct
import zlib
from array import array

import google_crc32c
import pytest

from tests.records_helpers import batch_of
from trio_brod.protocol import _compression
from trio_brod.protocol._records_batch import _decode_varint
from trio_brod.protocol._records_encode import _encode_varint
from trio_brod.protocol.errors import DecodeError, EncodeError
from trio_brod.protocol.records import (
    BATCH_OVERHEAD,
    Compression,
    ControlRecordType,
    CorruptRecordError,
    Record,
    RecordBatch,
    TimestampType,
    decode_batches,
    encode_batch,
    encode_control_batch,
    estimate_record_size,
    with_producer_state,
)

CREATE = TimestampType.CREATE_TIME


pytestmark = pytest.mark.usefixtures("codec")


def only_batch(data: bytes) -> RecordBatch:
    decoded = decode_batches(data)
    assert not decoded.truncated
    (batch,) = decoded.batches
    return batch


# -- the v2 layout, byte by byte -------------------------------------------------------------------


def test_tiny_batch_layout_field_by_field() -> None:
    batch = encode_batch(
        [(1000, b"k", b"v", [("h", b"x")])],
        producer_id=0x0102030405060708,
        producer_epoch=9,
        base_sequence=10,
        is_transactional=True,
    )
    # The one record, written out from the spec: length, attributes, timestampDelta,
    # offsetDelta, keyLength, key, valueLength, value, header count, headerKeyLength, key,
    # headerValueLength, value. Varints are zigzag: 1 -> 0x02, 12 -> 0x18.
    record = bytes.fromhex("18 00 00 00 02 6b 02 76 02 02 68 02 78")
    assert batch[BATCH_OVERHEAD:] == record
    assert len(batch) == BATCH_OVERHEAD + len(record)

    fields = struct.unpack(">qiibIhiqqqhii", batch[:BATCH_OVERHEAD])
    assert (
        fields
        == (
            0,  # baseOffset
            len(batch) - 12,  # batchLength: everything after itself
            -1,  # partitionLeaderEpoch
            2,  # magic
            google_crc32c.value(batch[21:]),  # crc: CRC-32C of attributes .. end
            0x10,  # attributes: no compression, CreateTime, transactional
            0,  # lastOffsetDelta
            1000,  # baseTimestamp
            1000,  # maxTimestamp
            0x0102030405060708,  # producerId
            9,  # producerEpoch
            10,  # baseSequence
            1,  # records count
        )
    )


def test_batch_header_offsets_and_attribute_bits() -> None:
    records = [(5, None, b"", ()), (3, b"", None, ()), (9, None, None, ())]
    batch = encode_batch(records, compression=Compression.GZIP, base_offset=77)
    (attributes,) = struct.unpack_from(">h", batch, 21)
    assert attributes == 1  # gzip, CreateTime, not transactional, not control
    assert struct.unpack_from(">i", batch, 23) == (2,)  # lastOffsetDelta
    assert struct.unpack_from(">qq", batch, 27) == (5, 9)  # baseTimestamp = first, max
    assert struct.unpack_from(">i", batch, 57) == (3,)
    assert gzip.decompress(batch[BATCH_OVERHEAD:]) == bytes.fromhex(
        # length 6, attributes, ts delta 0, offset 0, null key (-1), empty value, no headers
        "0c 00 00 00 01 00 00"
        # length 6, attributes, ts delta -2 (zigzag 3), offset 1, empty key, null value, none
        "0c 00 03 02 00 01 00"
        # length 6, attributes, ts delta +4, offset 2, null key, null value, no headers
        "0c 00 08 04 01 01 00"
    )


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "00"),
        (-1, "01"),
        (1, "02"),
        (63, "7e"),
        (-64, "7f"),
        (64, "8001"),
        (150, "ac02"),
        (8191, "fe7f"),
        (-8192, "ff7f"),
        (8192, "808001"),
        (2**31 - 1, "feffffff0f"),
        (-(2**63), "ffffffffffffffffff01"),
    ],
)
def test_varints(value: int, encoded: str) -> None:
    assert _encode_varint(value) == bytes.fromhex(encoded)
    assert _decode_varint(bytes.fromhex(encoded) + b"\x00", 0) == (value, len(encoded) // 2)


def test_varint_limits() -> None:
    with pytest.raises(EncodeError):
        _encode_varint(2**63)
    with pytest.raises(CorruptRecordError, match="longer than 10"):
        _decode_varint(b"\xff" * 11, 0)
    # A tenth byte may only hold the 64th bit.
    assert _decode_varint(b"\xff" * 9 + b"\x01", 0) == (-(2**63), 10)
    with pytest.raises(CorruptRecordError, match="does not fit in 64 bits"):
        _decode_varint(b"\xff" * 9 + b"\x02", 0)


def test_batch_overhead() -> None:
    assert BATCH_OVERHEAD == 61
    # The smallest record: length, attributes, two deltas, null key, empty value, 0 headers.
    assert len(encode_batch([(0, None, b"", ())])) == BATCH_OVERHEAD + 7


# -- decoding ------------------------------------------------------------------------------------


def test_decoded_batch_fields() -> None:
    batch = only_batch(
        encode_batch(
            [(100, b"a", b"1", ()), (90, b"b", b"2", ()), (130, b"c", b"3", ())],
            compression=Compression.LZ4,
            base_offset=1000,
            producer_id=4,
            producer_epoch=5,
            base_sequence=6,
            is_transactional=True,
            partition_leader_epoch=7,
        )
    )
    assert (batch.base_offset, batch.last_offset, batch.next_offset) == (1000, 1002, 1003)
    assert batch.last_offset_delta == 2
    assert (batch.base_timestamp, batch.max_timestamp) == (100, 130)
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (4, 5, 6)
    assert batch.partition_leader_epoch == 7
    assert batch.magic == 2
    assert batch.compression is Compression.LZ4
    assert batch.timestamp_type is CREATE
    assert batch.is_transactional
    assert not batch.is_control
    assert batch.record_count == len(batch) == 3
    assert batch.attributes == 0x13
    assert list(batch) == [
        Record(1000, 100, CREATE, b"a", b"1", ()),
        Record(1001, 90, CREATE, b"b", b"2", ()),
        Record(1002, 130, CREATE, b"c", b"3", ()),
    ]
    assert batch.records() is batch.records()  # cached
    assert "offsets=1000..1002" in repr(batch)


def test_records_are_named_tuples() -> None:
    (record,) = only_batch(encode_batch([(7, b"k", b"v", [("a", None)])])).records()
    assert record.offset == 0
    assert record.timestamp == 7
    assert record.timestamp_type is CREATE
    assert record.key == b"k"
    assert record.value == b"v"
    assert record.headers == (("a", None),)
    assert record._replace(value=b"w").value == b"w"


def test_decode_accepts_any_buffer() -> None:
    data = encode_batch([(1, b"k", b"v", ())])
    for buffer in (bytearray(data), memoryview(b"xx" + data)[2:]):
        (record,) = only_batch(buffer).records()  # type: ignore[arg-type]
        assert type(record.key) is bytes
        assert record.value == b"v"


def test_log_append_time_gives_every_record_the_batch_time() -> None:
    data = bytearray(encode_batch([(10, None, b"a", ()), (20, None, b"b", ())]))
    struct.pack_into(">h", data, 21, 0x08)  # LogAppendTime
    struct.pack_into(">q", data, 35, 5555)  # the broker's append time
    struct.pack_into(">I", data, 17, google_crc32c.value(bytes(data[21:])))
    batch = only_batch(bytes(data))
    assert batch.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert [(r.timestamp, r.timestamp_type) for r in batch] == [
        (5555, TimestampType.LOG_APPEND_TIME)
    ] * 2


def test_empty_batch_left_by_compaction() -> None:
    # Compaction can leave a batch with no records; its header still moves the consumer on.
    header = struct.pack(">hiqqqhii", 0, 4, -1, 1234, 8, 0, 5, 0)
    prefix = struct.pack(">qiib", 500, BATCH_OVERHEAD - 12, 3, 2)
    data = prefix + struct.pack(">I", google_crc32c.value(header)) + header
    batch = only_batch(data)
    assert batch.records() == []
    assert len(batch) == 0
    assert batch.next_offset == 505


def test_batches_in_a_row() -> None:
    first = encode_batch([(1, b"a", b"1", ())], base_offset=0)
    second = encode_batch([(2, b"b", b"2", ()), (3, b"c", b"3", ())], base_offset=1)
    decoded = decode_batches(first + second)
    assert [batch.size for batch in decoded.batches] == [len(first), len(second)]
    assert [r.offset for batch in decoded.batches for r in batch] == [0, 1, 2]


def test_truncation_at_every_byte() -> None:
    first = encode_batch([(1, b"a", b"1", ())])
    second = encode_batch([(2, b"b", b"2", ())], compression=Compression.GZIP, base_offset=1)
    data = first + second
    for cut in range(len(data) + 1):
        decoded = decode_batches(data[:cut])
        complete = 2 if cut == len(data) else 1 if cut >= len(first) else 0
        assert len(decoded.batches) == complete, cut
        assert decoded.truncated == (cut not in (0, len(first), len(data))), cut
        left = cut - len(first) if cut >= len(first) else cut
        expected_size = None
        if decoded.truncated and left >= 12:
            expected_size = len(second) if cut > len(first) else len(first)
        assert decoded.incomplete_batch_size == expected_size, cut


def test_crc_mismatch() -> None:
    data = bytearray(encode_batch([(1, b"key", b"value", ())], base_offset=42))
    data[-2] ^= 0x01  # the value's last byte (the very last is the header count)
    with pytest.raises(CorruptRecordError, match="checksum mismatch") as caught:
        decode_batches(bytes(data))
    assert caught.value.base_offset == 42
    assert "offset 42" in str(caught.value)
    batch = decode_batches(bytes(data), verify_crc=False).batches[0]
    assert batch.records()[0].value == b"valud"
    with pytest.raises(CorruptRecordError, match="checksum mismatch"):
        batch.validate_crc()


def test_partition_leader_epoch_is_outside_the_crc() -> None:
    data = bytearray(encode_batch([(1, b"k", b"v", ())]))
    struct.pack_into(">i", data, 12, 99)  # brokers set this without recomputing the CRC
    assert only_batch(bytes(data)).partition_leader_epoch == 99


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: struct.pack_into(">i", d, 8, 5), "impossible length"),
        (lambda d: struct.pack_into(">i", d, 8, 30), "smaller than a v2 batch header"),
        (lambda d: struct.pack_into(">b", d, 16, 3), "unknown magic"),
        (lambda d: struct.pack_into(">h", d, 21, 6), "unknown compression codec id 6"),
        (lambda d: struct.pack_into(">i", d, 57, -1), "negative record count"),
        (lambda d: struct.pack_into(">i", d, 57, 2), "records end early|only"),
        (lambda d: d.extend(b"\x00") or struct.pack_into(">i", d, 8, len(d) - 12), "left over"),
        (lambda d: struct.pack_into(">b", d, 61, 40), "length says"),
    ],
)
def test_malformed_batches(mutate: object, message: str) -> None:
    data = bytearray(encode_batch([(1, b"key", b"value", ())]))
    mutate(data)  # type: ignore[operator]
    with pytest.raises(CorruptRecordError, match=message):
        _decode_all_records(bytes(data))


def _decode_all_records(data: bytes) -> None:
    for batch in decode_batches(data, verify_crc=False).batches:
        batch.records()


def test_corrupt_compressed_payload() -> None:
    data = bytearray(encode_batch([(1, b"k", b"v" * 100, ())], compression=Compression.ZSTD))
    data[BATCH_OVERHEAD + 2] ^= 0xFF
    batch = decode_batches(bytes(data), verify_crc=False).batches[0]
    with pytest.raises(CorruptRecordError, match="zstd"):
        batch.records()


def test_header_key_must_be_utf8() -> None:
    data = bytearray(encode_batch([(1, None, b"", [("h", None)])]))
    data[-2] = 0xFF  # the header key's one byte
    with pytest.raises(CorruptRecordError, match="UTF-8"):
        decode_batches(bytes(data), verify_crc=False).batches[0].records()


def test_batch_of_matches_the_encoder() -> None:
    encoded = encode_batch([(5, b"k", b"v", ())], base_offset=3)
    assert batch_of(
        encoded[BATCH_OVERHEAD:], 1, base_offset=3, base_timestamp=5, max_timestamp=5
    ) == (encoded)


def test_offsets_and_timestamps_beyond_int64_are_python_ints() -> None:
    # Nothing stops a corrupt batch from putting offsets past 2**63: they are Python ints.
    # length 6, attributes, timestamp delta +1 (zigzag 2), offset delta +2 (zigzag 4), null key,
    # empty value, no headers
    section = bytes.fromhex("0c 00 02 04 01 00 00")
    batch = only_batch(batch_of(section, 1, base_offset=2**63 - 1, base_timestamp=2**63 - 1))
    (record,) = batch.records()
    assert (record.offset, record.timestamp) == (2**63 + 1, 2**63)
    # The same below the range: deltas -1 (zigzag 1) and -3 (zigzag 5).
    section = bytes.fromhex("0c 00 01 05 01 00 00")
    batch = only_batch(batch_of(section, 1, base_offset=-(2**63), base_timestamp=-(2**63)))
    (record,) = batch.records()
    assert (record.offset, record.timestamp) == (-(2**63) - 3, -(2**63) - 1)


def test_any_negative_length_is_null() -> None:
    # key length -2 (zigzag 3), value length -64 (zigzag 127), header value length -5 (zigzag 9)
    section = bytes.fromhex("12 00 00 00 03 7f 02 02 68 09")
    (record,) = only_batch(batch_of(section, 1)).records()
    assert (record.key, record.value, record.headers) == (None, None, (("h", None),))


def test_a_varint_beyond_64_bits_is_corrupt() -> None:
    # The record's timestamp delta is ten bytes whose last carries a 65th bit.
    section = bytes.fromhex("1c 00" + "ff" * 9 + "02" + "00 01 00 00")
    with pytest.raises(CorruptRecordError, match="does not fit in 64 bits") as caught:
        only_batch(batch_of(section, 1, base_offset=7)).records()
    assert caught.value.base_offset == 7


@pytest.mark.parametrize(
    ("section", "message"),
    [
        # The header count says 50 but the record has bytes for at most 3: the headers are read
        # until something fails, here the third key's invalid length (-1, zigzag 1).
        ("14 00 00 00 01 00 64 02 61 00 02 62 00 01", "invalid key length -1"),
        # ... or the bytes end.
        ("10 00 00 00 01 00 64 02 61 00 02 62 00", "the records end early"),
        # A header key that is cut short and also not UTF-8: the UTF-8 error comes first.
        ("0c 00 00 00 01 00 02 0a ff", "not valid UTF-8"),
        # ... and one that is valid so far.
        ("0c 00 00 00 01 00 02 0a 61", "the records end early"),
        # The last header's value is 100 bytes long, and not there: the record's length, 7,
        # does not match the 10 bytes its fields take plus those 100.
        ("0e 00 00 00 01 00 02 02 61 c8 01", "length says 7 bytes but its fields take 110"),
        # ... and the length does count them: the record runs past the batch.
        ("dc 01 00 00 00 01 00 02 02 61 c8 01", "the last record runs past the end of the batch"),
        # The header count is a varint cut short.
        ("0c 00 00 00 01 00 81", "the records end early"),
        ("ff ff ff ff ff ff ff ff ff ff ff 00 00 00 00", "longer than 10 bytes"),
        ("0c 00 00 00 01 00 00 00 00", "2 bytes are left over"),
    ],
)
def test_malformed_records(section: str, message: str) -> None:
    # Both codecs give the Python code's messages, in the same order of checks.
    data = batch_of(bytes.fromhex(section), 1, base_offset=9)
    with pytest.raises(CorruptRecordError, match=message) as caught:
        only_batch(data).records()
    assert caught.value.base_offset == 9
    assert str(caught.value).endswith("(batch at offset 9)")


def test_corrupt_record_error_pickles() -> None:
    error = pickle.loads(pickle.dumps(CorruptRecordError("bad", 5)))
    assert error.base_offset == 5
    assert str(error) == "bad (batch at offset 5)"
    assert isinstance(error, DecodeError)


# -- control batches -------------------------------------------------------------------------------


@pytest.mark.parametrize("control_type", [ControlRecordType.ABORT, ControlRecordType.COMMIT])
def test_control_batch(control_type: ControlRecordType) -> None:
    batch = only_batch(
        encode_control_batch(
            control_type,
            producer_id=11,
            producer_epoch=2,
            coordinator_epoch=7,
            timestamp_ms=1234,
            base_offset=50,
        )
    )
    assert batch.is_control
    assert batch.is_transactional
    assert (batch.producer_id, batch.producer_epoch, batch.base_offset) == (11, 2, 50)
    assert batch.control_type() is control_type
    (record,) = batch.records()
    assert record.key == struct.pack(">hh", 0, control_type)  # version 0, type
    assert record.value == struct.pack(">hi", 0, 7)  # version 0, coordinator epoch
    assert record.timestamp == 1234


def _control_batch_with_key(key: bytes) -> bytes:
    data = bytearray(
        encode_control_batch(
            ControlRecordType.ABORT,
            producer_id=1,
            producer_epoch=0,
            coordinator_epoch=0,
            timestamp_ms=0,
        )
    )
    key_at = BATCH_OVERHEAD + 5  # after length, attributes, two deltas and key length
    data[key_at : key_at + 4] = key
    return bytes(data)


def test_control_batch_of_unknown_type() -> None:
    batch = decode_batches(_control_batch_with_key(b"\x00\x00\x00\x05"), verify_crc=False)
    assert batch.batches[0].control_type() is ControlRecordType.UNKNOWN


def test_control_batch_with_bad_version() -> None:
    batch = decode_batches(_control_batch_with_key(b"\xff\xff\x00\x00"), verify_crc=False)
    with pytest.raises(CorruptRecordError, match="version"):
        batch.batches[0].control_type()


def test_control_type_of_a_data_batch() -> None:
    with pytest.raises(ValueError, match="not a control batch"):
        only_batch(encode_batch([(1, None, b"v", ())])).control_type()


@pytest.mark.parametrize("compression", list(Compression))
def test_compressed_records_come_out_as_bytes(compression: Compression) -> None:
    # Decompression hands the C loop cramjam's buffer uncopied (a memoryview): what the
    # records hold must still be bytes of their own, in both loops.
    records = [(i, b"k%d" % i, b"v" * 300 + b"%d" % i, [("h", b"x%d" % i)]) for i in range(200)]
    batch = only_batch(encode_batch(records, compression=compression))
    decoded = batch.records()
    assert [(r.timestamp, r.key, r.value, r.headers) for r in decoded] == [
        (t, k, v, tuple(h)) for t, k, v, h in records
    ]
    for record in decoded:
        assert type(record.key) is bytes
        assert type(record.value) is bytes
        assert all(type(value) is bytes for _, value in record.headers)


# -- with_producer_state ---------------------------------------------------------------------------


@pytest.mark.parametrize("compression", list(Compression))
def test_with_producer_state(compression: Compression) -> None:
    records = [(1, b"k", b"v" * 50, [("h", b"x")]), (2, None, None, ())]
    original = encode_batch(records, compression=compression, is_transactional=True)
    rewritten = with_producer_state(original, producer_id=99, producer_epoch=3, base_sequence=17)
    assert len(rewritten) == len(original)
    assert rewritten[BATCH_OVERHEAD:] == original[BATCH_OVERHEAD:]  # records untouched
    batch = only_batch(rewritten)  # CRC verified
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (99, 3, 17)
    assert batch.is_transactional
    assert batch.compression is compression
    assert [(r.timestamp, r.key, r.value, r.headers) for r in batch] == [
        (1, b"k", b"v" * 50, (("h", b"x"),)),
        (2, None, None, ()),
    ]


@pytest.mark.parametrize(
    "batch",
    [
        b"",
        b"\x00" * 70,
        encode_batch([(1, None, b"v", ())])[:-1],
        encode_batch([(1, None, b"v", ())]) * 2,
    ],
)
def test_with_producer_state_needs_one_whole_batch(batch: bytes) -> None:
    with pytest.raises(EncodeError, match="one complete v2 record batch"):
        with_producer_state(batch, producer_id=1, producer_epoch=1, base_sequence=1)


def test_with_producer_state_ranges() -> None:
    batch = encode_batch([(1, None, b"v", ())])
    with pytest.raises(EncodeError, match="producer_epoch"):
        with_producer_state(batch, producer_id=1, producer_epoch=40000, base_sequence=1)
    with pytest.raises(EncodeError, match="base_sequence"):
        with_producer_state(batch, producer_id=1, producer_epoch=1, base_sequence=2**31)


# -- encoding: the slow paths and input validation -------------------------------------------------


def test_large_fields_and_many_records() -> None:
    records = [(1_000_000 * (i % 3) - 5000 * i, b"k" * i, b"v" * (9000 + i), ()) for i in range(3)]
    records += [(i, None, b"x", ()) for i in range(10_000)]  # offset deltas beyond the tables
    batch = only_batch(encode_batch(records))
    decoded = batch.records()
    assert [(r.timestamp, r.key, r.value, r.headers) for r in decoded] == [
        (t, k if k else None if i >= 3 else k, v, ()) for i, (t, k, v, _) in enumerate(records)
    ]
    assert decoded[-1].offset == len(records) - 1
    assert batch.max_timestamp == 2_000_000 - 10_000


@pytest.mark.parametrize("delta", [8191, 8192, 8193, -8192, -8193, 2**40, -(2**40)])
def test_timestamp_deltas_around_the_table_limits(delta: int) -> None:
    base = 2**50
    records = [(base, None, b"a", ()), (base + delta, None, b"b", ())]
    assert [r.timestamp for r in only_batch(encode_batch(records))] == [base, base + delta]


def test_bytes_like_inputs() -> None:
    ints = array("i", [1, 2, 3])  # a memoryview of it is 3 items but 12 bytes
    records = [
        (1, bytearray(b"key"), memoryview(ints), [("h", bytearray(b"x"))]),
        (2, memoryview(b"k2"), bytearray(b"v2"), ()),
    ]
    decoded = only_batch(encode_batch(records)).records()
    assert decoded[0].value == ints.tobytes()
    assert decoded[0].key == b"key"
    assert decoded[0].headers == (("h", b"x"),)
    assert (decoded[1].key, decoded[1].value) == (b"k2", b"v2")


def test_header_variants() -> None:
    records = [
        (1, b"k", b"v", (("a", b"1"), ("a", None))),  # tuple of headers, repeated key
        (2, None, b"v", [("long", b"x" * 9000), ("é" * 3000, b"")]),  # beyond the tables
        (3, b"k", b"v", [("b", bytearray(b"2")), ("c", memoryview(b"3"))]),
    ]
    decoded = only_batch(encode_batch(records)).records()  # type: ignore[arg-type]
    assert [r.headers for r in decoded] == [
        (("a", b"1"), ("a", None)),
        (("long", b"x" * 9000), ("é" * 3000, b"")),
        (("b", b"2"), ("c", b"3")),
    ]
    with pytest.raises(TypeError, match="headers must be a sequence"):
        encode_batch([(1, b"k", b"v", {("a", b"1")})])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"header 0 must be a \(str, bytes \| None\) pair"):
        encode_batch([(1, b"k", b"v", [["a", b"1"]])])  # type: ignore[list-item]


class Bytes(bytes):
    pass


def test_bytes_subclasses_are_plain_bytes() -> None:
    (record,) = only_batch(encode_batch([(1, Bytes(b"k"), Bytes(b"v"), ())])).records()
    assert (record.key, record.value) == (b"k", b"v")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            (1, "key", b"v", ()),
            "record 1 key must be bytes, bytearray, memoryview or None, not str",
        ),
        ((1, b"k", 5, ()), "record 1 value must be bytes.* not int"),
        ((1.5, b"k", b"v", ()), "record 1 timestamp must be an int"),
        ((1, b"k", b"v", [(b"h", b"x")]), "record 1 header 0 key must be a str, not bytes"),
        ((1, b"k", b"v", [("h", "x")]), "record 1 header 'h' value must be bytes.* not str"),
        ((1, b"k", b"v", [("h",)]), r"record 1 header 0 must be a \(str, bytes \| None\) pair"),
        ((1, b"k", b"v", "h"), "record 1 headers must be a sequence"),
        ((1, b"k", b"v"), r"record 1 must be a \(timestamp_ms, key, value, headers\) tuple"),
        (b"abcd", "record 1 must be a"),
    ],
)
def test_type_errors_name_the_field(record: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        encode_batch([(0, b"fine", b"fine", ()), record])  # type: ignore[list-item]


def test_timestamps_must_be_ints() -> None:
    for timestamp in (2.0, 1.5, "2", None):
        with pytest.raises(TypeError, match="record 1 timestamp must be an int"):
            encode_batch([(0, None, b"", ()), (timestamp, None, b"", ())])  # type: ignore[list-item]
    # bool is an int: True is 1.
    (_, second) = only_batch(encode_batch([(0, None, b"", ()), (True, None, b"", ())]))
    assert second.timestamp == 1


def test_type_errors_in_the_first_record() -> None:
    with pytest.raises(TypeError, match="record 0 timestamp"):
        encode_batch([("now", b"k", b"v", ())])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="record 0 must be"):
        encode_batch([None])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"compression": 9}, "unknown compression"),
        ({"compression": Compression.GZIP, "compression_level": 11}, "compression_level"),
        ({"compression_level": 1}, "needs a compression codec"),
        ({"producer_epoch": 2**15}, "producer_epoch"),
        ({"producer_id": 2**63}, "producer_id"),
        ({"base_sequence": -(2**31) - 1}, "base_sequence"),
        ({"partition_leader_epoch": 2**31}, "partition_leader_epoch"),
        ({"base_offset": -(2**63) - 1}, "base_offset"),
    ],
)
def test_encode_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        encode_batch([(1, None, b"v", ())], **kwargs)  # type: ignore[arg-type]


def test_encode_needs_records_and_sane_timestamps() -> None:
    with pytest.raises(EncodeError, match="at least one record"):
        encode_batch([])
    with pytest.raises(EncodeError, match="timestamp"):
        encode_batch([(2**63, None, b"v", ())])


def test_compression_may_be_a_plain_int() -> None:
    assert only_batch(encode_batch([(1, None, b"v", ())], compression=2)).compression is (
        Compression.SNAPPY
    )


# -- estimate_record_size --------------------------------------------------------------------------


def test_estimate_is_an_upper_bound() -> None:
    key, value = b"k" * 300, b"v" * 20000
    headers = [("ключ", b"x" * 200), ("k", None)]
    single = len(encode_batch([(0, key, value, headers)])) - BATCH_OVERHEAD
    # The worst case: large deltas of timestamp and offset.
    worst = encode_batch([(0, None, b"", ())] * 70000 + [(-(2**62), key, value, headers)])
    last_record = len(worst) - len(encode_batch([(0, None, b"", ())] * 70000))
    estimate = estimate_record_size(key, value, headers)
    assert estimate >= single
    assert estimate >= last_record
    assert estimate - last_record < 40


def test_estimate_checks_types() -> None:
    assert estimate_record_size(None, memoryview(array("i", [1, 2])), ()) == 36 + 8
    with pytest.raises(TypeError, match="key must be bytes"):
        estimate_record_size("k", b"v", ())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="value must be bytes"):
        estimate_record_size(b"k", 1, ())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="header 0 key must be a str"):
        estimate_record_size(b"k", b"v", [(b"h", b"v")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="header 'h' value must be bytes"):
        estimate_record_size(b"k", b"v", [("h", "v")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="headers must be a sequence"):
        estimate_record_size(b"k", b"v", "h")  # type: ignore[arg-type]


# -- legacy message sets (magic 0 and 1), built by hand from the spec ------------------------------


def legacy_bytes(data: bytes | None) -> bytes:
    return struct.pack(">i", -1) if data is None else struct.pack(">i", len(data)) + data


def legacy_message(
    offset: int,
    magic: int,
    key: bytes | None,
    value: bytes | None,
    *,
    attributes: int = 0,
    timestamp: int = 0,
) -> bytes:
    """offset, message size, then crc, magic, attributes, [timestamp], key, value."""
    body = struct.pack(">bb", magic, attributes)
    if magic == 1:
        body += struct.pack(">q", timestamp)
    body += legacy_bytes(key) + legacy_bytes(value)
    message = struct.pack(">I", zlib.crc32(body)) + body
    return struct.pack(">qi", offset, len(message)) + message


def test_legacy_v0_plain_messages() -> None:
    data = legacy_message(10, 0, b"k1", b"v1") + legacy_message(11, 0, None, b"v2")
    decoded = decode_batches(data)
    assert [len(batch) for batch in decoded.batches] == [1, 1]
    first, _second = decoded.batches
    assert (first.magic, first.base_offset, first.last_offset, first.next_offset) == (0, 10, 10, 11)
    assert first.timestamp_type is TimestampType.NO_TIMESTAMP
    assert first.producer_id == -1
    assert first.size == len(legacy_message(10, 0, b"k1", b"v1"))
    assert [r for batch in decoded.batches for r in batch] == [
        Record(10, -1, TimestampType.NO_TIMESTAMP, b"k1", b"v1", ()),
        Record(11, -1, TimestampType.NO_TIMESTAMP, None, b"v2", ()),
    ]
    first.validate_crc()


def test_legacy_v1_plain_message() -> None:
    data = legacy_message(5, 1, b"k", None, timestamp=1_600_000_000_000)
    (record,) = only_batch(data).records()
    assert record == Record(5, 1_600_000_000_000, CREATE, b"k", None, ())


def test_legacy_v1_gzip_wrapper_with_relative_offsets() -> None:
    inner = b"".join(
        legacy_message(i, 1, b"k%d" % i, b"v%d" % i, timestamp=1000 + i) for i in range(3)
    )
    # The wrapper carries the absolute offset of the LAST inner message.
    wrapper = legacy_message(102, 1, None, gzip.compress(inner), attributes=1, timestamp=1002)
    batch = only_batch(wrapper)
    assert batch.magic == 1
    assert batch.compression is Compression.GZIP
    assert (batch.base_offset, batch.last_offset, batch.record_count) == (100, 102, 3)
    assert list(batch) == [
        Record(100 + i, 1000 + i, CREATE, b"k%d" % i, b"v%d" % i, ()) for i in range(3)
    ]


def test_legacy_v1_wrapper_with_log_append_time() -> None:
    inner = legacy_message(0, 1, None, b"a", timestamp=1) + legacy_message(
        1, 1, None, b"b", timestamp=2
    )
    wrapper = legacy_message(8, 1, None, gzip.compress(inner), attributes=1 | 0x08, timestamp=777)
    batch = only_batch(wrapper)
    assert batch.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert [(r.offset, r.timestamp, r.timestamp_type) for r in batch] == [
        (7, 777, TimestampType.LOG_APPEND_TIME),
        (8, 777, TimestampType.LOG_APPEND_TIME),
    ]


def test_legacy_v0_gzip_wrapper_with_absolute_offsets() -> None:
    inner = b"".join(legacy_message(50 + i, 0, None, b"v%d" % i) for i in range(3))
    wrapper = legacy_message(52, 0, None, gzip.compress(inner), attributes=1)
    batch = only_batch(wrapper)
    assert [r.offset for r in batch] == [50, 51, 52]
    assert batch.next_offset == 53


@pytest.mark.parametrize(("codec", "magic"), [(2, 1), (3, 1), (3, 0), (2, 0)])
def test_legacy_snappy_and_lz4_wrappers(codec: int, magic: int) -> None:
    inner = b"".join(legacy_message(i, magic, None, b"x" * 100, timestamp=i) for i in range(4))
    payload = bytearray(_compression.compress(codec, inner))
    if codec == 3 and magic == 0:
        # Writers before KIP-57 computed the lz4 header checksum over the magic number too.
        payload[6] = (_compression.xxh32(bytes(payload[:6])) >> 8) & 0xFF
    wrapper = legacy_message(9, magic, None, bytes(payload), attributes=codec, timestamp=3)
    offsets = [r.offset for r in only_batch(wrapper)]
    assert offsets == ([6, 7, 8, 9] if magic == 1 else [0, 1, 2, 3])


def test_legacy_followed_by_v2() -> None:
    data = legacy_message(0, 1, None, b"old", timestamp=1) + encode_batch(
        [(2, None, b"new", ())], base_offset=1
    )
    assert [(b.magic, r.value) for b in decode_batches(data).batches for r in b] == [
        (1, b"old"),
        (2, b"new"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (legacy_message(0, 0, None, b"v")[:-1] + b"w", "checksum mismatch"),
        (legacy_message(0, 1, None, None, attributes=1), "no value"),
        (legacy_message(0, 1, None, b"not gzip", attributes=1), "gzip"),
        (legacy_message(0, 1, None, b"x", attributes=4), "legacy messages know only"),
        (legacy_message(0, 1, None, gzip.compress(b""), attributes=1), "holds no message"),
        (
            legacy_message(
                0,
                1,
                None,
                gzip.compress(legacy_message(0, 1, None, b"x", attributes=1)),
                attributes=1,
            ),
            "another compressed message",
        ),
        (
            legacy_message(
                0, 1, None, gzip.compress(legacy_message(0, 1, None, b"x")[:-3]), attributes=1
            ),
            "ends early",
        ),
    ],
)
def test_legacy_malformed(data: bytes, message: str) -> None:
    with pytest.raises(CorruptRecordError, match=message):
        decode_batches(data)


def test_legacy_inner_key_length_overflow() -> None:
    data = bytearray(legacy_message(0, 0, b"k", b"v"))
    struct.pack_into(">i", data, 18, 100)  # key length beyond the message
    struct.pack_into(">I", data, 12, zlib.crc32(bytes(data[16:])))
    with pytest.raises(CorruptRecordError, match="ends early"):
        decode_batches(bytes(data))


def test_legacy_compressed_message_without_cramjam(monkeypatch: pytest.MonkeyPatch) -> None:
    inner = legacy_message(0, 1, None, b"x", timestamp=1)
    wrapper = legacy_message(0, 1, None, _compression.compress(2, inner), attributes=2, timestamp=1)
    monkeypatch.setattr(_compression, "cramjam", None)
    with pytest.raises(_compression.UnsupportedCodecError, match="snappy"):
        decode_batches(wrapper)
