"""Partitioners: murmur2 and the keyed partition against Kafka's Java client, stickiness."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.java_vectors import JAVA_VECTORS, VECTOR_COUNTS
from trio_brod._exceptions import ConfigError
from trio_brod.producer import partitioners
from trio_brod.producer.partitioners import (
    DEFAULT_SWITCH_BYTES,
    DefaultPartitioner,
    Partitioner,
    StickyPartitioner,
    checked_partition,
    hash_partitioner,
    kafka_partition,
    murmur2,
    random_partitioner,
    resolve_partitioner,
    to_positive,
)


def _label(key: bytes) -> str:
    return key[:12].hex() + (f"...[{len(key)}]" if len(key) > 12 else "") or "empty"


@pytest.mark.parametrize(
    ("key", "java_hash", "java_partitions"), JAVA_VECTORS, ids=[_label(k) for k, *_ in JAVA_VECTORS]
)
def test_murmur2_and_partitions_match_java(
    key: bytes, java_hash: int, java_partitions: tuple[int, ...]
) -> None:
    assert murmur2(key) == java_hash
    assert [kafka_partition(key, n) for n in VECTOR_COUNTS] == list(java_partitions)
    assert [to_positive(murmur2(key)) % n for n in VECTOR_COUNTS] == list(java_partitions)
    # Every keyed partitioner must land where the Java producer does.
    default = DefaultPartitioner()
    assert [default("t", n, key, b"v") for n in VECTOR_COUNTS] == list(java_partitions)
    assert [hash_partitioner("t", n, key, None) for n in VECTOR_COUNTS] == list(java_partitions)


def test_the_vectors_cover_the_edges() -> None:
    # Guards the data against a careless edit: these are the cases the table exists for.
    hashes = {h for _, h, _ in JAVA_VECTORS}
    assert {-(2**31), 2**31 - 1, 0, -1} <= hashes
    assert sum(h < 0 for h in hashes) >= 10
    lengths = {len(k) for k, _, _ in JAVA_VECTORS}
    assert {0, 1, 2, 3, 4, 5, 6, 7, 31, 32, 33} <= lengths
    assert max(lengths) > 1000
    assert len(JAVA_VECTORS) >= 50


def test_hash_partitioner_hashes_a_missing_key_as_empty() -> None:
    empty = next(parts for key, _, parts in JAVA_VECTORS if key == b"")
    assert [hash_partitioner("t", n, None, b"v") for n in VECTOR_COUNTS] == list(empty)


# ---------------------------------------------------------------------------------------------
# murmur2 against a plain transliteration of Utils.murmur2, on any bytes
# ---------------------------------------------------------------------------------------------


def _java_int(n: int) -> int:
    n &= 0xFFFFFFFF
    return n - 2**32 if n >= 2**31 else n


def _reference_murmur2(data: bytes) -> int:
    # Line by line as in org.apache.kafka.common.utils.Utils.murmur2, with Java's int
    # overflow made explicit and >>> as a shift of the unsigned bits.
    length = len(data)
    m = 0x5BD1E995
    h = _java_int(0x9747B28C ^ length)
    for i in range(length // 4):
        i4 = i * 4
        k = data[i4] + (data[i4 + 1] << 8) + (data[i4 + 2] << 16) + (data[i4 + 3] << 24)
        k = _java_int(k * m)
        k ^= (k & 0xFFFFFFFF) >> 24
        k = _java_int(k * m)
        h = _java_int(h * m)
        h ^= k
    tail = length & ~3
    rest = length % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = _java_int(h * m)
    h ^= (h & 0xFFFFFFFF) >> 13
    h = _java_int(h * m)
    h ^= (h & 0xFFFFFFFF) >> 15
    return _java_int(h)


def test_reference_implementation_agrees_with_java() -> None:
    # So that the property below compares with something known to be right.
    for key, java_hash, _ in JAVA_VECTORS:
        assert _reference_murmur2(key) == java_hash


@settings(max_examples=500)
@given(st.binary(max_size=40) | st.binary(min_size=28, max_size=400))
def test_murmur2_matches_the_reference(data: bytes) -> None:
    assert murmur2(data) == _reference_murmur2(data)
    assert -(2**31) <= murmur2(data) < 2**31


def test_murmur2_at_every_length_up_to_300() -> None:
    data = bytes((i * 89 + 5) & 0xFF for i in range(300))
    for n in range(301):
        assert murmur2(data[:n]) == _reference_murmur2(data[:n]), n


def test_murmur2_of_long_keys() -> None:
    # Past the lengths whose lane masks are cached (1 KiB), and an odd word count.
    for length in (1024, 1025, 1028, 4099, 65536 + 4):
        data = bytes((i * 151 + 3) & 0xFF for i in range(length))
        assert murmur2(data) == _reference_murmur2(data), length


def test_murmur2_on_a_big_endian_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partitioners, "_LITTLE_ENDIAN", False)
    for length in (32, 33, 101, 1027):
        data = bytes((i * 7 + 1) & 0xFF for i in range(length))
        assert murmur2(data) == _reference_murmur2(data), length


def test_murmur2_accepts_other_buffers() -> None:
    data = bytes(range(70))
    assert murmur2(bytearray(data)) == murmur2(data)  # type: ignore[arg-type]
    assert murmur2(memoryview(data)) == murmur2(data)  # type: ignore[arg-type]


def test_to_positive_clears_the_sign_bit_only() -> None:
    assert to_positive(0) == 0
    assert to_positive(5) == 5
    assert to_positive(2**31 - 1) == 2**31 - 1
    assert to_positive(-1) == 2**31 - 1
    assert to_positive(-(2**31)) == 0
    assert to_positive(-(2**31) + 7) == 7


# ---------------------------------------------------------------------------------------------
# Every partitioner: results in range, keyed results deterministic
# ---------------------------------------------------------------------------------------------

PARTITIONER_FACTORIES: dict[str, Callable[[], Partitioner]] = {
    "default": DefaultPartitioner,
    "sticky": StickyPartitioner,
    "small-sticky": lambda: StickyPartitioner(switch_bytes=10),
    "hash": lambda: hash_partitioner,
    "random": lambda: random_partitioner,
}

messages = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.integers(min_value=1, max_value=2**31 - 1) | st.integers(min_value=1, max_value=9),
        st.none() | st.binary(max_size=50),
        st.none() | st.binary(max_size=30),
    ),
    max_size=60,
)


@pytest.mark.parametrize("name", PARTITIONER_FACTORIES)
@given(batch=messages)
def test_results_are_partitions(
    name: str, batch: list[tuple[str, int, bytes | None, bytes | None]]
) -> None:
    partitioner = PARTITIONER_FACTORIES[name]()
    for topic, count, key, value in batch:
        result = partitioner(topic, count, key, value)
        assert type(result) is int
        assert 0 <= result < count


@given(
    key=st.binary(max_size=100),
    count=st.integers(min_value=1, max_value=2**31 - 1),
    noise=messages,
)
def test_keyed_partition_is_deterministic_and_ignores_stickiness(
    key: bytes, count: int, noise: list[tuple[str, int, bytes | None, bytes | None]]
) -> None:
    expected = to_positive(_reference_murmur2(key)) % count
    partitioner = DefaultPartitioner(switch_bytes=1)
    assert partitioner("a", count, key, b"value") == expected
    for message in noise:
        partitioner(*message)
    assert partitioner("a", count, key, None) == expected
    assert DefaultPartitioner()("b", count, key, b"other") == expected
    assert hash_partitioner("a", count, key, None) == expected


@pytest.mark.parametrize("name", PARTITIONER_FACTORIES)
@pytest.mark.parametrize("count", [0, -1])
def test_partitioners_refuse_a_count_below_one(name: str, count: int) -> None:
    partitioner = PARTITIONER_FACTORIES[name]()
    with pytest.raises(ConfigError, match=rf"partition_count={count}"):
        partitioner("t", count, b"k", b"v")
    with pytest.raises(ConfigError, match=rf"partition_count={count}"):
        partitioner("t", count, None, b"v")


def test_random_partitioner_reaches_every_partition_evenly() -> None:
    counts = [0] * 8
    for _ in range(8000):
        counts[random_partitioner("t", 8, b"same key", None)] += 1
    # Each expects 1000; 700 is more than 9 standard deviations away.
    assert min(counts) > 700, counts


# ---------------------------------------------------------------------------------------------
# Stickiness
# ---------------------------------------------------------------------------------------------


def _runs(partitions: list[int], sizes: list[int]) -> list[tuple[int, list[int]]]:
    """Split a sequence of choices into runs on one partition: (partition, sizes)."""
    runs: list[tuple[int, list[int]]] = []
    for partition, size in zip(partitions, sizes, strict=True):
        if runs and runs[-1][0] == partition:
            runs[-1][1].append(size)
        else:
            runs.append((partition, [size]))
    return runs


@given(
    switch_bytes=st.integers(min_value=1, max_value=200),
    count=st.integers(min_value=2, max_value=6),
    values=st.lists(st.none() | st.binary(max_size=80), max_size=200),
    seed=st.integers(0, 2**32),
)
def test_sticky_switches_after_switch_bytes(
    switch_bytes: int, count: int, values: list[bytes | None], seed: int
) -> None:
    partitioner = StickyPartitioner(switch_bytes, rng=random.Random(seed))
    chosen = [partitioner("t", count, b"key ignored", value) for value in values]
    sizes = [len(value) if value else 1 for value in values]
    # Consecutive runs are on different partitions (count > 1), so runs are exactly the
    # stretches between switches.
    runs = _runs(chosen, sizes)
    for _partition, run_sizes in runs[:-1]:
        # A partition takes messages until they add up to switch_bytes, and no more.
        assert sum(run_sizes) >= switch_bytes
        assert sum(run_sizes[:-1]) < switch_bytes
    if runs:
        assert sum(runs[-1][1][:-1]) < switch_bytes


def test_sticky_never_repeats_a_partition_and_reaches_them_all() -> None:
    partitioner = StickyPartitioner(switch_bytes=1, rng=random.Random(7))
    chosen = [partitioner("t", 5, None, b"x") for _ in range(2000)]
    assert all(a != b for a, b in itertools.pairwise(chosen))
    # Every switch picks uniformly among the 4 others: each partition ~400 times.
    assert min(chosen.count(p) for p in range(5)) > 300


def test_sticky_with_one_partition_stays_on_it() -> None:
    partitioner = StickyPartitioner(switch_bytes=3)
    assert [partitioner("t", 1, None, b"abc") for _ in range(10)] == [0] * 10


def test_default_switch_bytes_is_the_java_batch_size() -> None:
    partitioner = DefaultPartitioner(rng=random.Random(1))
    assert partitioner.switch_bytes == DEFAULT_SWITCH_BYTES == 16384
    first = [partitioner("t", 10, None, bytes(1024)) for _ in range(16)]
    assert len(set(first)) == 1
    assert partitioner("t", 10, None, bytes(1024)) != first[0]


@given(
    values=st.lists(st.none() | st.binary(max_size=40), max_size=100),
    keyed=st.lists(st.binary(max_size=10), max_size=100),
    seed=st.integers(0, 2**32),
)
def test_keyed_messages_do_not_move_the_sticky_partition(
    values: list[bytes | None], keyed: list[bytes], seed: int
) -> None:
    plain = DefaultPartitioner(30, rng=random.Random(seed))
    expected = [plain("t", 7, None, value) for value in values]
    mixed = DefaultPartitioner(30, rng=random.Random(seed))
    got = []
    for i, value in enumerate(values):
        for key in keyed[i :: len(values)] if values else []:
            mixed("t", 7, key, b"x" * 1000)
        got.append(mixed("t", 7, None, value))
    assert got == expected


def test_sticky_state_is_per_topic() -> None:
    partitioner = DefaultPartitioner(switch_bytes=100, rng=random.Random(3))
    assert partitioner.current_partition("a") is None
    on_a = partitioner("a", 50, None, bytes(50))
    assert partitioner.current_partition("a") == on_a
    # Topic b fills and switches many times; topic a has room for 50 more bytes.
    for _ in range(40):
        partitioner("b", 50, None, bytes(100))
    assert partitioner("a", 50, None, bytes(49)) == on_a
    assert partitioner("a", 50, None, bytes(1)) == on_a
    assert partitioner("a", 50, None, bytes(1)) != on_a


def test_sticky_moves_when_the_partition_count_drops_below_it() -> None:
    partitioner = StickyPartitioner(rng=random.Random(0))
    for _ in range(100):
        if partitioner("t", 100, None, b"v") >= 3:
            break
    else:
        pytest.fail("never landed above partition 2")
    assert partitioner("t", 3, None, b"v") in range(3)


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "16384", None])
def test_switch_bytes_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(ConfigError, match=rf"switch_bytes={bad!r}"):
        StickyPartitioner(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=rf"switch_bytes={bad!r}"):
        DefaultPartitioner(switch_bytes=bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# resolve_partitioner and checked_partition
# ---------------------------------------------------------------------------------------------


def test_resolve_names() -> None:
    default = resolve_partitioner(None)
    assert type(default) is DefaultPartitioner
    assert type(resolve_partitioner("default")) is DefaultPartitioner
    # Stateful partitioners are new each time, so that producers do not share stickiness.
    assert resolve_partitioner(None) is not default
    assert type(resolve_partitioner("sticky")) is StickyPartitioner
    assert resolve_partitioner("hash") is hash_partitioner
    assert resolve_partitioner("murmur2") is hash_partitioner
    assert resolve_partitioner("random") is random_partitioner


def test_resolve_returns_a_callable_as_it_is() -> None:
    def mine(topic: str, count: int, key: bytes | None, value: bytes | None) -> int:
        return 0

    assert resolve_partitioner(mine) is mine
    instance = StickyPartitioner(switch_bytes=5)
    assert resolve_partitioner(instance) is instance


@pytest.mark.parametrize("bad", ["Default", "", "phash2", 42, b"hash", ["hash"]])
def test_resolve_refuses_anything_else(bad: object) -> None:
    with pytest.raises(ConfigError, match=rf"partitioner={bad!r}:".replace("[", r"\[")):
        resolve_partitioner(bad)  # type: ignore[arg-type]


def test_resolve_refuses_a_class_with_a_hint() -> None:
    with pytest.raises(
        ConfigError, match=r"partitioner=DefaultPartitioner: .* DefaultPartitioner\(\)"
    ):
        resolve_partitioner(DefaultPartitioner)  # type: ignore[arg-type]


def test_checked_partition_passes_a_good_result_through() -> None:
    assert checked_partition(hash_partitioner, "t", 8, b"21", None) == 4  # Java: 4
    assert checked_partition(lambda t, n, k, v: n - 1, "t", 8, None, None) == 7


class _Index:
    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


def test_checked_partition_accepts_other_integer_types() -> None:
    def numpy_like(topic: str, count: int, key: bytes | None, value: bytes | None) -> _Index:
        return _Index(3)

    result = checked_partition(numpy_like, "t", 8, None, None)  # type: ignore[arg-type]
    assert result == 3
    assert type(result) is int


def _out_of_range(topic: str, count: int, key: bytes | None, value: bytes | None) -> int:
    return count


@pytest.mark.parametrize(
    ("partitioner", "shown", "result"),
    [
        (_out_of_range, "_out_of_range", "8"),
        (lambda t, n, k, v: -1, "<lambda>", "-1"),
        (lambda t, n, k, v: 1.0, "<lambda>", "1.0"),
        (lambda t, n, k, v: True, "<lambda>", "True"),
        (lambda t, n, k, v: "3", "<lambda>", "'3'"),
        (lambda t, n, k, v: None, "<lambda>", "None"),
    ],
)
def test_checked_partition_names_the_partitioner_and_the_bad_result(
    partitioner: Partitioner, shown: str, result: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        checked_partition(partitioner, "orders", 8, b"k", b"v")
    message = str(caught.value)
    assert shown in message
    assert f"returned {result} for topic 'orders'" in message
    assert "range(0, 8)" in message


def test_checked_partition_refuses_a_topic_without_partitions() -> None:
    with pytest.raises(ConfigError, match="partition_count=0"):
        checked_partition(hash_partitioner, "orders", 0, b"k", None)
