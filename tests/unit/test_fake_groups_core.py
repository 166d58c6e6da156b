"""The fake Kafka's group coordinator rules (testing/fake/_groups.py), driven directly by
hypothesis: any interleaving of joins, syncs, heartbeats, leaves, expiries and clock jumps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_brod.protocol.errors import (
    FencedInstanceIdError,
    GroupIdNotFoundError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    InvalidSessionTimeoutError,
    MemberIdRequiredError,
    NonEmptyGroupError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from trio_brod.testing.fake._groups import (
    COMPLETING,
    EMPTY,
    PREPARING,
    STABLE,
    Committed,
    Groups,
    JoinResult,
    SyncResult,
    Waiter,
)

G = "g"
SESSION, REBALANCE = 10.0, 30.0


@dataclass
class Client:
    """A member as a client sees itself."""

    name: str
    instance: str | None
    protocols: list[tuple[str, bytes]]
    member_id: str = ""
    generation: int = -1
    join: Waiter[JoinResult] | None = None
    sync: Waiter[SyncResult] | None = None
    leader: bool = False
    everyone: tuple[str, ...] = ()


@dataclass
class World:
    groups: Groups = field(default_factory=Groups)
    now: float = 0.0
    #: generation -> (leader, protocol) every successful join answer of it agreed on.
    generations: dict[int, tuple[str, str | None]] = field(default_factory=dict)
    #: (generation, member id) -> assignment the leader gave.
    assigned: dict[tuple[int, str], bytes] = field(default_factory=dict)
    last_generation: int = 0

    def join(self, c: Client) -> None:
        c.join = self.groups.join(
            self.now, G, c.member_id, c.instance, "consumer", c.protocols, SESSION, REBALANCE
        )

    def settle(self, clients: list[Client]) -> None:
        """Read every answered request, as the clients would, and check the invariants."""
        for c in clients:
            if c.join is not None and c.join.result is not None:
                r, c.join = c.join.result, None
                if r.error == MemberIdRequiredError.code:
                    c.member_id = r.member_id
                elif r.error == 0:
                    c.member_id, c.generation = r.member_id, r.generation
                    c.leader = r.leader == r.member_id
                    c.everyone = tuple(m for m, _, _ in r.members)
                    if r.skip_assignment:
                        # A static leader came back under a new id, in the same generation.
                        self.generations[r.generation] = (r.leader, r.protocol_name)
                    agreed = self.generations.setdefault(r.generation, (r.leader, r.protocol_name))
                    assert agreed == (r.leader, r.protocol_name)
                elif r.error in (UnknownMemberIdError.code, FencedInstanceIdError.code):
                    c.member_id, c.generation = "", -1
            if c.sync is not None and c.sync.result is not None:
                s, c.sync = c.sync.result, None
                if s.error == 0:
                    expected = self.assigned.get((c.generation, c.member_id))
                    assert expected is None or s.assignment == expected
        group = self.groups.get(G)
        if group is None:
            return
        assert group.generation >= self.last_generation
        self.last_generation = group.generation
        assert (group.state == EMPTY) == (not group.members)
        if group.members:
            assert group.leader in group.members
        for instance, member_id in group.static.items():
            assert group.members[member_id].instance_id == instance


def join_all(world: World, members: list[Client]) -> None:
    """Rounds of well-behaved members reacting to their answers until all joined one
    generation: join (again with the id MEMBER_ID_REQUIRED gave), heartbeat, and rejoin when
    a heartbeat says REBALANCE_IN_PROGRESS.
    """
    for _ in range(2 * len(members) + 2):
        for c in members:
            if c.join is None and c.generation < 0:
                world.join(c)
            elif c.join is None:
                error = world.groups.heartbeat(world.now, G, c.generation, c.member_id, c.instance)
                if error == RebalanceInProgressError.code:
                    world.join(c)
        world.settle(members)


protocols = st.sampled_from(
    [[("range", b"r")], [("roundrobin", b"rr"), ("range", b"r")], [("range", b"r2")]]
)
ops = st.lists(
    st.tuples(
        st.sampled_from(["join", "sync", "heartbeat", "leave", "advance", "expire"]),
        st.integers(0, 2),
        st.floats(0, 40),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    ops=ops,
    static=st.lists(st.booleans(), min_size=3, max_size=3),
    chosen=st.lists(protocols, min_size=3, max_size=3),
)
def test_any_interleaving_keeps_the_invariants(
    ops: list[tuple[str, int, float]], static: list[bool], chosen: list[list[tuple[str, bytes]]]
) -> None:
    world = World()
    clients = [Client(f"c{i}", f"i{i}" if static[i] else None, chosen[i]) for i in range(3)]
    for op, i, seconds in ops:
        c = clients[i]
        group = world.groups.get(G)
        if op == "join":
            world.join(c)
        elif op == "sync":
            assignments = {}
            if c.leader:
                assignments = {m: f"{m}@{c.generation}".encode() for m in c.everyone}
                for m, a in assignments.items():
                    world.assigned.setdefault((c.generation, m), a)
            c.sync = world.groups.sync(
                world.now, G, c.generation, c.member_id, c.instance, assignments
            )
            if c.sync.result is not None and c.sync.result.error == 0:
                # Stored only if this leader's sync completed the rebalance.
                for m in assignments:
                    if group is not None and m in group.members:
                        world.assigned[(c.generation, m)] = group.members[m].assignment
        elif op == "heartbeat":
            world.groups.heartbeat(world.now, G, c.generation, c.member_id, c.instance)
        elif op == "leave":
            world.groups.leave(world.now, G, [(c.member_id, c.instance)])
        elif op == "advance":
            world.now += seconds
            world.groups.tick(world.now)
        elif group is not None:
            group.expire(c.member_id, world.now)
        world.settle(clients)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 4),
    order=st.permutations(range(4)),
    static=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_well_behaved_members_reach_a_stable_group(
    n: int, order: list[int], static: list[bool]
) -> None:
    """Members that join (twice when a member id is required) and sync all end up in one
    Stable generation, each with what the leader assigned it, with the protocol all share.
    """
    world = World()
    clients = [
        Client(f"c{i}", f"i{i}" if static[i] else None, [("roundrobin", b"x"), ("range", b"y")])
        for i in range(4)
    ]
    members = [clients[i] for i in order if i < n]
    join_all(world, members)
    for c in members:
        assert c.generation == members[0].generation > 0
    group = world.groups.get(G)
    assert group is not None
    assert group.state in (COMPLETING, STABLE)
    assert group.protocol_name == "roundrobin"
    leader = next(c for c in members if c.leader)
    assert set(leader.everyone) == {c.member_id for c in members}
    for c in members:
        assignments = {m: m.encode() for m in leader.everyone} if c is leader else {}
        c.sync = world.groups.sync(world.now, G, c.generation, c.member_id, c.instance, assignments)
    world.settle(members)
    assert group.state == STABLE
    for c in members:
        assert group.members[c.member_id].assignment == c.member_id.encode()
        assert world.groups.heartbeat(world.now, G, c.generation, c.member_id, c.instance) == 0


def stable_pair() -> tuple[World, Client, Client]:
    world = World()
    a, b = Client("a", None, [("range", b"")]), Client("b", "static-b", [("range", b"")])
    join_all(world, [a, b])
    leader = a if a.leader else b
    for c in (a, b):
        c.sync = world.groups.sync(
            world.now,
            G,
            c.generation,
            c.member_id,
            c.instance,
            {m: m.encode() for m in leader.everyone} if c is leader else {},
        )
    world.settle([a, b])
    group = world.groups.get(G)
    assert group is not None
    assert group.state == STABLE
    return world, a, b


def test_error_codes() -> None:
    world, a, b = stable_pair()
    g = world.groups
    assert g.heartbeat(0, G, a.generation + 1, a.member_id, None) == IllegalGenerationError.code
    assert g.heartbeat(0, G, a.generation, "nobody", None) == UnknownMemberIdError.code
    assert g.heartbeat(0, G, b.generation, "other", "static-b") == FencedInstanceIdError.code
    join = g.join(0, G, "", None, "consumer", [("range", b"")], 1.0, 1.0)
    assert join.result == JoinResult(InvalidSessionTimeoutError.code, "")
    join = g.join(0, G, "", None, "consumer", [("sticky", b"")], SESSION, REBALANCE)
    assert join.result is not None
    assert join.result.error == InconsistentGroupProtocolError.code
    # Commits: members in the current generation, or a "simple" commit to an empty group.
    assert g.check_commit(G, a.generation, a.member_id, None) == 0
    assert g.check_commit(G, a.generation - 1, a.member_id, None) == IllegalGenerationError.code
    assert g.check_commit(G, -1, "", None) == UnknownMemberIdError.code
    assert g.check_commit("new", -1, "", None) == 0
    assert g.check_commit("other", 3, "m", None) == IllegalGenerationError.code
    # A new member starts a rebalance: heartbeats say so, commits still go through.
    newcomer = Client("c", None, [("range", b"")])
    world.join(newcomer)
    world.settle([newcomer])
    world.join(newcomer)
    group = g.get(G)
    assert group is not None
    assert group.state == PREPARING
    assert g.heartbeat(0, G, a.generation, a.member_id, None) == RebalanceInProgressError.code
    assert g.check_commit(G, a.generation, a.member_id, None) == 0
    sync = g.sync(0, G, a.generation, a.member_id, None, {})
    assert sync.result == SyncResult(RebalanceInProgressError.code)


def test_static_member_rejoin_keeps_generation_and_fences_the_old_id() -> None:
    world, _a, b = stable_pair()
    group = world.groups.get(G)
    assert group is not None
    generation, old_id = group.generation, b.member_id
    assert group.leader == b.member_id  # the static member joined first
    restarted = Client("b2", "static-b", [("range", b"")])
    # The leader's rejoin keeps the generation from JoinGroup v9 (skip_assignment).
    restarted.join = world.groups.join(
        world.now,
        G,
        "",
        "static-b",
        "consumer",
        restarted.protocols,
        SESSION,
        REBALANCE,
        skip_assignment_ok=True,
    )
    assert restarted.join.result is not None
    assert restarted.join.result.skip_assignment
    world.settle([restarted])
    assert restarted.generation == generation
    assert restarted.member_id != old_id
    assert group.state == STABLE
    fenced = world.groups.heartbeat(world.now, G, generation, old_id, "static-b")
    assert fenced == FencedInstanceIdError.code
    sync = world.groups.sync(world.now, G, generation, restarted.member_id, "static-b", {})
    assert sync.result is not None
    assert sync.result.assignment == old_id.encode()  # its assignment was kept


def rejoin_static_b(world: World, protocols: list[tuple[str, bytes]], *, v9: bool) -> Client:
    restarted = Client("b2", "static-b", protocols)
    restarted.join = world.groups.join(
        world.now,
        G,
        "",
        "static-b",
        "consumer",
        protocols,
        SESSION,
        REBALANCE,
        skip_assignment_ok=v9,
    )
    world.settle([restarted])
    return restarted


def test_static_rejoin_with_new_metadata_keeps_generation() -> None:
    # Kafka compares only the protocol the group would select, not the metadata: a restarted
    # member's subscription userdata (owned partitions, its generation) is always new.
    world, _a, b = stable_pair()
    group = world.groups.get(G)
    assert group is not None
    generation, old_id = group.generation, b.member_id
    restarted = rejoin_static_b(world, [("range", b"owns nothing now")], v9=False)
    assert (restarted.generation, group.generation, group.state) == (generation, generation, STABLE)
    # Before v9 the old id is named leader, so the new one syncs as a follower and gets the
    # assignment the group already has.
    assert not restarted.leader
    assert group.leader == restarted.member_id
    sync = world.groups.sync(world.now, G, generation, restarted.member_id, "static-b", {})
    assert sync.result is not None
    assert sync.result.assignment == old_id.encode()
    assert group.members[restarted.member_id].protocols == [("range", b"owns nothing now")]


def test_static_rejoin_that_changes_the_protocol_rebalances() -> None:
    world, a, _b = stable_pair()
    group = world.groups.get(G)
    assert group is not None
    generation = group.generation
    restarted = rejoin_static_b(world, [("roundrobin", b""), ("range", b"")], v9=True)
    # Still "range" (a supports nothing else): no rebalance.
    assert (restarted.generation, group.state) == (generation, STABLE)
    a.protocols = [("roundrobin", b""), ("range", b"")]
    world.join(a)  # a's protocols change: a rebalance, waiting for b
    assert group.state == PREPARING
    # b restarts again during the rebalance: it is counted as rejoined at once.
    again = rejoin_static_b(world, [("roundrobin", b"")], v9=True)
    world.settle([a, again])
    assert a.generation == again.generation == generation + 1
    assert group.generation == generation + 1
    assert group.protocol_name == "roundrobin"


def test_static_rejoin_while_completing_rebalances() -> None:
    world = World()
    a, b = Client("a", None, [("range", b"")]), Client("b", "static-b", [("range", b"")])
    join_all(world, [a, b])
    group = world.groups.get(G)
    assert group is not None
    assert group.state == COMPLETING  # joined, nobody synced yet
    generation = group.generation
    # The leader may already hold b's old id for its assignment: the group must rebalance.
    restarted = rejoin_static_b(world, [("range", b"")], v9=True)
    assert restarted.join is not None  # waits for the next generation
    assert group.state == PREPARING
    join_all(world, [a, restarted])
    assert group.generation == generation + 1


def test_session_timeout_evicts_and_rebalance_timeout_drops_laggards() -> None:
    world, a, b = stable_pair()
    group = world.groups.get(G)
    assert group is not None
    generation = group.generation
    # Only a heartbeats: b's session (10 s) runs out.
    for _ in range(4):
        world.now += 3
        world.groups.heartbeat(world.now, G, a.generation, a.member_id, None)
        world.groups.tick(world.now)
    assert b.member_id not in group.members
    assert "static-b" not in group.static
    assert group.state == PREPARING
    # a never rejoins: at the rebalance timeout it is dropped too, and the group is empty.
    deadline = group.next_deadline()
    assert deadline is not None
    world.now = deadline
    world.groups.tick(world.now)
    assert group.state == EMPTY
    assert group.generation == generation + 1


def test_leave_group_batch() -> None:
    world, a, _b = stable_pair()
    error, errors = world.groups.leave(
        world.now, G, [("", "static-b"), (a.member_id, None), ("ghost", None)]
    )
    assert (error, errors) == (0, [0, 0, UnknownMemberIdError.code])
    group = world.groups.get(G)
    assert group is not None
    assert group.state == EMPTY


def test_a_rebalance_waits_for_members_given_an_id() -> None:
    """As Kafka: an id handed out with MEMBER_ID_REQUIRED holds the rebalance until the
    member joins with it, or its session timeout passes.
    """
    world = World()
    a, b = Client("a", None, [("range", b"")]), Client("b", None, [("range", b"")])
    for c in (a, b):
        world.join(c)
    world.settle([a, b])
    world.join(a)
    assert a.join is not None
    assert a.join.result is None  # b's id is pending
    world.now = SESSION
    world.groups.tick(world.now)
    assert a.join.result is not None
    assert a.join.result.error == 0
    assert a.join.result.members == ((a.member_id, None, b""),)


def test_idle_groups_have_no_timers_until_a_member_joins_again() -> None:
    # The coordinator looks only at groups that may have timers; one left idle must get
    # its timers looked at again when a member comes back.
    world, a, b = stable_pair()
    for other in ("idle-1", "idle-2"):
        assert world.groups.get(other, create=True) is not None
    assert world.groups.next_deadline() == world.now + SESSION
    world.groups.leave(world.now, G, [(a.member_id, None), (b.member_id, "static-b")])
    assert world.groups.next_deadline() is None
    world.now += 100
    c = Client("c", None, [("range", b"")])
    join_all(world, [c])
    group = world.groups.get(G)
    assert group is not None
    assert c.member_id in group.members
    # c never syncs: its timers are looked at again, and end its membership.
    assert world.groups.next_deadline() is not None
    while (deadline := world.groups.next_deadline()) is not None:
        world.now = deadline
        world.groups.tick(world.now)
    assert c.member_id not in group.members
    assert group.state == EMPTY


def test_only_an_empty_group_is_deleted_and_its_offsets_with_it() -> None:
    world, a, b = stable_pair()
    world.groups.commit(G, "t", 0, Committed(offset=5, metadata="", leader_epoch=-1))
    assert world.groups.delete(G) == NonEmptyGroupError.code
    world.groups.leave(world.now, G, [(a.member_id, None)])
    assert world.groups.delete(G) == NonEmptyGroupError.code  # b is still in it
    world.groups.leave(world.now, G, [(b.member_id, "static-b")])
    # As Kafka, only the state counts: a member id handed out (MEMBER_ID_REQUIRED) and not
    # joined yet does not keep an Empty group.
    c = Client("c", None, [("range", b"")])
    world.join(c)
    group = world.groups.get(G)
    assert group is not None
    assert group.pending
    assert group.state == EMPTY
    assert world.groups.delete(G) == 0
    assert world.groups.committed(G) == {}
    assert world.groups.delete(G) == GroupIdNotFoundError.code
    assert world.groups.next_deadline() is None
