"""The assignors: Java's answers (vectors), and the properties each one promises."""

from __future__ import annotations

import struct
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.group_vectors import ASSIGN_VECTORS
from trio_brod._exceptions import ConfigError
from trio_brod.groups._protocol import MemberAssignment, MemberSubscription, TopicPartition
from trio_brod.groups._sticky import java_hash_order, java_string_hash
from trio_brod.groups.assignors import (
    Assignor,
    CooperativeStickyAssignor,
    RangeAssignor,
    RoundRobinAssignor,
    resolve_assignor,
)

NAMES = ("range", "roundrobin", "cooperative-sticky")


def partitions_of(result: dict[str, MemberAssignment]) -> dict[str, tuple[TopicPartition, ...]]:
    return {member: a.partitions for member, a in result.items()}


@pytest.mark.parametrize(("name", "topics", "members", "java"), ASSIGN_VECTORS)
def test_java_vectors(
    name: str,
    topics: dict[str, int],
    members: dict[str, MemberSubscription],
    java: dict[str, tuple[TopicPartition, ...]],
) -> None:
    assert partitions_of(resolve_assignor(name).assign(topics, members)) == java


def test_vectors_cover_both_sticky_paths_and_moves() -> None:
    sticky = [(t, m, j) for n, t, m, j in ASSIGN_VECTORS if n == "cooperative-sticky"]
    equal = [m for _, m, _ in sticky if len({frozenset(s.topics) for s in m.values()}) == 1]
    assert 5 < len(equal) < len(sticky) - 5
    # Some partitions are withheld: subscribed, owned by someone, and given to nobody.
    withheld = 0
    for topics, members, java in sticky:
        given_out = {tp for parts in java.values() for tp in parts}
        subscribed = {t for s in members.values() for t in s.topics}
        withheld += sum(
            1
            for t, n in topics.items()
            if t in subscribed
            for p in range(n)
            if (t, p) not in given_out
        )
    assert withheld > 0


# ----------------------------------------------------------------------------- properties


@st.composite
def groups(
    draw: st.DrawFn, *, same_topics: bool | None = None, max_members: int = 8
) -> tuple[dict[str, int], dict[str, MemberSubscription]]:
    """A layout and members, each owning a disjoint share of a previous assignment."""
    topic_count = draw(st.integers(1, 4))
    topics = {f"t{i}": draw(st.integers(0, 12)) for i in range(topic_count)}
    member_ids = draw(
        st.lists(
            st.text("abcxyz-0123", min_size=1, max_size=8),
            min_size=1,
            max_size=max_members,
            unique=True,
        )
    )
    same = draw(st.booleans()) if same_topics is None else same_topics
    common = draw(st.lists(st.sampled_from(sorted(topics)), min_size=1, unique=True))
    everything = [(t, p) for t, n in topics.items() for p in range(n)]
    owner = {tp: draw(st.sampled_from([None, *member_ids])) for tp in everything}
    generation = draw(st.integers(1, 9))
    members = {}
    for member in member_ids:
        mine = common
        if not same:
            mine = draw(st.lists(st.sampled_from(sorted(topics)), min_size=1, unique=True))
        owned = tuple(tp for tp, m in owner.items() if m == member)
        members[member] = MemberSubscription(
            topics=tuple(mine),
            owned_partitions=owned,
            generation_id=generation if owned else -1,
            group_instance_id=draw(st.none() | st.text("ijk", min_size=1, max_size=3)),
        )
    return topics, members


def subscribed_partitions(
    topics: dict[str, int], members: dict[str, MemberSubscription]
) -> set[TopicPartition]:
    wanted = {t for s in members.values() for t in s.topics}
    return {(t, p) for t, n in topics.items() if t in wanted for p in range(n)}


def check_valid(
    topics: dict[str, int],
    members: dict[str, MemberSubscription],
    result: dict[str, MemberAssignment],
) -> Counter[TopicPartition]:
    """Every member has an entry; nothing is given twice, nor to a member not subscribed to
    its topic, nor exists outside the layout."""
    assert set(result) == set(members)
    counts = Counter(tp for a in result.values() for tp in a.partitions)
    assert all(c == 1 for c in counts.values()), counts
    for member, a in result.items():
        for topic, p in a.partitions:
            assert topic in members[member].topics
            assert 0 <= p < topics[topic]
    return counts


@given(groups(), st.sampled_from(["range", "roundrobin"]))
def test_eager_assignors_give_every_subscribed_partition_once(
    group: tuple[dict[str, int], dict[str, MemberSubscription]], name: str
) -> None:
    topics, members = group
    result = resolve_assignor(name).assign(topics, members)
    counts = check_valid(topics, members, result)
    assert set(counts) == subscribed_partitions(topics, members)
    assert result == resolve_assignor(name).assign(topics, members)  # deterministic


@given(groups(same_topics=True))
def test_roundrobin_balances_equal_subscriptions(
    group: tuple[dict[str, int], dict[str, MemberSubscription]],
) -> None:
    topics, members = group
    sizes = [len(a.partitions) for a in RoundRobinAssignor().assign(topics, members).values()]
    assert max(sizes) - min(sizes) <= 1


@given(groups())
def test_range_balances_each_topic_over_its_members(
    group: tuple[dict[str, int], dict[str, MemberSubscription]],
) -> None:
    topics, members = group
    result = RangeAssignor().assign(topics, members)
    for topic in topics:
        subscribers = [m for m, s in members.items() if topic in s.topics]
        sizes = [sum(1 for t, _ in result[m].partitions if t == topic) for m in subscribers]
        if sizes:
            assert max(sizes) - min(sizes) <= 1
            ranges = [sorted(p for t, p in result[m].partitions if t == topic) for m in subscribers]
            assert all(r == list(range(r[0], r[0] + len(r))) for r in ranges if r)


def test_static_members_come_first_by_instance_id() -> None:
    members = {
        "a": MemberSubscription(topics=("t",)),
        "z": MemberSubscription(topics=("t",), group_instance_id="2"),
        "y": MemberSubscription(topics=("t",), group_instance_id="1"),
    }
    result = RangeAssignor().assign({"t": 3}, members)
    assert [result[m].partitions for m in ("y", "z", "a")] == [
        (("t", 0),),
        (("t", 1),),
        (("t", 2),),
    ]


@settings(max_examples=200)
@given(groups())
def test_cooperative_sticky_never_gives_a_partition_another_member_owns(
    group: tuple[dict[str, int], dict[str, MemberSubscription]],
) -> None:
    topics, members = group
    result = CooperativeStickyAssignor().assign(topics, members)
    counts = check_valid(topics, members, result)
    owners = {tp: m for m, s in members.items() for tp in s.owned_partitions}
    for member, a in result.items():
        for tp in a.partitions:
            # The two-phase rule: a moving partition reaches its new owner next generation.
            assert owners.get(tp, member) == member
    # What is not given out is exactly what is moving: owned by someone who lost it.
    for tp in subscribed_partitions(topics, members) - set(counts):
        assert tp in owners
        assert tp not in result[owners[tp]].partitions
    assert result == CooperativeStickyAssignor().assign(topics, members)  # deterministic


@settings(max_examples=200)
@given(groups(same_topics=True))
def test_cooperative_sticky_converges_to_balance_in_two_generations(
    group: tuple[dict[str, int], dict[str, MemberSubscription]],
) -> None:
    topics, members = group
    assignor = CooperativeStickyAssignor()
    first = assignor.assign(topics, members)
    # The members revoke what they lost and rejoin with what they kept.
    members = {
        m: MemberSubscription(
            topics=s.topics, owned_partitions=first[m].partitions, generation_id=10
        )
        for m, s in members.items()
    }
    second = assignor.assign(topics, members)
    counts = check_valid(topics, members, second)
    assert set(counts) == subscribed_partitions(topics, members)
    sizes = [len(a.partitions) for a in second.values()]
    assert max(sizes) - min(sizes) <= 1
    # Nothing that stayed put in the first round moves in the second.
    for m, a in first.items():
        assert set(a.partitions) <= set(second[m].partitions)


@given(groups(same_topics=True))
def test_cooperative_sticky_keeps_a_balanced_assignment(
    group: tuple[dict[str, int], dict[str, MemberSubscription]],
) -> None:
    topics, members = group
    balanced = RoundRobinAssignor().assign(topics, members)
    members = {
        m: MemberSubscription(
            topics=s.topics, owned_partitions=balanced[m].partitions, generation_id=3
        )
        for m, s in members.items()
    }
    assert CooperativeStickyAssignor().assign(topics, members) == balanced


def test_cooperative_sticky_moves_partitions_to_a_new_member_over_two_generations() -> None:
    topics = {"t": 4}
    old = {
        "a": MemberSubscription(
            topics=("t",), owned_partitions=(("t", 0), ("t", 1)), generation_id=5
        ),
        "b": MemberSubscription(
            topics=("t",), owned_partitions=(("t", 2), ("t", 3)), generation_id=5
        ),
        "c": MemberSubscription(topics=("t",)),
    }
    first = partitions_of(CooperativeStickyAssignor().assign(topics, old))
    # One of a and b gives up a partition, which c does not get yet: it is moving.
    assert sorted(len(first[m]) for m in "ab") == [1, 2]
    assert first["c"] == ()
    (moving,) = {("t", p) for p in range(4)} - set(first["a"]) - set(first["b"])
    assert set(first["a"]) <= set(old["a"].owned_partitions)
    assert set(first["b"]) <= set(old["b"].owned_partitions)
    again = {
        m: MemberSubscription(topics=("t",), owned_partitions=first[m], generation_id=6)
        for m in "abc"
    }
    second = partitions_of(CooperativeStickyAssignor().assign(topics, again))
    assert second == {"a": first["a"], "b": first["b"], "c": (moving,)}


def test_old_members_generation_is_read_from_the_user_data() -> None:
    # Two members claim t-0: the one of the newer generation (in its user data, as Java
    # clients before 3.4 send it) keeps it.
    topics = {"t": 2}
    members = {
        "a": MemberSubscription(topics=("t",), owned_partitions=(("t", 0),), generation_id=3),
        "b": MemberSubscription(
            topics=("t",), owned_partitions=(("t", 0),), user_data=struct.pack(">i", 4)
        ),
    }
    result = partitions_of(CooperativeStickyAssignor().assign(topics, members))
    assert result == {"a": (("t", 1),), "b": (("t", 0),)}


# ----------------------------------------------------------------------------- the rest


def test_user_data() -> None:
    assert RangeAssignor().subscription_user_data(["t"], []) is None
    assert RoundRobinAssignor().subscription_user_data(["t"], []) is None
    sticky = CooperativeStickyAssignor()
    assert sticky.subscription_user_data(["t"], []) == b"\xff\xff\xff\xff"
    sticky.on_assignment(MemberAssignment(partitions=()), 7)
    assert sticky.subscription_user_data(["t"], []) == b"\x00\x00\x00\x07"


def test_names_and_protocols() -> None:
    for name in NAMES:
        assignor = resolve_assignor(name)
        assert assignor.name == name
        assert isinstance(assignor, Assignor)
    assert resolve_assignor("range").rebalance_protocols == ("eager",)
    assert resolve_assignor("cooperative-sticky").rebalance_protocols == ("cooperative", "eager")
    assert resolve_assignor("range") is not resolve_assignor("range")  # state is not shared


def test_resolve_passes_assignor_objects_through() -> None:
    mine = RoundRobinAssignor()
    mine.name = "my-roundrobin"
    assert resolve_assignor(mine) is mine


@pytest.mark.parametrize("bad", ["sticky", "Range", "", 3, None, object()])
def test_resolve_refuses_what_is_not_an_assignor(bad: object) -> None:
    with pytest.raises(ConfigError, match="partition_assignment_strategy") as info:
        resolve_assignor(bad)  # type: ignore[arg-type]
    assert repr(bad) in str(info.value)


def test_no_members_no_assignment() -> None:
    for name in NAMES:
        assert resolve_assignor(name).assign({"t": 3}, {}) == {}


def test_java_hashes() -> None:
    # Values of String.hashCode() in Java.
    assert java_string_hash("") == 0
    assert java_string_hash("a") == 97
    assert java_string_hash("hello") == 99162322
    # With 13 keys a HashMap has 32 buckets: "a".."m" hash to 97..109, in bucket order.
    keys = [chr(c) for c in range(ord("m"), ord("a") - 1, -1)]
    assert java_hash_order(keys) == sorted(keys, key=lambda k: ord(k) % 32)
