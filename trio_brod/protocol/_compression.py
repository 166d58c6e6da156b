"""The compression codecs of Kafka record batches, written the way the Java client writes them.

Codec ids are the values of the compression bits of a batch's attributes (and of
:class:`trio_brod.protocol.records.Compression`): 1 gzip, 2 snappy, 3 lz4, 4 zstd.

* **gzip** -- an RFC 1952 gzip stream, by the standard library's ``zlib``. Reading accepts
  several concatenated members, as ``java.util.zip.GZIPInputStream`` does.
* **snappy** -- snappy-java's ("xerial") stream format, which is what Kafka's
  ``SnappyOutputStream`` writes: a 16-byte header (``b"\\x82SNAPPY\\x00"``, then version 1 and
  minimum compatible version 1 as big-endian int32), then chunks of at most 32 KiB of input,
  each a big-endian int32 length followed by one raw snappy block. Reading also accepts one
  plain raw snappy block without that header (some non-Java clients write that; snappy-java
  reads it too). Google's snappy *framing* format is a different thing and is not Kafka's.
* **lz4** -- the LZ4 frame format (v1.5.1) as Kafka's ``Lz4BlockOutputStream`` writes it:
  FLG ``0x60`` (version 1, independent blocks, no block or content checksum), BD ``0x40``
  (64 KiB blocks), a correct header checksum (KIP-57), each block compressed on its own with
  LZ4's fast compressor. The frame is assembled here from ``cramjam.lz4.compress_block``
  because ``cramjam.lz4.compress`` writes *linked* blocks, which Kafka's reader rejects
  ("Dependent block stream is unsupported"), and defaults to the slow HC compressor. Levels
  3..12 select the HC compressor (through ``cramjam.lz4.Compressor`` with independent blocks).
  Reading accepts any valid frame.
* **zstd** -- a standard zstd frame.

snappy, lz4 and zstd come from ``cramjam``, an optional dependency (``pip install
'trio-brod[compression]'``); without it they raise :class:`UnsupportedCodecError`. gzip always
works.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, Final

from trio_brod.protocol.errors import DecodeError, EncodeError, ProtocolError

cramjam: Any
try:
    import cramjam
except ImportError:  # pragma: no cover - exercised by test_compression with a monkeypatch
    cramjam = None

__all__ = [
    "CODEC_NAMES",
    "DEFAULT_LEVELS",
    "UnsupportedCodecError",
    "compress",
    "decompress",
    "decompress_view",
    "xxh32",
]

GZIP: Final = 1
SNAPPY: Final = 2
LZ4: Final = 3
ZSTD: Final = 4

#: Codec id -> the codec's name, as Kafka's ``compression.type`` spells it.
CODEC_NAMES: Final = {0: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}

#: Codec id -> the level used when none is given. Chosen for speed (a producer compresses on
#: its hot path) with a still useful ratio: on JSON-like record data gzip 1 compresses about
#: ten times faster than zlib's default 6 (which the Java client uses) for a ratio of 7 instead
#: of 8.7; lz4 0 is the fast (non-HC) compressor, the Java client's default too; zstd 3 is
#: zstd's and Kafka's own default, and measured as fast as zstd 1 on batches.
DEFAULT_LEVELS: Final = {GZIP: 1, LZ4: 0, ZSTD: 3}

# Allowed levels. lz4: 0 (or below 3) is the fast compressor, 3..12 the HC compressor at that
# level (the same split liblz4's frame API makes). zstd: its negative "fast" levels up to 22.
_LEVEL_RANGES: Final = {GZIP: range(10), LZ4: range(13), ZSTD: range(-7, 23)}


class UnsupportedCodecError(ProtocolError):
    """A batch must be compressed or decompressed with a codec that is not installed.

    snappy, lz4 and zstd need the optional dependency ``cramjam``; the message names the codec
    and the ``pip install`` command that adds it.

    Attributes:
        codec: The codec's name (``"snappy"``, ``"lz4"`` or ``"zstd"``).
    """

    def __init__(self, codec: str) -> None:
        super().__init__(
            f"{codec} compression needs the optional dependency cramjam, which is not "
            f"installed: pip install 'trio-brod[{codec}]'"
        )
        self.codec = codec

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.codec,))


def _need_cramjam(codec: int) -> Any:
    if cramjam is None:
        raise UnsupportedCodecError(CODEC_NAMES[codec])
    return cramjam


def check_level(codec: int, level: int | None) -> int | None:
    """Return the effective level for ``codec`` (``None`` for snappy, which has none).

    Raises:
        EncodeError: ``level`` is outside the codec's range.
    """
    if codec == SNAPPY:
        if level is not None:
            raise EncodeError("snappy has no compression levels; compression_level must be None")
        return None
    if level is None:
        return DEFAULT_LEVELS[codec]
    allowed = _LEVEL_RANGES[codec]
    if type(level) is not int or level not in allowed:
        raise EncodeError(
            f"compression_level for {CODEC_NAMES[codec]} must be an int in "
            f"{allowed.start}..{allowed.stop - 1}, not {level!r}"
        )
    return level


def compress(codec: int, data: bytes, level: int | None = None) -> bytes:
    """Compress ``data`` with ``codec`` (1 gzip, 2 snappy, 3 lz4, 4 zstd) at ``level``.

    ``level`` ``None`` means the codec's default (:data:`DEFAULT_LEVELS`).

    Raises:
        UnsupportedCodecError: cramjam is needed and missing.
        EncodeError: bad level.
    """
    level = check_level(codec, level)
    if codec == GZIP:
        assert level is not None
        return zlib.compress(data, level, 31)  # wbits 16 + 15: a gzip header and trailer
    if codec == SNAPPY:
        return _xerial_snappy_compress(_need_cramjam(codec), data)
    if codec == LZ4:
        assert level is not None
        return _lz4_frame_compress(_need_cramjam(codec), data, level)
    if codec == ZSTD:
        return bytes(_need_cramjam(codec).zstd.compress(data, level=level))
    raise EncodeError(f"unknown compression codec id {codec}")


def decompress(codec: int, data: bytes | memoryview, *, lz4_broken_header: bool = False) -> bytes:
    """Decompress ``data`` written with ``codec``.

    ``lz4_broken_header``: accept the wrong lz4 frame header checksum that Kafka clients wrote
    before KIP-57 (used for legacy messages of magic 0 only).

    Raises:
        DecodeError: ``data`` is not valid for the codec.
        UnsupportedCodecError: cramjam is needed and missing.
    """
    out = _decompress(codec, data, lz4_broken_header)
    return out if type(out) is bytes else bytes(out)


def decompress_view(codec: int, data: bytes | memoryview) -> bytes | memoryview:
    """:func:`decompress`, but without copying cramjam's output into ``bytes``.

    For zstd and lz4 the result is a read-only memoryview of the buffer cramjam decompressed
    into (copying a megabyte into ``bytes`` costs about 50 µs); for gzip and snappy it is
    the ``bytes`` they make anyway. For readers that take any buffer, such as the C record
    decoder.

    Raises:
        DecodeError: ``data`` is not valid for the codec.
        UnsupportedCodecError: cramjam is needed and missing.
    """
    out = _decompress(codec, data, False)
    return out if type(out) is bytes else memoryview(out).toreadonly()


def _decompress(codec: int, data: bytes | memoryview, lz4_broken_header: bool) -> Any:
    """``bytes``, or cramjam's ``Buffer`` (zstd, lz4)."""
    try:
        if codec == GZIP:
            return _gzip_decompress(data)
        if codec == SNAPPY:
            return _xerial_snappy_decompress(_need_cramjam(codec), data)
        if codec == LZ4:
            if lz4_broken_header:
                data = _fix_lz4_header_checksum(data)
            return _need_cramjam(codec).lz4.decompress(data)
        if codec == ZSTD:
            return _need_cramjam(codec).zstd.decompress(data)
    except (zlib.error, ValueError, struct.error) as exc:
        raise DecodeError(f"cannot decompress {CODEC_NAMES[codec]} data: {exc}") from exc
    except Exception as exc:
        # cramjam.DecompressionError derives from Exception only; it is the only other error
        # these calls raise for bad input.
        if cramjam is not None and isinstance(exc, cramjam.DecompressionError):
            raise DecodeError(f"cannot decompress {CODEC_NAMES[codec]} data: {exc}") from exc
        raise
    raise DecodeError(f"unknown compression codec id {codec}")


# -- gzip ------------------------------------------------------------------------------------


def _gzip_decompress(data: bytes | memoryview) -> bytes:
    decompressor = zlib.decompressobj(31)
    out = decompressor.decompress(data)
    if not decompressor.eof:
        raise DecodeError("cannot decompress gzip data: the stream is truncated")
    rest = decompressor.unused_data
    if not rest.startswith(b"\x1f\x8b"):
        # Like GZIPInputStream: anything after a member that is not another member is ignored.
        return out
    parts = [out]
    while rest.startswith(b"\x1f\x8b"):
        decompressor = zlib.decompressobj(31)
        parts.append(decompressor.decompress(rest))
        if not decompressor.eof:
            raise DecodeError("cannot decompress gzip data: a member is truncated")
        rest = decompressor.unused_data
    return b"".join(parts)


# -- snappy (xerial framing) -----------------------------------------------------------------

XERIAL_MAGIC: Final = b"\x82SNAPPY\x00"
#: The whole xerial header: magic, version 1, minimum compatible version 1.
XERIAL_HEADER: Final = XERIAL_MAGIC + struct.pack(">ii", 1, 1)
#: Input bytes per chunk; snappy-java's SnappyOutputStream default.
XERIAL_BLOCK_SIZE: Final = 32 * 1024

_int32 = struct.Struct(">i")


def _xerial_snappy_compress(cj: Any, data: bytes) -> bytes:
    compress_raw = cj.snappy.compress_raw
    parts = [XERIAL_HEADER]
    view = memoryview(data)
    for start in range(0, len(data), XERIAL_BLOCK_SIZE):
        block = bytes(compress_raw(view[start : start + XERIAL_BLOCK_SIZE]))
        parts.append(_int32.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def _xerial_snappy_decompress(cj: Any, data: bytes | memoryview) -> bytes:
    decompress_raw = cj.snappy.decompress_raw
    if bytes(data[:8]) != XERIAL_MAGIC:
        # No xerial header: one raw snappy block, which snappy-java accepts as well.
        return bytes(decompress_raw(data))
    if len(data) < 16:
        raise DecodeError("cannot decompress snappy data: the xerial header is truncated")
    (version,) = _int32.unpack_from(data, 8)
    if version < 1:
        raise DecodeError(f"cannot decompress snappy data: xerial version {version} is unknown")
    view = memoryview(data)
    pos = 16
    end = len(view)
    parts = []
    while pos < end:
        if end - pos < 4:
            raise DecodeError("cannot decompress snappy data: a chunk length is truncated")
        (size,) = _int32.unpack_from(view, pos)
        pos += 4
        if size < 0 or pos + size > end:
            raise DecodeError(
                f"cannot decompress snappy data: a chunk of {size} bytes does not fit in the "
                f"{end - pos} bytes left"
            )
        parts.append(bytes(decompress_raw(view[pos : pos + size])))
        pos += size
    return b"".join(parts)


# -- lz4 (frame format) ----------------------------------------------------------------------

LZ4_MAGIC: Final = b"\x04\x22\x4d\x18"
#: FLG: version 01, block independence set, no block checksum, no content size, no content
#: checksum, no dictionary id -- exactly what Kafka's Lz4BlockOutputStream writes.
LZ4_FLG: Final = 0x60
#: BD: maximum block size 64 KiB (code 4).
LZ4_BD: Final = 0x40
LZ4_BLOCK_SIZE: Final = 64 * 1024
_LZ4_UNCOMPRESSED_BIT: Final = 0x80000000
_lz4_block_length = struct.Struct("<I")

_P1: Final = 0x9E3779B1
_P2: Final = 0x85EBCA77
_P3: Final = 0xC2B2AE3D
_P4: Final = 0x27D4EB2F
_P5: Final = 0x165667B1
_M32: Final = 0xFFFFFFFF


def _rotl32(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def xxh32(data: bytes, seed: int = 0) -> int:
    """XXH32 of ``data``, in pure Python.

    Only used on a few bytes (lz4 frame header checksums), so simplicity beats speed here.
    """
    n = len(data)
    pos = 0
    if n >= 16:
        v1 = (seed + _P1 + _P2) & _M32
        v2 = (seed + _P2) & _M32
        v3 = seed & _M32
        v4 = (seed - _P1) & _M32
        while pos + 16 <= n:
            a, b, c, d = struct.unpack_from("<4I", data, pos)
            v1 = (_rotl32((v1 + a * _P2) & _M32, 13) * _P1) & _M32
            v2 = (_rotl32((v2 + b * _P2) & _M32, 13) * _P1) & _M32
            v3 = (_rotl32((v3 + c * _P2) & _M32, 13) * _P1) & _M32
            v4 = (_rotl32((v4 + d * _P2) & _M32, 13) * _P1) & _M32
            pos += 16
        h = (_rotl32(v1, 1) + _rotl32(v2, 7) + _rotl32(v3, 12) + _rotl32(v4, 18)) & _M32
    else:
        h = (seed + _P5) & _M32
    h = (h + n) & _M32
    while pos + 4 <= n:
        (lane,) = struct.unpack_from("<I", data, pos)
        h = (_rotl32((h + lane * _P3) & _M32, 17) * _P4) & _M32
        pos += 4
    while pos < n:
        h = (_rotl32((h + data[pos] * _P5) & _M32, 11) * _P1) & _M32
        pos += 1
    h ^= h >> 15
    h = (h * _P2) & _M32
    h ^= h >> 13
    h = (h * _P3) & _M32
    h ^= h >> 16
    return h


def lz4_header_checksum(descriptor: bytes) -> int:
    """The HC byte of an lz4 frame: the second byte of XXH32 of the frame descriptor."""
    return (xxh32(descriptor) >> 8) & 0xFF


#: Magic, FLG, BD and HC: the 7 bytes every lz4 frame we write starts with.
LZ4_FRAME_HEADER: Final = LZ4_MAGIC + bytes(
    [LZ4_FLG, LZ4_BD, lz4_header_checksum(bytes([LZ4_FLG, LZ4_BD]))]
)
_LZ4_END_MARK: Final = b"\x00\x00\x00\x00"


def _lz4_frame_compress(cj: Any, data: bytes, level: int) -> bytes:
    if level >= 3:
        # The HC compressor at this level, through cramjam's frame encoder with independent
        # blocks. It also writes block checksums (FLG 0x70), which Kafka's reader verifies
        # and accepts. (cramjam.lz4.compress_block has no HC mode: it ignores ``mode``.)
        encoder = cj.lz4.Compressor(level=level, content_checksum=False, block_linked=False)
        encoder.compress(data)
        return bytes(encoder.finish())
    compress_block = cj.lz4.compress_block
    parts = [LZ4_FRAME_HEADER]
    view = memoryview(data)
    for start in range(0, len(data), LZ4_BLOCK_SIZE):
        chunk = view[start : start + LZ4_BLOCK_SIZE]
        block = bytes(compress_block(chunk, store_size=False))
        if len(block) < len(chunk):
            parts.append(_lz4_block_length.pack(len(block)))
            parts.append(block)
        else:  # incompressible: store the chunk as it is, flagged by the high bit
            parts.append(_lz4_block_length.pack(len(chunk) | _LZ4_UNCOMPRESSED_BIT))
            parts.append(bytes(chunk))
    parts.append(_LZ4_END_MARK)
    return b"".join(parts)


def _fix_lz4_header_checksum(data: bytes | memoryview) -> bytes | memoryview:
    """Rewrite the HC byte of an lz4 frame to the correct value.

    Before KIP-57, Kafka clients computed the frame header checksum over the magic number as
    well; messages of magic 0 written then carry that wrong byte, and Kafka's reader ignores it
    for magic 0. cramjam always checks it, so it is corrected here instead.
    """
    if len(data) < 7 or bytes(data[:4]) != LZ4_MAGIC:
        return data  # not a frame: let the decompressor say so
    flg = data[4]
    descriptor_length = 2 + (8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0)
    if len(data) < 4 + descriptor_length + 1:
        return data
    descriptor = bytes(data[4 : 4 + descriptor_length])
    fixed = bytearray(data)
    fixed[4 + descriptor_length] = lz4_header_checksum(descriptor)
    return bytes(fixed)
