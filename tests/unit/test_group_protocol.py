"""The consumer protocol's bytes: Java's vectors, round trips, bad input."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.group_vectors import PROTOCOL_VECTORS
from trio_brod.groups._protocol import (
    MemberAssignment,
    MemberSubscription,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
    java_string_key,
)
from trio_brod.protocol import DecodeError, EncodeError

names = st.text(min_size=0, max_size=12)
partition_numbers = st.integers(min_value=0, max_value=2**31 - 1)
topic_partitions = st.lists(st.tuples(names, partition_numbers), max_size=10, unique=True)
maybe_bytes = st.none() | st.binary(max_size=20)
versions = st.integers(min_value=0, max_value=3)

subscriptions = st.builds(
    MemberSubscription,
    topics=st.lists(names, max_size=6).map(tuple),
    user_data=maybe_bytes,
    owned_partitions=topic_partitions.map(tuple),
    generation_id=st.integers(min_value=-1, max_value=2**31 - 1),
    rack_id=st.none() | names,
)
assignments = st.builds(
    MemberAssignment, partitions=topic_partitions.map(tuple), user_data=maybe_bytes
)


def _tp_key(tp: tuple[str, int]) -> tuple[bytes, int]:
    return java_string_key(tp[0]), tp[1]


def expected_subscription(s: MemberSubscription, version: int) -> MemberSubscription:
    """What reading back ``s`` written in ``version`` gives: sorted, and without what the
    version cannot carry."""
    return MemberSubscription(
        topics=tuple(sorted(s.topics, key=java_string_key)),
        user_data=s.user_data,
        owned_partitions=tuple(sorted(s.owned_partitions, key=_tp_key)) if version >= 1 else (),
        generation_id=s.generation_id if version >= 2 else -1,
        rack_id=(s.rack_id or None) if version >= 3 else None,
    )


def expected_assignment(a: MemberAssignment) -> MemberAssignment:
    """Reading back ``a``: its partitions grouped per topic, topics in first-seen order."""
    topics = list(dict.fromkeys(topic for topic, _ in a.partitions))
    grouped = tuple(tp for topic in topics for tp in a.partitions if tp[0] == topic)
    return MemberAssignment(partitions=grouped, user_data=a.user_data)


@pytest.mark.parametrize(("value", "version", "java"), PROTOCOL_VECTORS)
def test_java_vectors(
    value: MemberSubscription | MemberAssignment, version: int, java: str
) -> None:
    assert not java.startswith("ERR"), java  # Java wrote every one of them
    if isinstance(value, MemberSubscription):
        data = encode_subscription(value, version)
        assert decode_subscription(data) == expected_subscription(value, version)
    else:
        data = encode_assignment(value, version)
        assert decode_assignment(data) == expected_assignment(value)
    assert data.hex() == java


def test_vectors_cover_every_version_and_field() -> None:
    subs = [(v, n) for v, n, _ in PROTOCOL_VECTORS if isinstance(v, MemberSubscription)]
    assert {n for _, n in subs} == {0, 1, 2, 3}
    assert any(v.owned_partitions and v.generation_id >= 0 and v.rack_id for v, _ in subs)
    assert any(v.user_data is None for v, _ in subs)
    assert any(isinstance(v, MemberAssignment) and v.partitions for v, _, _ in PROTOCOL_VECTORS)


@given(subscriptions, versions)
def test_subscription_round_trip(s: MemberSubscription, version: int) -> None:
    data = encode_subscription(s, version)
    assert struct.unpack_from(">h", data)[0] == version
    assert decode_subscription(data) == expected_subscription(s, version)


@given(assignments, versions)
def test_assignment_round_trip(a: MemberAssignment, version: int) -> None:
    data = encode_assignment(a, version)
    assert struct.unpack_from(">h", data)[0] == version
    assert decode_assignment(data) == expected_assignment(a)


@given(subscriptions, versions)
def test_truncated_subscription_is_refused(s: MemberSubscription, version: int) -> None:
    data = encode_subscription(s, version)
    for end in range(len(data)):
        with pytest.raises(DecodeError):
            decode_subscription(data[:end])


@given(assignments, versions)
def test_truncated_assignment_is_refused(a: MemberAssignment, version: int) -> None:
    data = encode_assignment(a, version)
    for end in range(1, len(data)):
        with pytest.raises(DecodeError):
            decode_assignment(data[:end])


@given(st.binary(max_size=64))
def test_fuzzed_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    for decode in (decode_subscription, decode_assignment):
        with contextlib.suppress(DecodeError):  # anything else fails the test
            decode(data)


@given(subscriptions, st.integers(min_value=4, max_value=2**15 - 1), st.binary(max_size=16))
def test_newer_versions_read_as_v3_ignoring_what_follows(
    s: MemberSubscription, version: int, more: bytes
) -> None:
    body = encode_subscription(s, 3)[2:]
    data = struct.pack(">h", version) + body + more
    assert decode_subscription(data) == expected_subscription(s, 3)


def test_negative_version_is_refused() -> None:
    body = encode_subscription(MemberSubscription(topics=("t",)), 0)[2:]
    with pytest.raises(DecodeError, match="version -1"):
        decode_subscription(b"\xff\xff" + body)
    with pytest.raises(DecodeError):
        decode_assignment(b"\xff\xff" + encode_assignment(MemberAssignment(()), 0)[2:])


def test_empty_assignment_bytes_are_an_empty_assignment() -> None:
    assert decode_assignment(b"") == MemberAssignment(partitions=())


def test_empty_rack_reads_as_none_and_negative_generation_as_minus_one() -> None:
    s = MemberSubscription(topics=("t",), rack_id="", generation_id=-7)
    decoded = decode_subscription(encode_subscription(s))
    assert decoded.rack_id is None
    assert decoded.generation_id == -1


@pytest.mark.parametrize("version", [-1, 4, True])
def test_unknown_version_is_not_written(version: int) -> None:
    with pytest.raises(EncodeError):
        encode_subscription(MemberSubscription(topics=()), version)
    with pytest.raises(EncodeError):
        encode_assignment(MemberAssignment(partitions=()), version)


def test_java_string_order_is_utf16() -> None:
    # U+FFFD sorts after a surrogate pair's first unit in Java, before U+1F600 in Python.
    assert sorted(["\U0001f600", "\ufffd"], key=java_string_key) == ["\U0001f600", "\ufffd"]
    assert sorted(["b", "a", "B"], key=java_string_key) == ["B", "a", "b"]
