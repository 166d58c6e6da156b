"""The fake Kafka's KIP-848 consumer groups (testing/fake/_consumer_groups.py) under
hypothesis: no partition is ever owned by two members (revoke before assign), and members
that heartbeat converge to the uniform assignor's balanced target.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_brod.protocol.errors import (
    FencedMemberEpochError,
    InvalidRequestError,
    StaleMemberEpochError,
    UnknownMemberIdError,
    UnreleasedInstanceIdError,
)
from trio_brod.testing.fake._consumer_groups import ConsumerGroups, ConsumerMember, uniform

G = "g"
TOPICS = {"a": 3, "b": 2}


class Client:
    """A well-behaved member: owns what it was last told, gives up at once."""

    def __init__(self, name: str, topics: list[str], instance: str | None = None) -> None:
        self.member_id, self.topics, self.instance = name, topics, instance
        self.epoch = 0
        self.owned: frozenset[tuple[str, int]] = frozenset()
        self.joined = False

    def beat(self, groups: ConsumerGroups, now: float, partitions: dict[str, int]) -> int:
        result = groups.heartbeat(
            now, G, self.member_id, self.epoch, self.instance, 30.0,
            self.topics if not self.joined else None, None, self.owned, partitions,
        )  # fmt: skip
        if result.error:
            self.epoch, self.owned, self.joined = 0, frozenset(), False
            return result.error
        self.joined = True
        self.epoch = result.member_epoch
        if result.assignment is not None:
            self.owned = result.assignment
        return 0

    def leave(self, groups: ConsumerGroups, now: float, partitions: dict[str, int]) -> None:
        groups.heartbeat(now, G, self.member_id, -1, None, 30.0, None, None, None, partitions)
        self.epoch, self.owned, self.joined = 0, frozenset(), False


def no_double_owners(clients: list[Client]) -> None:
    for i, c in enumerate(clients):
        for d in clients[i + 1 :]:
            assert not c.owned & d.owned, (c.member_id, d.member_id)


@settings(max_examples=300, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["beat", "leave", "grow"]), st.integers(0, 2)), max_size=60
    ),
    subscriptions=st.lists(st.sampled_from([["a"], ["b"], ["a", "b"]]), min_size=3, max_size=3),
)
def test_revoke_before_assign_and_convergence(
    ops: list[tuple[str, int]], subscriptions: list[list[str]]
) -> None:
    groups = ConsumerGroups()
    partitions = dict(TOPICS)
    clients = [Client(f"m{i}", subscriptions[i]) for i in range(3)]
    now = 0.0
    for op, i in ops:
        now += 1
        if op == "beat":
            clients[i].beat(groups, now, partitions)
        elif op == "leave" and clients[i].joined:
            clients[i].leave(groups, now, partitions)
        elif op == "grow":
            partitions["a"] += 1
        no_double_owners(clients)
    # Everyone joins and heartbeats for a while: the group settles on its target.
    for _ in range(12):
        now += 1
        for c in clients:
            c.beat(groups, now, partitions)
        no_double_owners(clients)
    group = groups.groups[G]
    assert group.state == "Stable"
    subscribed = {t for c in clients for t in c.topics}
    wanted = {(t, p) for t, n in partitions.items() if t in subscribed for p in range(n)}
    owned = [c.owned for c in clients]
    assert set().union(*owned) == wanted
    for c in clients:
        assert c.epoch == group.epoch
        assert all(t in c.topics for t, _ in c.owned)


@given(
    members=st.integers(1, 5),
    counts=st.dictionaries(st.sampled_from("xyz"), st.integers(1, 8), min_size=1),
)
def test_uniform_spreads_evenly_and_is_sticky(members: int, counts: dict[str, int]) -> None:
    subscribed = {
        f"m{i}": ConsumerMember(f"m{i}", None, 30.0, topics=tuple(counts)) for i in range(members)
    }
    first = uniform(subscribed, counts, {})
    sizes = [len(ps) for ps in first.values()]
    assert max(sizes) - min(sizes) <= 1
    assert sum(sizes) == sum(counts.values())
    assert uniform(subscribed, counts, first) == first  # nothing moves without a reason


def test_error_codes() -> None:
    groups = ConsumerGroups()
    p = dict(TOPICS)
    a = Client("ma", ["a"], instance="ia")
    assert a.beat(groups, 0, p) == 0
    assert groups.heartbeat(0, G, "", 0, None, 30.0, ["a"], None, None, p).error == (
        InvalidRequestError.code  # v1: the client makes the member id
    )
    assert groups.heartbeat(0, G, "ma", a.epoch + 1, None, 30.0, None, None, None, p).error == (
        FencedMemberEpochError.code
    )
    assert groups.heartbeat(0, G, "zz", 5, None, 30.0, None, None, None, p).error == (
        UnknownMemberIdError.code
    )
    other = groups.heartbeat(0, G, "mb", 0, "ia", 30.0, ["a"], None, None, p)
    assert other.error == UnreleasedInstanceIdError.code
    assert groups.check_commit(G, "ma", a.epoch) == 0
    assert groups.check_commit(G, "ma", a.epoch - 1) == StaleMemberEpochError.code
    assert groups.check_commit(G, "zz", a.epoch) == UnknownMemberIdError.code
    # A static member's temporary leave (-2) keeps its partitions for its return.
    kept = a.owned
    assert groups.heartbeat(1, G, "ma", -2, "ia", 30.0, None, None, None, p).error == 0
    back = groups.heartbeat(2, G, "ma2", 0, "ia", 30.0, ["a"], None, None, p)
    assert back.error == 0
    assert back.assignment == kept
    # The session timeout evicts a silent member.
    groups.tick(2 + groups.session_timeout, p)
    assert not groups.groups[G].members
