"""CRC-32C (Castagnoli), the checksum of Kafka record batches (magic v2).

Two implementations, chosen once at import:

* ``"c"`` -- the C extension of ``google-crc32c`` (hardware CRC32C instructions where the CPU
  has them, tens of GB/s). This is the normal case: ``google-crc32c`` is a dependency of
  trio-brod and ships wheels for every common platform.
* ``"python"`` -- a table-driven pure-Python version, used only when that C extension cannot
  be loaded. It runs at about 30 MB/s, roughly a thousand times slower, so the first time it is
  used it emits a :class:`RuntimeWarning` saying so.

Both expose the same two functions as ``google_crc32c``: :func:`value` and :func:`extend`. They
take ``bytes`` (the C extension does not accept a ``memoryview``).
"""

from __future__ import annotations

import struct
import warnings
from array import array
from collections.abc import Callable
from typing import Final, Literal

__all__ = ["IMPLEMENTATION", "SLOW_FALLBACK_WARNING", "crc32c_python", "extend", "value"]

# The reflected form of the Castagnoli polynomial 0x1EDC6F41.
_POLYNOMIAL: Final = 0x82F63B78

SLOW_FALLBACK_WARNING: Final = (
    "trio-brod is computing CRC-32C checksums in pure Python (about 30 MB/s instead of tens of "
    "GB/s) because the C extension of google-crc32c could not be loaded; producing and "
    "consuming will be slow. Reinstall google-crc32c from a wheel for this platform, or build "
    "it with a C compiler available."
)


def _byte_tables(count: int) -> list[list[int]]:
    """Return ``count`` tables of 256 entries: ``tables[k][b]`` is the CRC register after
    feeding the byte ``b`` followed by ``k`` zero bytes into a zero register."""
    first = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLYNOMIAL if crc & 1 else crc >> 1
        first.append(crc)
    tables = [first]
    for _ in range(1, count):
        previous = tables[-1]
        tables.append([(entry >> 8) ^ first[entry & 0xFF] for entry in previous])
    return tables


_BYTE_TABLES: Final = _byte_tables(8)
_TABLE0: Final = _BYTE_TABLES[0]

# The pure-Python fast path works on 8 bytes per loop iteration and looks them up as four 16-bit
# words, so it needs four tables of 65,536 entries: WORD_TABLES[k][w] is the CRC contribution of
# the little-endian 16-bit word ``w`` followed by ``2 * k`` zero bytes. Fewer, larger lookups
# beat the classic slicing-by-8 (eight 8-bit lookups) in CPython, where every operation costs
# far more than a cache miss: ~30 MB/s against ~22 MB/s (byte-at-a-time: ~16 MB/s). They are
# kept in ``array('I')`` (1 MiB in all) rather than lists, which is both smaller and, measured,
# faster. They are built on first use (about 20 ms), so the common C path never pays for them.
_word_tables: list[array[int]] | None = None


def _build_word_tables() -> list[array[int]]:
    tables = []
    for k in range(4):
        low_byte_table = _BYTE_TABLES[2 * k + 1]
        high_byte_table = _BYTE_TABLES[2 * k]
        tables.append(
            array(
                "I",
                [low_byte_table[w & 0xFF] ^ high_byte_table[w >> 8] for w in range(65536)],
            )
        )
    return tables


_unpack_words = struct.Struct("<IHH").iter_unpack


def crc32c_python(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """Return the CRC-32C of ``data``, continuing from the checksum ``crc`` (pure Python).

    ``crc32c_python(b, crc32c_python(a)) == crc32c_python(a + b)``.
    """
    global _word_tables
    if _word_tables is None:
        _word_tables = _build_word_tables()
    w0, w1, w2, w3 = _word_tables
    table0 = _TABLE0
    view = memoryview(data).cast("B")
    whole = len(view) & ~7
    crc ^= 0xFFFFFFFF
    # Each step folds the register into the first four bytes, then looks up the eight bytes as
    # four 16-bit words (the low word of ``low`` is the earliest in the stream).
    for low, word2, word3 in _unpack_words(view[:whole]):
        low ^= crc
        crc = w3[low & 0xFFFF] ^ w2[low >> 16] ^ w1[word2] ^ w0[word3]
    for byte in view[whole:]:
        crc = table0[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


_warned = False


def _python_value(data: bytes) -> int:
    """:func:`value` of the pure-Python fallback: warns once, then computes."""
    _warn_once()
    return crc32c_python(data)


def _python_extend(crc: int, data: bytes) -> int:
    """:func:`extend` of the pure-Python fallback: warns once, then computes."""
    _warn_once()
    return crc32c_python(data, crc)


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(SLOW_FALLBACK_WARNING, RuntimeWarning, stacklevel=4)


def _load() -> tuple[Literal["c", "python"], Callable[[bytes], int], Callable[[int, bytes], int]]:
    """Pick the implementation: google-crc32c's C extension if it loads, else pure Python."""
    try:
        # google_crc32c warns by itself on import when it has to fall back to its own pure
        # Python code; we say it once, in our own words, and only if a checksum is computed.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            import google_crc32c
    except ImportError:
        pass
    else:
        if google_crc32c.implementation == "c":
            return "c", google_crc32c.value, google_crc32c.extend
    return "python", _python_value, _python_extend


#: ``"c"`` or ``"python"``: which implementation :func:`value` and :func:`extend` use.
IMPLEMENTATION: Literal["c", "python"]
#: ``value(data)``: the CRC-32C of ``data`` (``bytes``).
value: Callable[[bytes], int]
#: ``extend(crc, data)``: the CRC-32C of the data that had checksum ``crc``, followed by ``data``.
extend: Callable[[int, bytes], int]

IMPLEMENTATION, value, extend = _load()
