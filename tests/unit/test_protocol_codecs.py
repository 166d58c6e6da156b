"""Property tests of every generated message class, in every version.

Values are built from the ``_SCHEMA`` table the generator puts on each class: for a version,
fields the version has get random values of their wire type (None only where the version allows
it), fields it lacks keep their defaults. Then:

* round trip: ``decode(encode(m)) == m``;
* fuzz: random bytes, and valid encodings with bytes flipped, cut off, added or overwritten,
  go into the decoder, which must either succeed or raise DecodeError -- nothing else.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trio_brod.protocol._gen as gen
from trio_brod.protocol import DecodeError, Message
from trio_brod.protocol._primitives import FieldSchema, Struct

MESSAGE_CLASSES: list[type[Message]] = [
    cls
    for name in gen.__all__
    if isinstance(cls := getattr(gen, name), type) and issubclass(cls, Message)
]
CASES = [
    pytest.param(cls, version, id=f"{cls.NAME}-v{version}")
    for cls in MESSAGE_CLASSES
    for version in range(cls.MIN_VERSION, cls.MAX_VERSION + 1)
]

# Small values keep ~430 (class, version) pairs quick; the codecs treat every length alike.
CODEC_SETTINGS = settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


def _primitive(kind: str) -> st.SearchStrategy[Any]:
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        return st.integers(low, high)
    if kind == "bool":
        return st.booleans()
    if kind == "float64":
        return st.floats(allow_nan=False)
    if kind == "uuid":
        return st.integers(0, 2**128 - 1).map(lambda i: uuid.UUID(int=i))
    if kind == "string":
        return st.text(max_size=8)
    if kind in ("bytes", "records"):
        return st.binary(max_size=12)
    raise AssertionError(kind)


def _field(field: FieldSchema, version: int, depth: int) -> st.SearchStrategy[Any]:
    if field.kind == "struct":
        assert field.struct is not None
        value = struct_strategy(field.struct, version, depth + 1)
    elif field.kind == "array":
        assert field.element is not None
        if field.element == "struct":
            assert field.struct is not None
            element = struct_strategy(field.struct, version, depth + 1)
        else:
            element = _primitive(field.element)
        value = st.lists(element, max_size=3 if depth == 0 else 2)
    else:
        value = _primitive(field.kind)
    if version in field.nullable:
        return st.none() | value
    return value


def struct_strategy(cls: type[Struct], version: int, depth: int = 0) -> st.SearchStrategy[Any]:
    """Instances of *cls* that are valid in *version*: absent fields keep their defaults."""
    fields = {f.name: _field(f, version, depth) for f in cls._SCHEMA if version in f.versions}
    return st.builds(cls, **fields)


@pytest.mark.parametrize(("cls", "version"), CASES)
def test_round_trip(cls: type[Message], version: int) -> None:
    @CODEC_SETTINGS
    @given(struct_strategy(cls, version))
    def check(message: Message) -> None:
        encoded = message.encode(version)
        assert cls.decode(encoded, version) == message
        # decode_from stops at the end of the message and leaves what follows alone
        decoded, end = cls.decode_from(b"\x07" + encoded + b"tail", 1, version)
        assert (decoded, end) == (message, 1 + len(encoded))

    check()


def _mutate(data: bytes, draw: st.DrawFn) -> bytes:
    """Damage an encoding in one of the ways a broken peer or a bit flip would."""
    how = draw(st.sampled_from(["flip", "truncate", "extend", "insert", "overwrite"]))
    if how == "extend" or not data:
        return data + draw(st.binary(min_size=1, max_size=8))
    index = draw(st.integers(0, len(data) - 1))
    if how == "flip":
        mask = draw(st.integers(1, 255))
        return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]
    if how == "truncate":
        return data[:index]
    if how == "insert":
        return data[:index] + draw(st.binary(min_size=1, max_size=4)) + data[index:]
    # overwrite with bytes that make huge, negative or null lengths and counts
    junk = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x80", b"\xff"]))
    return data[:index] + junk + data[index + len(junk) :]


@st.composite
def _damaged(draw: st.DrawFn, cls: type[Message], version: int) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=48))
    message = draw(struct_strategy(cls, version))
    return _mutate(message.encode(version), draw)


@pytest.mark.parametrize(("cls", "version"), CASES)
def test_damaged_input_raises_only_decode_error(cls: type[Message], version: int) -> None:
    @CODEC_SETTINGS
    @given(_damaged(cls, version))
    def check(data: bytes) -> None:
        try:
            cls.decode(data, version)
        except DecodeError as exc:
            message = str(exc)
        else:
            return
        assert cls.NAME in message

    check()


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda cls: cls.NAME)
def test_default_instance_round_trips_in_every_version(cls: type[Message]) -> None:
    message = cls()
    for version in range(cls.MIN_VERSION, cls.MAX_VERSION + 1):
        try:
            encoded = message.encode(version)
        except Exception as exc:  # a default that no version can carry would be a bug
            pytest.fail(f"{cls.NAME} v{version}: {exc}")
        assert cls.decode(encoded, version) == message
        # every view of the same bytes decodes the same
        assert cls.decode(bytearray(encoded), version) == message
        assert cls.decode(memoryview(encoded), version) == message
