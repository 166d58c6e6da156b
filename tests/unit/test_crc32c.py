"""CRC-32C: the pure-Python fallback against known vectors and google-crc32c."""

from __future__ import annotations

import sys
import types
import warnings

import google_crc32c
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_brod.protocol import _crc32c, records
from trio_brod.protocol._crc32c import crc32c_python

# RFC 3720 (iSCSI), appendix B.4, plus the classic check value.
KNOWN_VECTORS = [
    (b"", 0x00000000),
    (b"123456789", 0xE3069283),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
]


@pytest.mark.parametrize(("data", "expected"), KNOWN_VECTORS)
def test_python_fallback_known_vectors(data: bytes, expected: int) -> None:
    assert crc32c_python(data) == expected


@pytest.mark.parametrize(("data", "expected"), KNOWN_VECTORS)
def test_selected_implementation_known_vectors(data: bytes, expected: int) -> None:
    assert _crc32c.value(data) == expected
    assert _crc32c.extend(_crc32c.value(data[:5]), data[5:]) == expected


def test_every_length_around_the_eight_byte_steps() -> None:
    data = bytes(range(256)) * 2
    for length in range(len(data)):
        assert crc32c_python(data[:length]) == google_crc32c.value(data[:length]), length


@given(st.binary(max_size=5000))
def test_python_fallback_matches_google_crc32c(data: bytes) -> None:
    assert crc32c_python(data) == google_crc32c.value(data)


@given(st.binary(max_size=500), st.binary(max_size=500))
def test_python_fallback_continues_a_checksum(first: bytes, second: bytes) -> None:
    assert crc32c_python(second, crc32c_python(first)) == google_crc32c.value(first + second)


def test_python_fallback_takes_any_buffer() -> None:
    data = b"123456789"
    assert crc32c_python(bytearray(data)) == 0xE3069283
    assert crc32c_python(memoryview(b"xx" + data)[2:]) == 0xE3069283


def test_c_extension_is_used_when_present() -> None:
    if google_crc32c.implementation != "c":
        pytest.skip("google-crc32c has no C extension here")
    assert _crc32c.IMPLEMENTATION == "c"
    assert records.CRC32C_IMPLEMENTATION == "c"
    assert _crc32c.value is google_crc32c.value


def test_falls_back_when_google_crc32c_is_pure_python(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("google_crc32c")
    fake.implementation = "python"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "google_crc32c", fake)
    implementation, value, extend = _crc32c._load()
    assert implementation == "python"
    assert value is _crc32c._python_value
    assert extend is _crc32c._python_extend


def test_falls_back_when_google_crc32c_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google_crc32c", None)  # makes the import fail
    implementation, _, _ = _crc32c._load()
    assert implementation == "python"


def test_fallback_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_crc32c, "_warned", False)
    with pytest.warns(RuntimeWarning, match="pure Python") as caught:
        assert _crc32c._python_value(b"123456789") == 0xE3069283
    assert len(caught) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _crc32c._python_extend(0xE3069283, b"") == 0xE3069283
