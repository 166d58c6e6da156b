"""The C record codec (trio_brod.protocol._speedups) against the pure-Python one.

The record tests in test_records*.py run with both codecs. Here the two are compared directly,
on random and mutated input: the same records, the same bytes, or the same exception class and
message. Then come what only C code can get wrong: references leaked or dropped, on success
and on every error path, and arguments that records.py never passes. Then the producer's
prepare_records against produce_batch's Python loop, and last, the extension's murmur2 against
the Java client's answers and partitioners.py's pure-Python murmur2.

If TRIO_BROD_REQUIRE_SPEEDUPS is set (the noxfile's test session sets it), the extension must
be in use; otherwise the C tests are skipped where it is not built.

Under valgrind (about 5 minutes; run after changing _speedups.c)::

    PYTHONMALLOC=malloc valgrind --error-exitcode=1 --undef-value-errors=no \
        --suppressions=wmemcmp.supp python -m pytest tests/unit/test_speedups.py -p no:cacheprovider

``--undef-value-errors=no`` because CPython 3.11 itself reads the unset digit of the int 0
(``maybe_small_long``), which valgrind then reports wherever that 0 goes; wrong bytes written
by the encoder would show up here as a difference from the Python encoder instead.
``wmemcmp.supp`` silences a known false positive of valgrind 3.19 in glibc's AVX2 ``wmemcmp``::

    {
       glibc-avx2-wmemcmp
       Memcheck:Addr32
       fun:__wmemcmp_avx2_movbe
    }
"""

from __future__ import annotations

import gc
import gzip
import importlib.util
import os
import pickle
import subprocess
import sys
import tracemalloc
import types
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.java_vectors import JAVA_VECTORS
from tests.produce_batch_cases import (
    NOW,
    BytesSubclass,
    KeyValue,
    MessageSubclass,
    TupleSubclass,
    batch_outcome,
    describe_call,
    plain_messages,
)
from tests.records_helpers import batch_of, pure_python_codec
from trio_brod import Message
from trio_brod.producer import partitioners
from trio_brod.producer import worker as producer
from trio_brod.protocol import _records_batch, _records_encode, records
from trio_brod.protocol.errors import DecodeError
from trio_brod.protocol.records import (
    BATCH_OVERHEAD,
    Compression,
    Record,
    TimestampType,
    decode_batches,
    encode_batch,
)

REQUIRED = os.environ.get("TRIO_BROD_REQUIRE_SPEEDUPS", "") not in ("", "0")
BUILT = importlib.util.find_spec("trio_brod.protocol._speedups") is not None

if records.IMPLEMENTATION == "c":
    from trio_brod.protocol import _speedups
else:  # the tests that need it are skipped below
    _speedups = None  # type: ignore[assignment]

needs_c = pytest.mark.skipif(
    records.IMPLEMENTATION != "c", reason="the C record codec is not in use"
)


# -- which codec is in use -----------------------------------------------------------------------


def test_the_c_codec_is_in_use_where_required() -> None:
    if not REQUIRED:
        pytest.skip("TRIO_BROD_REQUIRE_SPEEDUPS is not set")
    assert records.IMPLEMENTATION == "c", (
        "TRIO_BROD_REQUIRE_SPEEDUPS is set but trio_brod.protocol._speedups is not in use: "
        "was the C extension built? (pip install -e . with a C compiler and Python headers)"
    )


@pytest.mark.parametrize("pure_python", [None, "", "0", "1", "yes"])
def test_implementation_follows_the_extension_and_the_environment(pure_python: str | None) -> None:
    env = dict(os.environ)
    env.pop("TRIO_BROD_PURE_PYTHON", None)
    if pure_python is not None:
        env["TRIO_BROD_PURE_PYTHON"] = pure_python
    answer = subprocess.run(
        [
            sys.executable,
            "-c",
            "from trio_brod.producer import worker as producer; "
            "from trio_brod.protocol import records; "
            "print(records.IMPLEMENTATION, producer._c_prepare_records is not None)",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    wants_python = pure_python not in (None, "", "0")
    # produce_batch's C path comes and goes with the C codec.
    assert answer == ("c True" if BUILT and not wants_python else "python False")


@needs_c
def test_pure_python_codec_runs_the_python_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every comparison below leans on pure_python_codec(): if it patched globals the hot loops
    # do not read, C would be compared with C and every test here would pass regardless.
    calls: list[str] = []
    python_decode = _records_batch._decode_v2_records
    python_headers = _records_encode._encode_headers_fast

    def spy_decode(*args: Any) -> list[Record]:
        calls.append("decode")
        return python_decode(*args)

    def spy_headers(headers: Any) -> bytes:
        calls.append("encode")
        return python_headers(headers)

    monkeypatch.setattr(_records_batch, "_decode_v2_records", spy_decode)
    monkeypatch.setattr(_records_encode, "_encode_headers_fast", spy_headers)

    def round_trip() -> None:
        data = encode_batch([(NOW, b"k", b"v", [("h", b"x")])])
        (batch,) = decode_batches(data).batches
        batch.records()

    round_trip()
    assert calls == []  # the C loops, which do not call back for these records
    with pure_python_codec():
        round_trip()
    assert calls == ["encode", "decode"]


# -- the two codecs compared ---------------------------------------------------------------------


def decode_outcome(data: bytes) -> str:
    """What decoding every batch in ``data`` gives: the records, or the error (as text, so
    that the types of every field are compared too)."""
    try:
        return repr([batch.records() for batch in decode_batches(data, verify_crc=False).batches])
    except DecodeError as exc:
        return f"{type(exc).__name__}: {exc}"


def assert_same_decoding(data: bytes) -> str:
    with_c = decode_outcome(data)
    with pure_python_codec():
        with_python = decode_outcome(data)
    assert with_c == with_python
    return with_c


def encode_outcome(input_records: Sequence[Any]) -> str:
    try:
        return repr(encode_batch(input_records))
    except Exception as exc:  # TypeError, EncodeError, UnicodeEncodeError ...: all compared
        return f"{type(exc).__name__}: {exc}"


def assert_same_encoding(input_records: Sequence[Any]) -> str:
    with_c = encode_outcome(input_records)
    with pure_python_codec():
        with_python = encode_outcome(input_records)
    assert with_c == with_python
    return with_c


keys = st.none() | st.binary(max_size=20)
values = st.none() | st.binary(max_size=100)
header_lists = st.lists(
    st.tuples(st.text(max_size=6), st.none() | st.binary(max_size=10)), max_size=3
)
# Within 2**61 of 0, so that the difference of any two, even 10,000 apart from one of these
# (valid_record_lists), is an int64: a valid batch.
timestamps = st.integers(0, 2**41) | st.integers(-(2**61), 2**61)


@st.composite
def valid_record_lists(draw: st.DrawFn) -> list[tuple[int, Any, Any, Any]]:
    base = draw(timestamps)
    near = st.integers(-10_000, 10_000).map(lambda delta: base + delta)
    return [
        (draw(near | timestamps), draw(keys), draw(values), draw(header_lists | st.just(())))
        for _ in range(draw(st.integers(1, 12)))
    ]


LOG_APPEND_TIME = 0x08


@needs_c
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=120),
    st.integers(0, 20),
    st.sampled_from([0, LOG_APPEND_TIME]),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**63), 2**63 - 1),
)
def test_same_decoding_of_random_records(
    section: bytes, count: int, attributes: int, base_offset: int, base_timestamp: int
) -> None:
    assert_same_decoding(
        batch_of(
            section,
            count,
            base_offset=base_offset,
            base_timestamp=base_timestamp,
            max_timestamp=base_timestamp // 2,
            attributes=attributes,
        )
    )


@needs_c
@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(
    valid_record_lists(),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
    st.integers(0, 10_000),
    st.integers(0, 3),
    st.integers(-2, 2),
    st.sampled_from([0, LOG_APPEND_TIME]),
)
def test_same_decoding_of_mutated_records(
    input_records: list[tuple[int, Any, Any, Any]],
    changes: list[tuple[int, int]],
    cut: int,
    inserted: int,
    count_change: int,
    attributes: int,
) -> None:
    """Valid records with bytes changed, cut off, inserted, or a wrong record count: close
    enough to valid that the decoders get deep into them."""
    section = bytearray(encode_batch(input_records)[BATCH_OVERHEAD:])
    for position, value in changes:
        section[position % len(section)] = value
    if inserted:
        at = cut % (len(section) + 1)
        section[at:at] = b"\x00\x80\x01"[:inserted]
    elif cut % 3 == 0:
        del section[len(section) - 1 - cut % len(section) :]
    count = max(0, len(input_records) + count_change)
    assert_same_decoding(
        batch_of(
            bytes(section),
            count,
            base_timestamp=input_records[0][0],
            max_timestamp=2**40,
            attributes=attributes,
        )
    )


@needs_c
@given(valid_record_lists())
def test_same_decoding_of_valid_batches(input_records: list[tuple[int, Any, Any, Any]]) -> None:
    data = encode_batch(input_records, base_offset=5)
    decoded = assert_same_decoding(data)
    assert decoded == repr(
        [
            [
                Record(5 + i, ts, TimestampType.CREATE_TIME, key, value, tuple(headers))
                for i, (ts, key, value, headers) in enumerate(input_records)
            ]
        ]
    )


@needs_c
@given(st.binary(max_size=100), st.integers(0, 20))
def test_same_decoding_of_decompressed_records(section: bytes, count: int) -> None:
    # A compressed batch's records are decoded from the decompressed buffer, not the batch.
    assert_same_decoding(batch_of(gzip.compress(section), count, attributes=int(Compression.GZIP)))


@needs_c
@settings(max_examples=300)
@given(valid_record_lists())
def test_same_encoding_of_valid_records(input_records: list[tuple[int, Any, Any, Any]]) -> None:
    encoded = assert_same_encoding(input_records)
    if input_records[0][0] <= max(ts for ts, _, _, _ in input_records) < 2**63:
        assert not encoded.startswith(("TypeError", "EncodeError"))


class Bytes(bytes):
    pass


class Timestamp(int):
    pass


# Anything a caller might pass: valid in unusual ways (bytearray, memoryview, subclasses, lists
# for tuples, bool timestamps), or invalid (wrong types, lone surrogates, bad shapes).
odd_data = st.one_of(
    st.none(),
    st.binary(max_size=10),
    st.binary(max_size=10).map(bytearray),
    st.binary(max_size=10).map(lambda data: memoryview(data)),
    st.binary(max_size=10).map(Bytes),
    st.text(max_size=3),
    st.integers(),
)
odd_timestamps = st.one_of(
    st.integers(-(2**64), 2**64),
    st.integers(-100, 100),
    st.booleans(),
    st.integers(-100, 100).map(Timestamp),
    st.sampled_from([2.0, 1.5, "7", None]),
)
odd_header_keys = st.one_of(st.text(max_size=4), st.just("\ud800"), st.binary(max_size=3))
odd_headers = st.one_of(
    st.lists(st.tuples(odd_header_keys, odd_data), max_size=3),
    st.lists(st.tuples(odd_header_keys, odd_data), max_size=3).map(tuple),
    st.lists(st.lists(odd_data, min_size=2, max_size=2), max_size=2),
    st.lists(st.tuples(st.text(max_size=2)), min_size=1, max_size=2),
    st.sampled_from([None, (), [], 0, "", "h", b"h", frozenset({("a", b"b")})]),
)
odd_records = st.one_of(
    st.tuples(odd_timestamps, odd_data, odd_data, odd_headers),
    st.tuples(odd_timestamps, odd_data, odd_data, odd_headers).map(list),
    st.tuples(odd_timestamps, odd_data, odd_data),
    st.sampled_from([None, "abcd", b"abcd", 5]),
)


@needs_c
@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(odd_records, min_size=1, max_size=4), valid_record_lists())
def test_same_encoding_of_odd_records(
    odd: list[Any], valid: list[tuple[int, Any, Any, Any]]
) -> None:
    assert_same_encoding(odd)
    assert_same_encoding(valid + odd)  # the odd ones after a fast start


# -- references and memory -----------------------------------------------------------------------


def malformed_sections() -> list[tuple[bytes, int]]:
    """Records sections that fail at each of the decoder's checks, with their record counts."""
    good = bytes.fromhex("18 00 00 00 02 6b 02 76 02 02 68 02 78")  # key, value, one header
    return [
        (good + b"\x81", 2),  # a varint cut short
        (good + b"\xff" * 11 + b"\x00" * 4, 2),  # a varint too long
        (good + bytes.fromhex("1c 00") + b"\xff" * 9 + b"\x02" + b"\x00\x01\x00\x00", 2),
        (good + bytes.fromhex("0c 00 00 00 40 00 00"), 2),  # a key past the end
        (good + bytes.fromhex("0e 00 00 00 01 00 02 01 00"), 2),  # a bad header key length
        (good + bytes.fromhex("0e 00 00 00 01 00 02 02 ff 00"), 2),  # a header key not UTF-8
        (good + bytes.fromhex("0e 00 00 00 01 00 01"), 2),  # a negative header count
        (good + bytes.fromhex("0e 00 00 00 01 00 00"), 2),  # a wrong record length
        (good + bytes.fromhex("0e 00 00 00 01 00 02 02 61 c8 01"), 2),  # a header value overrun
        (good + b"\x00" * 7, 1),  # left over
    ]


def run_decodes(times: int) -> None:
    # One good batch with a LOG_APPEND_TIME, then every malformed one.
    good = batch_of(bytes.fromhex("18 00 00 00 02 6b 02 76 02 02 68 02 78"), 1, attributes=8)
    for _ in range(times):
        for batch in decode_batches(good).batches:
            batch.records()
        for section, count in malformed_sections():
            for batch in decode_batches(batch_of(section, count), verify_crc=False).batches:
                with pytest.raises(DecodeError):
                    batch.records()


def run_encodes(times: int) -> None:
    good: list[Any] = [(1, b"k", b"v", [("h", b"x"), ("n", None)]), (2, None, bytearray(b"v"), ())]
    bad = [*good, (3, b"k", "not bytes", ())]
    for _ in range(times):
        encode_batch(good)
        with pytest.raises(TypeError):
            encode_batch(bad)


def run_prepares(times: int) -> None:
    good: list[Any] = [(b"k" * 16, b"v" * 100), Message(b"v"), (None, None)] * 10
    bad = [*good, (b"k", bytearray(b"v"))]
    for _ in range(times):
        _speedups.prepare_records(good, 10**15, 36, Message)
        _speedups.prepare_records(tuple(good), 10**15, 36, Message)
        _speedups.prepare_records(bad, 10**15, 36, Message)


def memory_growth(run: Callable[[int], None], times: int) -> int:
    """Bytes still allocated after ``run(times)``, beyond what a first short run left."""
    run(20)  # caches, interned strings, hypothesis-free warm-up
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run(times)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


@needs_c
@pytest.mark.parametrize("run", [run_decodes, run_encodes, run_prepares])
def test_no_memory_leaks(run: Callable[[int], None]) -> None:
    # A leaked bytes object or tuple per call would be tens of bytes x 11 cases x 2000.
    assert memory_growth(run, 2000) < 20_000


class Sentinel:
    """An object whose reference count the tests watch."""


@needs_c
def test_decode_references() -> None:
    timestamp_type = Sentinel()
    append_time = 10**30  # an int of its own, not a cached small one
    section = bytes.fromhex("18 00 00 00 02 6b 02 76 02 02 68 02 78") * 3
    base = (sys.getrefcount(Record), sys.getrefcount(timestamp_type), sys.getrefcount(append_time))
    made = _speedups.decode_records(
        Record, section, 0, len(section), 3, 0, 0, timestamp_type, append_time
    )
    assert [type(record) for record in made] == [Record] * 3
    assert (sys.getrefcount(timestamp_type), sys.getrefcount(append_time)) == (
        base[1] + 3,
        base[2] + 3,
    )
    del made
    gc.collect()
    after = (sys.getrefcount(Record), sys.getrefcount(timestamp_type), sys.getrefcount(append_time))
    assert after == base
    # On errors, whatever was made is released.
    for section, count in malformed_sections():
        with pytest.raises(ValueError, match=r"\w"):
            _speedups.decode_records(
                Record, section, 0, len(section), count, 0, 0, timestamp_type, append_time
            )
    after = (sys.getrefcount(Record), sys.getrefcount(timestamp_type), sys.getrefcount(append_time))
    assert after == base


@needs_c
def test_encode_references() -> None:
    key, value, header_value = b"k" * 10, b"v" * 10, b"h" * 10
    slow_calls = []

    def slow(index: int, record: object, base: int) -> tuple[bytes, int]:
        slow_calls.append(index)
        return _records_encode.encode_record_slow(index, record, base)

    input_records = [(1, key, value, [("h", header_value)]), (2, key, bytearray(value), ())]
    objects = (key, value, header_value, slow, input_records[0], input_records[1])
    base = [sys.getrefcount(o) for o in objects]
    payload, max_timestamp = _speedups.encode_records(input_records, 1, slow)
    assert (max_timestamp, slow_calls) == (2, [1])
    assert payload == _records_encode.encode_records(input_records)[0]
    assert [sys.getrefcount(o) for o in objects] == base
    with pytest.raises(TypeError, match="record 2 value"):
        _speedups.encode_records([*input_records, (3, key, "v", ())], 1, slow)
    assert [sys.getrefcount(o) for o in objects] == base


# -- the C module's own edges --------------------------------------------------------------------


@needs_c
def test_records_made_in_c_are_real_records() -> None:
    data = encode_batch([(7, b"k", b"v", [("h", None)])], base_offset=3)
    (record,) = decode_batches(data).batches[0].records()
    assert type(record) is Record
    # Left to reference counting: nothing in them can form a cycle (see _speedups.c).
    assert not gc.is_tracked(record)
    assert not gc.is_tracked(record.headers)
    assert not gc.is_tracked(record.headers[0])
    assert tuple(record) == (3, 7, TimestampType.CREATE_TIME, b"k", b"v", (("h", None),))
    assert hash(record) == hash(tuple(record))
    assert record.key == b"k"
    assert record._replace(value=b"w").value == b"w"
    assert pickle.loads(pickle.dumps(record)) == record
    assert repr(record).startswith("Record(offset=3, timestamp=7,")


# -- Record's fields as slots (record_fields) -----------------------------------------------------


@needs_c
def test_record_fields_are_slots() -> None:
    for index, name in enumerate(Record._fields):
        descriptor = Record.__dict__[name]
        assert type(descriptor) is types.MemberDescriptorType
        assert descriptor.__doc__ == f"Alias for field number {index}"
    record = Record(1, 2, TimestampType.CREATE_TIME, b"k", b"v", (("h", None),))
    assert [getattr(record, name) for name in Record._fields] == list(record)
    with pytest.raises(AttributeError):
        record.value = b"w"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del record.key  # type: ignore[misc]
    assert record._replace(key=None).key is None
    assert record._asdict()["headers"] == (("h", None),)
    assert Record._make(record) == record
    assert pickle.loads(pickle.dumps(record)).value == b"v"


@needs_c
@settings(max_examples=200)
@given(valid_record_lists())
def test_fields_of_decoded_records_are_their_items(
    input_records: list[tuple[int, Any, Any, Any]],
) -> None:
    data = encode_batch(input_records, base_offset=3)
    made_in_c = decode_batches(data).batches[0].records()
    with pure_python_codec():
        made_in_python = decode_batches(data).batches[0].records()
    for record in (*made_in_c, *made_in_python):
        assert tuple(getattr(record, name) for name in Record._fields) == tuple(record)


class RecordSubclass(Record):
    __slots__ = ()


class RecordSubclassWithDict(Record):
    pass


@needs_c
def test_short_records_raise_instead_of_reading_past_their_items() -> None:
    # tuple.__new__ makes a Record of any length; a slot past its items must not be read.
    short = tuple.__new__(Record, (1, 2))
    assert (short.offset, short.timestamp) == (1, 2)
    for name in Record._fields[2:]:
        with pytest.raises(AttributeError):
            getattr(short, name)
    for cls in (RecordSubclass, RecordSubclassWithDict):
        empty = tuple.__new__(cls, ())
        with pytest.raises(AttributeError):
            empty.offset  # noqa: B018
        assert len(empty) == 0
    # Longer ones have all their fields (and more items).
    long = tuple.__new__(Record, range(8))
    assert (long.offset, long.headers, len(long)) == (0, 5, 8)


@needs_c
def test_record_subclasses() -> None:
    for cls in (RecordSubclass, RecordSubclassWithDict):
        record = cls(1, 2, TimestampType.CREATE_TIME, b"k", b"v", ())
        assert (record.offset, record.key, record.value) == (1, b"k", b"v")
        assert type(cls.__dict__["value"]) is types.MemberDescriptorType
        assert pickle.loads(pickle.dumps(record)) == record
    with_dict = RecordSubclassWithDict(1, 2, TimestampType.CREATE_TIME, b"k", b"v", ())
    with_dict.note = "kept"  # type: ignore[attr-defined]
    assert with_dict.note == "kept"  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="takes no keyword arguments"):

        class WithKeyword(Record, option=1):  # type: ignore[call-arg]
            pass


@needs_c
def test_record_references() -> None:
    # Records made every way are freed with what they hold, and give back their class.
    key = b"k" * 50
    timestamp_type = Sentinel()
    classes = (Record, RecordSubclass, RecordSubclassWithDict)

    def make_and_free() -> None:
        for cls in classes:
            made = [cls(i, 0, timestamp_type, key, None, ()) for i in range(100)]
            made += [tuple.__new__(cls, (1, 2, timestamp_type, key)) for _ in range(100)]
            made += [made[0]._replace(offset=7) for _ in range(10)]
            made += _speedups.decode_records(
                cls if cls is not RecordSubclassWithDict else Record,
                *(section, 0, len(section), 3, 0, 0, timestamp_type, None),
            )
            assert {type(record) for record in made[-3:]} <= {cls, Record}
            del made

    section = bytes.fromhex("18 00 00 00 02 6b 02 76 02 02 68 02 78") * 3
    make_and_free()  # anything made once, the first time
    gc.collect()
    base = [sys.getrefcount(o) for o in (key, timestamp_type, *classes)]
    make_and_free()
    gc.collect()
    assert [sys.getrefcount(o) for o in (key, timestamp_type, *classes)] == base


@needs_c
def test_deeply_nested_records_are_freed() -> None:
    # Freeing a record frees what it holds, which may be records: CPython's trashcan
    # flattens the recursion, calling the dealloc again later for the records it put aside.
    refs = sys.getrefcount(Record)
    record = Record(0, 0, TimestampType.CREATE_TIME, None, None, ())
    for i in range(1, 200_000):
        record = Record(i, 0, TimestampType.CREATE_TIME, None, record, ())  # type: ignore[arg-type]
    del record
    assert sys.getrefcount(Record) == refs


def test_record_fields_only_with_the_c_codec() -> None:
    code = (
        "from trio_brod.protocol.records import Record, IMPLEMENTATION\n"
        "print(IMPLEMENTATION, type(Record.__dict__['value']).__name__)"
    )
    env = {**os.environ, "TRIO_BROD_PURE_PYTHON": "1"}
    answer = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert answer == ["python", "_tuplegetter"]


@needs_c
def test_record_fields_arguments() -> None:
    record_fields: Any = _speedups.record_fields  # called with wrong arguments, too
    for not_a_record_class in (tuple, list, Pair(1, 2), 5):
        with pytest.raises(TypeError, match="NamedTuple class"):
            record_fields(not_a_record_class)
    with pytest.raises(TypeError, match="six fields"):
        record_fields(Pair)
    assert type(Pair.__dict__["a"]) is not types.MemberDescriptorType


class WithDict(tuple):  # type: ignore[type-arg]  # no __slots__: instances have a __dict__
    pass


class Pair(NamedTuple):
    a: int
    b: int


@needs_c
def test_decode_arguments() -> None:
    decode: Any = _speedups.decode_records  # called with wrong arguments, too
    section = bytes.fromhex("0c 00 00 00 01 00 00")
    args: list[Any] = [Record, section, 0, 7, 1, 0, 0, TimestampType.CREATE_TIME, None]
    assert decode(*args)[0].value == b""
    for buffer in (bytearray(section), memoryview(b"xx" + section)[2:]):
        assert decode(Record, buffer, *args[2:])[0].value == b""
    with pytest.raises(TypeError, match="takes 9 arguments"):
        decode(*args[:8])
    for record_class in (tuple, tuple[int], WithDict, list, Pair(1, 2)):
        with pytest.raises(TypeError, match="NamedTuple class"):
            decode(record_class, *args[1:])
    with pytest.raises(TypeError):
        decode(Record, "text", *args[2:])
    for pos, end in ((-1, 7), (3, 2), (0, 8)):
        with pytest.raises(IndexError, match="pos <= end"):
            decode(Record, section, pos, end, *args[4:])
    with pytest.raises(ValueError, match="claims 2 records but has only 7 bytes"):
        decode(Record, section, 0, 7, 2, *args[5:])
    with pytest.raises(TypeError, match="base_offset must be an int"):
        decode(*args[:5], 1.0, *args[6:])
    with pytest.raises(OverflowError):
        decode(*args[:6], 2**63, *args[7:])
    with pytest.raises(TypeError, match="append_time"):
        decode(*args[:8], "now")


@needs_c
def test_encode_arguments() -> None:
    def slow(index: int, record: object, base: int) -> tuple[bytes, int]:
        return _records_encode.encode_record_slow(index, record, base)

    encode: Any = _speedups.encode_records  # called with wrong arguments, too
    assert encode([], 0, slow) == (b"", 0)
    assert encode(iter([(5, None, b"", ())]), 5, slow)[1] == 5
    with pytest.raises(TypeError, match="takes 3 arguments"):
        encode([], 0)
    with pytest.raises(TypeError, match="slow must be callable"):
        encode([], 0, None)
    with pytest.raises(OverflowError):
        encode([], 2**63, slow)
    with pytest.raises(TypeError, match="not iterable"):
        encode(5, 0, slow)
    odd = [(0, b"k", bytearray(b"v"), ())]
    with pytest.raises(TypeError, match=r"must return a \(bytes, int\) tuple"):
        encode(odd, 0, lambda *_: b"x")
    with pytest.raises(ZeroDivisionError):
        encode(odd, 0, lambda *_: 1 // 0)

    def failing() -> Any:
        yield (0, None, b"", ())
        raise RuntimeError("the records failed")

    with pytest.raises(RuntimeError, match="the records failed"):
        encode(failing(), 0, slow)


@needs_c
def test_encode_max_timestamp_beyond_int64() -> None:
    # A slow-path timestamp above the int64 range is the largest, and encode_batch rejects it;
    # one below it is never the largest (the base is an int64), and is encoded.
    def slow(index: int, record: object, base: int) -> tuple[bytes, int]:
        return _records_encode.encode_record_slow(index, record, base)

    big = [(2**62, None, b"", ()), (2**63 + 5, None, b"", ()), (2**63 + 1, None, b"", ())]
    assert _speedups.encode_records(big, 2**62, slow)[1] == 2**63 + 5
    assert assert_same_encoding(big).startswith("EncodeError: a timestamp must be an int64")
    low = [(-(2**62), None, b"", ()), (-(2**63) - 5, None, b"", ())]
    assert _speedups.encode_records(low, -(2**62), slow)[1] == -(2**62)
    assert not assert_same_encoding(low).startswith("EncodeError")


# -- the producer's messages --------------------------------------------------------------------
#
# prepare_records() against produce_batch's Python loop (batch_outcome with c_path=False, from
# test_producer.py, which also compares produce_batch's results with and without the C path).


def prepare(messages: Any, now: int = NOW) -> tuple[list[Any], int] | None:
    return _speedups.prepare_records(messages, now, producer._EMPTY_RECORD_SIZE, Message)


@needs_c
@settings(max_examples=500, deadline=None)
@given(st.lists(plain_messages, min_size=1, max_size=20), st.sampled_from([list, tuple]))
def test_prepare_records_is_the_python_loop(
    messages: list[Any], container: Callable[[list[Any]], Sequence[Any]]
) -> None:
    given_messages = container(messages)
    prepared = prepare(given_messages)
    assert prepared is not None, "the C path gave up on plain messages"
    assert describe_call(*prepared) == batch_outcome(given_messages, c_path=False)


class ListSubclass(list):  # type: ignore[type-arg]
    pass


# Messages the C path leaves to the Python loop, valid or not.
ODD_MESSAGES = [
    pytest.param((bytearray(b"k"), b"v"), id="bytearray-key"),
    pytest.param((b"k", bytearray(b"v")), id="bytearray-value"),
    pytest.param((memoryview(b"k"), b"v"), id="memoryview-key"),
    pytest.param(Message(memoryview(b"v")), id="memoryview-value"),  # type: ignore[arg-type]
    pytest.param((BytesSubclass(b"k"), b"v"), id="bytes-subclass-key"),
    pytest.param(Message(BytesSubclass(b"v")), id="bytes-subclass-value"),
    pytest.param((b"k", "text"), id="str-value"),
    pytest.param(Message(b"v", headers=[("h", b"x")]), id="headers"),
    pytest.param(Message(b"v", headers=(("h", None),)), id="headers-tuple"),
    pytest.param(Message(b"v", headers=[]), id="headers-empty-list"),
    pytest.param(Message(b"v", timestamp=5), id="timestamp"),
    pytest.param(Message(b"v", timestamp=-1), id="bad-timestamp"),
    pytest.param((b"k",), id="1-tuple"),
    pytest.param((b"k", b"v", b"x"), id="3-tuple"),
    pytest.param((), id="0-tuple"),
    pytest.param([b"k", b"v"], id="list"),
    pytest.param(KeyValue(b"k", b"v"), id="namedtuple"),
    pytest.param(TupleSubclass((b"k", b"v")), id="tuple-subclass"),
    pytest.param(MessageSubclass(b"v"), id="message-subclass"),
    pytest.param(tuple.__new__(Message, (b"v", None)), id="message-of-2"),
    pytest.param(None, id="none"),
    pytest.param(b"kv", id="bytes"),
]


@needs_c
@pytest.mark.parametrize("odd", ODD_MESSAGES)
@pytest.mark.parametrize("container", [list, tuple])
def test_prepare_records_leaves_anything_else_to_python(
    odd: Any, container: Callable[[list[Any]], Sequence[Any]]
) -> None:
    plain = [(b"k", b"v"), Message(b"v")]
    for messages in ([odd], [*plain, odd], [odd, *plain]):
        assert prepare(container(messages)) is None
        # ... and produce_batch then gives what its loop gives, error or records.
        expected = batch_outcome(container(messages), c_path=False)
        assert batch_outcome(container(messages), c_path=True) == expected


@needs_c
def test_prepare_records_never_iterates_its_messages() -> None:
    taken: list[object] = []

    def generate() -> Iterator[tuple[bytes, bytes]]:
        taken.append("first")
        yield (b"k", b"v")

    messages = [(b"k", b"v")]
    others = (iter(messages), deque(messages), ListSubclass(messages), {(b"k", b"v")})
    for given_messages in (generate(), *others):
        assert prepare(given_messages) is None
    assert taken == []  # the generator still has its message: the Python loop gets it


@needs_c
def test_prepare_records_references() -> None:
    key, value = b"k" * 10, b"v" * 10
    now = 10**30  # an int of its own, not a cached small one
    messages = [(key, value), Message(value, key), (None, value)]
    objects = (key, value, now, Message, *messages)
    base = [sys.getrefcount(o) for o in objects]
    made, size = _speedups.prepare_records(messages, now, 36, Message) or ([], 0)
    assert made == [(now, key, value, ()), (now, key, value, ()), (now, None, value, ())]
    assert size == 3 * 36 + 5 * 10
    # The records hold the key twice, the value and the timestamp three times.
    expected = [base[0] + 2, base[1] + 3, base[2] + 3, *base[3:]]
    assert [sys.getrefcount(o) for o in objects] == expected
    del made
    assert [sys.getrefcount(o) for o in objects] == base
    # Giving up half-way releases what was made.
    for odd in ((key, bytearray(value)), [key, value], Message(value, timestamp=now)):
        for at in range(4):
            given_messages = [*messages[:at], odd, *messages[at:]]
            assert _speedups.prepare_records(given_messages, now, 36, Message) is None
    del odd, given_messages
    assert [sys.getrefcount(o) for o in objects] == base


@needs_c
def test_prepared_records_are_left_to_reference_counting() -> None:
    made, _ = prepare([(b"k", b"v"), Message(b"v"), (None, None)]) or ([], 0)
    assert len(made) == 3
    # Atoms and (): no record can be in a cycle, so the collector does not track them (see
    # _speedups.c); the list is an ordinary one.
    assert not any(gc.is_tracked(record) for record in made)
    assert gc.is_tracked(made)


class ClearsWhenCollected:
    """Garbage in a reference cycle whose finalizer empties a list, as a finalizer run by a
    garbage collection in the middle of prepare_records() could."""

    def __init__(self, victim: list[Any]) -> None:
        self.victim = victim
        self.cycle = self

    def __del__(self) -> None:
        self.victim.clear()


@needs_c
@pytest.mark.skipif(
    sys.version_info >= (3, 12),
    reason="from Python 3.12 a garbage collection waits for the interpreter's next check "
    "between bytecodes: no finalizer can run inside prepare_records()",
)
def test_prepare_records_notices_a_finalizer_changing_the_messages() -> None:
    # More messages than CPython keeps spare 4-tuples (2,000), so that prepare_records()
    # allocates new ones, and with a threshold of 1 each allocation starts a collection.
    messages: list[Any] = [(b"k", bytes([i % 256]) * 3) for i in range(5000)]
    enabled, threshold = gc.isenabled(), gc.get_threshold()
    gc.collect()
    gc.enable()
    gc.set_threshold(1)
    try:
        ClearsWhenCollected(messages)  # garbage at once
        prepared = prepare(messages)
    finally:
        gc.set_threshold(*threshold)
        if not enabled:
            gc.disable()
    assert messages == []  # the finalizer ran, in the call
    assert prepared is None


NO_MEMORY_SCRIPT = """
import sys, _testcapi
from trio_brod.producer import Message
from trio_brod.producer.worker import _EMPTY_RECORD_SIZE
from trio_brod.protocol._speedups import prepare_records

def attempt(start):
    # From the start-th allocation on, every one fails (nothing here allocates but the call).
    _testcapi.set_nomemory(start)
    try:
        return len(prepare_records(messages, now, _EMPTY_RECORD_SIZE, Message)[0])
    except MemoryError:
        return "MemoryError"
    finally:
        _testcapi.remove_mem_hooks()

now = int("1" * 30)
messages = [(bytes([i % 256]) * 5, b"v" * 5) for i in range(3000)]
objects = (now, *messages[:3], *(key for key, _ in messages[:3]))
before = [sys.getrefcount(o) for o in objects]
outcomes = {attempt(start) for start in range(0, 3100, 7)}
assert [sys.getrefcount(o) for o in objects] == before, "references leaked"
print(sorted(outcomes, key=str))
"""


@needs_c
def test_prepare_records_without_memory_raises_and_releases() -> None:
    if importlib.util.find_spec("_testcapi") is None:
        pytest.skip("this Python has no _testcapi")
    answer = subprocess.run(
        [sys.executable, "-c", NO_MEMORY_SCRIPT], capture_output=True, text=True, check=True
    )
    # Allocations failed at every stage of the call, and succeeded.
    assert answer.stdout.strip() == "[3000, 'MemoryError']"


@needs_c
def test_prepare_records_arguments() -> None:
    prepare_records: Any = _speedups.prepare_records  # called with wrong arguments, too
    assert prepare_records([], 0, 36, Message) == ([], 0)
    assert prepare_records((), 0, 36, Message) == ([], 0)
    with pytest.raises(TypeError, match="takes 4 arguments"):
        prepare_records([], 0, 36)
    for now in (1.5, True, None):
        with pytest.raises(TypeError, match="now must be an int"):
            prepare_records([], now, 36, Message)
    with pytest.raises(TypeError, match="overhead must be an int"):
        prepare_records([], 0, "36", Message)
    with pytest.raises(ValueError, match="overhead must not be negative"):
        prepare_records([], 0, -1, Message)
    with pytest.raises(OverflowError):
        prepare_records([], 0, 2**64, Message)
    for message_type in (tuple, list, Message(b"v"), 4):
        with pytest.raises(TypeError, match="message_type must be a subclass of tuple"):
            prepare_records([], 0, 36, message_type)
    # Which tuple class is Message is the caller's to say.
    assert prepare_records([Message(b"v")], 0, 36, Pair) is None


@needs_c
def test_prepare_records_leaves_a_huge_size_to_python() -> None:
    huge = sys.maxsize // 2
    assert _speedups.prepare_records([(None, b"ab")], 7, huge, Message) == (
        [(7, None, b"ab", ())],
        huge + 2,
    )
    assert _speedups.prepare_records([(None, None)] * 3, 7, huge, Message) is None


def test_the_producer_uses_the_c_prepare_records_with_the_c_codec() -> None:
    expected = _speedups.prepare_records if records.IMPLEMENTATION == "c" else None
    assert producer._c_prepare_records is expected


# -- murmur2 ------------------------------------------------------------------------------------


def murmur2_implementations() -> list[Any]:
    implementations = [pytest.param(partitioners._murmur2_u32_python, id="python")]
    if records.IMPLEMENTATION == "c":
        implementations.append(pytest.param(_speedups.murmur2_u32, id="c"))
    return implementations


@pytest.mark.parametrize("murmur2_u32", murmur2_implementations())
@pytest.mark.parametrize(("key", "java_hash", "_partitions"), JAVA_VECTORS)
def test_murmur2_matches_java(
    murmur2_u32: Callable[[bytes], int], key: bytes, java_hash: int, _partitions: object
) -> None:
    assert murmur2_u32(key) == java_hash & 0xFFFFFFFF


def test_partitioners_use_the_c_murmur2_with_the_c_codec() -> None:
    expected = "murmur2_u32" if records.IMPLEMENTATION == "c" else "_murmur2_u32_python"
    assert partitioners._murmur2_u32.__name__ == expected


@needs_c
@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_same_murmur2(data: bytes) -> None:
    assert _speedups.murmur2_u32(data) == partitioners._murmur2_u32_python(data)
    assert _speedups.murmur2_u32(bytearray(data)) == _speedups.murmur2_u32(memoryview(data))


@needs_c
def test_murmur2_needs_bytes() -> None:
    with pytest.raises(TypeError):
        _speedups.murmur2_u32("text")  # type: ignore[arg-type]


class _Slotted:
    __slots__ = ("other",)


@needs_c
def test_gc_untrack_and_track() -> None:
    obj = _Slotted()
    refs = sys.getrefcount(obj)
    assert gc.is_tracked(obj)
    _speedups.gc_untrack(obj)
    _speedups.gc_untrack(obj)  # twice is harmless
    assert not gc.is_tracked(obj)
    _speedups.gc_track(obj)
    _speedups.gc_track(obj)  # twice is harmless
    assert gc.is_tracked(obj)
    # Objects the collector never tracks stay as they are.
    for atom in (1, b"bytes", "str", None):
        _speedups.gc_track(atom)
        _speedups.gc_untrack(atom)
        assert not gc.is_tracked(atom)
    assert sys.getrefcount(obj) == refs
    # Tracked again, an object in a garbage cycle is collected.
    obj.other = _Slotted()
    obj.other.other = obj
    _speedups.gc_untrack(obj)
    _speedups.gc_track(obj)
    del obj
    gc.collect()
    assert not [o for o in gc.get_objects() if type(o) is _Slotted]
