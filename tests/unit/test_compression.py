"""Compression codecs: round trips, and the exact framings Kafka's Java client expects."""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import struct

import cramjam
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_brod.protocol import _compression, records
from trio_brod.protocol._compression import (
    GZIP,
    LZ4,
    SNAPPY,
    ZSTD,
    UnsupportedCodecError,
    compress,
    decompress,
    decompress_view,
    lz4_header_checksum,
    xxh32,
)
from trio_brod.protocol.errors import DecodeError, EncodeError, ProtocolError

CODECS = [GZIP, SNAPPY, LZ4, ZSTD]
LEVELS = {GZIP: [None, 0, 1, 9], SNAPPY: [None], LZ4: [None, 0, 2, 3, 12], ZSTD: [None, -7, 1, 22]}
COMPRESSIBLE = b"".join(b"record %d: some text that repeats; " % i for i in range(5000))


@pytest.mark.parametrize(
    ("codec", "level"), [(codec, level) for codec in CODECS for level in LEVELS[codec]]
)
@pytest.mark.parametrize("data", [b"", b"x", COMPRESSIBLE, os.urandom(150_000)])
def test_round_trip(codec: int, level: int | None, data: bytes) -> None:
    compressed = compress(codec, data, level)
    assert decompress(codec, compressed) == data
    assert decompress(codec, memoryview(b"..." + compressed)[3:]) == data


@settings(max_examples=50)
@given(st.sampled_from(CODECS), st.binary(max_size=3000))
def test_round_trip_property(codec: int, data: bytes) -> None:
    assert decompress(codec, compress(codec, data)) == data


@given(st.sampled_from(CODECS), st.binary(max_size=300))
def test_garbage_raises_decode_error_only(codec: int, data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decompress(codec, data)


@settings(max_examples=50)
@given(st.sampled_from(CODECS), st.binary(max_size=3000))
def test_decompress_view_is_decompress_without_the_copy(codec: int, data: bytes) -> None:
    compressed = compress(codec, data)
    out = decompress_view(codec, memoryview(b".." + compressed)[2:])
    assert out == data
    if codec in (LZ4, ZSTD):  # cramjam's buffer, not copied into bytes, and not writable
        assert isinstance(out, memoryview)
        assert out.readonly
    else:
        assert type(out) is bytes


@given(st.sampled_from(CODECS), st.binary(max_size=300))
def test_decompress_view_raises_as_decompress(codec: int, data: bytes) -> None:
    try:
        expected = decompress(codec, data)
    except DecodeError as exc:
        with pytest.raises(DecodeError, match=re.escape(str(exc))):
            decompress_view(codec, data)
    else:
        assert decompress_view(codec, data) == expected


@pytest.mark.parametrize(
    ("codec", "level"),
    [
        (GZIP, 10),
        (GZIP, -1),
        (GZIP, 1.5),
        (LZ4, 13),
        (LZ4, -1),
        (ZSTD, 23),
        (ZSTD, -8),
        (SNAPPY, 1),
    ],
)
def test_bad_levels(codec: int, level: object) -> None:
    with pytest.raises(EncodeError, match="level"):
        compress(codec, b"data", level)  # type: ignore[arg-type]


# -- gzip --------------------------------------------------------------------------------------


def test_gzip_is_a_standard_gzip_stream() -> None:
    assert gzip.decompress(compress(GZIP, COMPRESSIBLE)) == COMPRESSIBLE
    assert decompress(GZIP, gzip.compress(COMPRESSIBLE)) == COMPRESSIBLE


def test_gzip_reads_concatenated_members_and_ignores_trailing_garbage() -> None:
    two_members = gzip.compress(b"first ") + gzip.compress(b"second")
    assert decompress(GZIP, two_members) == b"first second"
    assert decompress(GZIP, gzip.compress(b"data") + b"\x00garbage") == b"data"


def test_gzip_truncated_stream() -> None:
    data = gzip.compress(COMPRESSIBLE)
    with pytest.raises(DecodeError, match="truncated"):
        decompress(GZIP, data[: len(data) // 2])
    with pytest.raises(DecodeError, match="truncated"):
        decompress(GZIP, gzip.compress(b"a") + data[:20])


def test_default_gzip_level_is_the_fast_one() -> None:
    assert compress(GZIP, COMPRESSIBLE) == compress(GZIP, COMPRESSIBLE, 1)


# -- snappy: xerial framing --------------------------------------------------------------------


def _xerial_chunks(data: bytes) -> list[bytes]:
    """Split a xerial stream into its raw snappy chunks, checking the layout on the way."""
    assert data[:8] == b"\x82SNAPPY\x00"
    assert data[8:16] == b"\x00\x00\x00\x01\x00\x00\x00\x01"  # version 1, compatible 1 (BE)
    chunks = []
    pos = 16
    while pos < len(data):
        (size,) = struct.unpack_from(">i", data, pos)
        chunks.append(data[pos + 4 : pos + 4 + size])
        pos += 4 + size
    assert pos == len(data)
    return chunks


def test_snappy_writes_xerial_framing_in_32k_chunks() -> None:
    data = os.urandom(40_000) + COMPRESSIBLE[:60_000]  # 100,000 bytes: 4 chunks
    chunks = _xerial_chunks(compress(SNAPPY, data))
    inflated = [bytes(cramjam.snappy.decompress_raw(chunk)) for chunk in chunks]
    assert [len(part) for part in inflated] == [32768, 32768, 32768, 100_000 - 3 * 32768]
    assert b"".join(inflated) == data


def test_snappy_empty_input_is_just_the_header() -> None:
    assert compress(SNAPPY, b"") == b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01"
    assert decompress(SNAPPY, compress(SNAPPY, b"")) == b""


def test_snappy_reads_raw_snappy_without_header() -> None:
    assert decompress(SNAPPY, bytes(cramjam.snappy.compress_raw(COMPRESSIBLE))) == COMPRESSIBLE


def test_snappy_reads_chunks_of_any_size() -> None:
    parts = [COMPRESSIBLE[:10], COMPRESSIBLE[10:100_000], COMPRESSIBLE[100_000:]]
    stream = _compression.XERIAL_HEADER + b"".join(
        struct.pack(">i", len(block)) + block
        for block in (bytes(cramjam.snappy.compress_raw(part)) for part in parts)
    )
    assert decompress(SNAPPY, stream) == COMPRESSIBLE


@pytest.mark.parametrize(
    "stream",
    [
        _compression.XERIAL_HEADER[:12],  # header cut short
        _compression.XERIAL_HEADER + b"\x00\x00",  # chunk length cut short
        _compression.XERIAL_HEADER + b"\x00\x00\x00\x10abc",  # chunk cut short
        _compression.XERIAL_HEADER + b"\xff\xff\xff\xff",  # negative chunk length
        b"\x82SNAPPY\x00\x00\x00\x00\x00\x00\x00\x00\x00",  # version 0
    ],
)
def test_snappy_malformed_xerial(stream: bytes) -> None:
    with pytest.raises(DecodeError, match="snappy"):
        decompress(SNAPPY, stream)


# -- lz4: Kafka's frame ------------------------------------------------------------------------


def test_xxh32_known_vectors() -> None:
    assert xxh32(b"") == 0x02CC5D05
    assert xxh32(b"a") == 0x550D7456
    assert xxh32(b"abc") == 0x32D153FF
    assert xxh32(b"Nobody inspects the spammish repetition") == 0xE2293B2F


@settings(max_examples=30)
@given(st.binary(min_size=1, max_size=200))
def test_xxh32_matches_the_block_checksums_lz4_writes(data: bytes) -> None:
    # A frame with block checksums: each block is followed by XXH32 of its (stored) bytes.
    encoder = cramjam.lz4.Compressor(level=0, content_checksum=False, block_linked=False)
    encoder.compress(data)
    frame = bytes(encoder.finish())
    assert frame[4] & 0x10  # block checksum flag
    (size,) = struct.unpack_from("<I", frame, 7)
    size &= 0x7FFFFFFF
    block = frame[11 : 11 + size]
    (checksum,) = struct.unpack_from("<I", frame, 11 + size)
    assert xxh32(block) == checksum


def _lz4_blocks(frame: bytes) -> list[tuple[bool, bytes]]:
    """(compressed?, block bytes) of a frame without checksums; checks the header and end."""
    assert frame[:4] == b"\x04\x22\x4d\x18"
    pos = 7
    blocks = []
    while True:
        (size,) = struct.unpack_from("<I", frame, pos)
        pos += 4
        if size == 0:
            break
        stored = bool(size & 0x80000000)
        size &= 0x7FFFFFFF
        blocks.append((not stored, frame[pos : pos + size]))
        pos += size
    assert pos == len(frame)  # no content checksum after the end mark
    return blocks


def test_lz4_frame_header_is_what_kafka_writes() -> None:
    frame = compress(LZ4, COMPRESSIBLE)
    flg, bd, hc = frame[4], frame[5], frame[6]
    assert flg >> 6 == 0b01  # version 1
    assert flg & 0x20  # block independence: Kafka's reader rejects linked blocks
    assert not flg & 0x10  # no block checksum
    assert not flg & 0x08  # no content size
    assert not flg & 0x04  # no content checksum
    assert not flg & 0x03  # reserved and dictionary id
    assert bd == 0x40  # 64 KiB blocks
    assert hc == (xxh32(bytes([flg, bd])) >> 8) & 0xFF  # KIP-57: checksum of FLG and BD only
    assert frame[:7] == bytes.fromhex("04224d18604082")


def test_lz4_blocks_are_64k_and_independent() -> None:
    data = COMPRESSIBLE[:150_000]
    blocks = _lz4_blocks(compress(LZ4, data))
    assert len(blocks) == 3
    inflated = []
    for compressed, block in blocks:
        assert compressed
        # Each block decompresses on its own, without the previous block as dictionary. (The
        # prefix is the block format's size field; cramjam stops at the block's real end.)
        sized_block = struct.pack("<I", 65536) + block
        inflated.append(bytes(cramjam.lz4.decompress_block(sized_block)))
    assert [len(part) for part in inflated] == [65536, 65536, 150_000 - 2 * 65536]
    assert b"".join(inflated) == data


def test_lz4_incompressible_blocks_are_stored() -> None:
    data = os.urandom(70_000)
    blocks = _lz4_blocks(compress(LZ4, data))
    assert blocks == [(False, data[:65536]), (False, data[65536:])]


def test_lz4_hc_levels_keep_blocks_independent() -> None:
    fast = compress(LZ4, COMPRESSIBLE)
    frame = compress(LZ4, COMPRESSIBLE, 9)
    assert frame[4] & 0x20
    assert not frame[4] & 0x04
    assert frame[5] == 0x40
    assert frame[6] == lz4_header_checksum(frame[4:6])
    assert len(frame) < len(fast)
    assert decompress(LZ4, frame) == COMPRESSIBLE


def test_lz4_reads_the_pre_kip57_header_checksum_for_magic_0() -> None:
    frame = bytearray(compress(LZ4, COMPRESSIBLE))
    frame[6] = (xxh32(bytes(frame[:6])) >> 8) & 0xFF  # the old bug: magic included
    assert frame[6] != compress(LZ4, b"")[6]
    with pytest.raises(DecodeError):
        decompress(LZ4, bytes(frame))
    assert decompress(LZ4, bytes(frame), lz4_broken_header=True) == COMPRESSIBLE


def test_lz4_reads_linked_blocks_and_checksums_from_other_writers() -> None:
    frame = bytes(cramjam.lz4.compress(COMPRESSIBLE))  # linked blocks, content checksum
    assert decompress(LZ4, frame) == COMPRESSIBLE


# -- zstd ----------------------------------------------------------------------------------------


def test_zstd_reads_frames_without_content_size() -> None:
    encoder = cramjam.zstd.Compressor()  # streaming: no content size, as zstd-jni writes
    encoder.compress(COMPRESSIBLE)
    frame = bytes(encoder.finish())
    assert decompress(ZSTD, frame) == COMPRESSIBLE


# -- without cramjam -----------------------------------------------------------------------------


@pytest.fixture
def no_cramjam(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_compression, "cramjam", None)


@pytest.mark.usefixtures("no_cramjam")
@pytest.mark.parametrize(("codec", "name"), [(SNAPPY, "snappy"), (LZ4, "lz4"), (ZSTD, "zstd")])
def test_missing_cramjam_names_the_extra(codec: int, name: str) -> None:
    with pytest.raises(UnsupportedCodecError) as caught:
        compress(codec, b"data")
    assert caught.value.codec == name
    assert f"pip install 'trio-brod[{name}]'" in str(caught.value)
    assert isinstance(caught.value, ProtocolError)
    with pytest.raises(UnsupportedCodecError, match=name):
        decompress(codec, b"data")


@pytest.mark.usefixtures("no_cramjam")
def test_gzip_needs_no_cramjam() -> None:
    assert decompress(GZIP, compress(GZIP, COMPRESSIBLE)) == COMPRESSIBLE


def test_missing_cramjam_through_the_batch_api(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = records.encode_batch([(0, b"k", b"v", ())], compression=records.Compression.ZSTD)
    monkeypatch.setattr(_compression, "cramjam", None)
    with pytest.raises(UnsupportedCodecError, match=r"trio-brod\[zstd\]"):
        records.encode_batch([(0, b"k", b"v", ())], compression=records.Compression.ZSTD)
    decoded = records.decode_batches(batch)  # headers need no codec
    assert decoded.batches[0].record_count == 1
    with pytest.raises(UnsupportedCodecError, match=r"trio-brod\[zstd\]"):
        decoded.batches[0].records()
    assert records.UnsupportedCodecError is UnsupportedCodecError


def test_unsupported_codec_error_pickles() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(UnsupportedCodecError("lz4")))
    assert error.codec == "lz4"
    assert "trio-brod[lz4]" in str(error)
