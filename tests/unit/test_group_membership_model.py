"""Several group members' state machines against a small model of the broker's group.

The model (``ModelGroup``) keeps what Kafka's classic group coordinator keeps: members,
static instance ids, the generation, the join barrier, the sync barrier and the leader's
assignment, and answers JoinGroup/SyncGroup/Heartbeat/OffsetCommit/LeaveGroup with the errors
the broker would give. The leader assigns round-robin; with the cooperative protocol it
withholds a partition that changes owner for one generation, as cooperative-sticky does.
Hypothesis interleaves the members' steps, session expiries, barrier timeouts, coordinator
moves, leaves and static restarts, and checks the invariants the group protocol promises.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from trio_brod.groups._membership import (
    Action,
    Assign,
    Fatal,
    FindCoordinator,
    Left,
    Membership,
    MemberState,
    Rejoin,
    Revoke,
    SendJoin,
    SendLeave,
    SendSync,
    Stable,
    TopicPartition,
)
from trio_brod.protocol.errors import (
    FencedInstanceIdError,
    IllegalGenerationError,
    KafkaError,
    MemberIdRequiredError,
    NotCoordinatorError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

PARTITIONS: tuple[TopicPartition, ...] = tuple(("t", i) for i in range(5))


@dataclass(frozen=True)
class FakeAssignor:
    name: str
    rebalance_protocols: tuple[str, ...]


ASSIGNORS = {
    "eager": FakeAssignor("roundrobin", ("eager",)),
    "cooperative": FakeAssignor("cooperative-sticky", ("cooperative", "eager")),
}


@dataclass
class Sim:
    """One member process: its state machine, its workers, what it was told."""

    name: str
    m: Membership
    todo: deque[Action] = field(default_factory=deque)
    inbox: deque[tuple[str, dict[str, Any]]] = field(default_factory=deque)
    workers: set[TopicPartition] = field(default_factory=set)
    lost: set[tuple[int, str]] = field(default_factory=set)
    done: bool = False
    expect: tuple[int, frozenset[TopicPartition]] | None = None


@dataclass
class ModelMember:
    sim: Sim
    instance_id: str | None
    joined: bool = False
    owned: frozenset[TopicPartition] = frozenset()
    owned_generation: int = -1
    sync_parked: bool = False


class ModelGroup:
    """The broker's side, reduced to what decides the members' answers."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.state = "Empty"
        self.generation = 0
        self.members: dict[str, ModelMember] = {}
        self.static: dict[str, str] = {}
        self.pending_ids: set[str] = set()
        self.leader: str | None = None
        self.assignment: dict[str, frozenset[TopicPartition]] = {}
        self.ids = itertools.count(1)

    def _check(self, member_id: str, instance_id: str | None) -> KafkaError | None:
        if instance_id is not None and self.static.get(instance_id, member_id) != member_id:
            return FencedInstanceIdError()
        if member_id not in self.members:
            return UnknownMemberIdError()
        return None

    def _rebalance(self) -> None:
        for member in self.members.values():
            if member.sync_parked:
                member.sync_parked = False
                member.sim.inbox.append(("sync", {"error": RebalanceInProgressError()}))
        self.state = "Preparing" if self.members else "Empty"
        self.maybe_complete_join()

    def maybe_complete_join(self) -> None:
        if self.state != "Preparing" or not all(m.joined for m in self.members.values()):
            return
        self.generation += 1
        self.state = "Completing"
        if self.leader not in self.members:
            self.leader = min(self.members)
        for member_id, member in self.members.items():
            member.joined = False
            member.sim.inbox.append(("join", self._join_ok(member_id)))

    def _join_ok(self, member_id: str, *, skip: bool = False) -> dict[str, Any]:
        return {
            "error": None,
            "generation_id": self.generation,
            "member_id": member_id,
            "leader_id": self.leader,
            "protocol_name": ASSIGNORS[self.protocol].name,
            "protocol_type": "consumer",
            "skip_assignment": skip,
        }

    def join(self, sim: Sim, a: SendJoin) -> dict[str, Any] | None:
        member_id = a.member_id
        inst = a.group_instance_id
        if inst is not None and member_id == "":
            new = f"{sim.name}-{next(self.ids)}"
            old = self.static.get(inst)
            self.static[inst] = new
            if old is not None and old in self.members:
                # KIP-345: the instance comes back; its old member id is fenced.
                member = self.members.pop(old)
                member.sim = sim
                self.members[new] = member
                if old in self.assignment:
                    self.assignment[new] = self.assignment.pop(old)
                if self.leader == old:
                    self.leader = new
                if self.state == "Stable":
                    return self._join_ok(new, skip=new == self.leader)
            else:
                self.members[new] = ModelMember(sim, inst)
            member_id = new
        elif inst is None and member_id == "":
            new = f"{sim.name}-{next(self.ids)}"
            self.pending_ids.add(new)
            return {"error": MemberIdRequiredError(), "member_id": new}
        elif member_id in self.pending_ids:
            self.pending_ids.discard(member_id)
            self.members[member_id] = ModelMember(sim, None)
        elif (error := self._check(member_id, inst)) is not None:
            return {"error": error}
        member = self.members[member_id]
        member.joined = True
        member.sim = sim
        member.owned = a.owned_partitions
        member.owned_generation = a.generation_id
        if self.state != "Preparing":
            self._rebalance()
        else:
            self.maybe_complete_join()
        return None

    def sync(self, a: SendSync, assignment: dict[str, frozenset[TopicPartition]] | None) -> Any:
        gen = a.generation
        if (error := self._check(gen.member_id, a.group_instance_id)) is not None:
            return {"error": error}
        if gen.generation_id != self.generation:
            return {"error": IllegalGenerationError()}
        if self.state == "Preparing":
            return {"error": RebalanceInProgressError()}
        if self.state == "Completing":
            if assignment is None:
                self.members[gen.member_id].sync_parked = True
                return None
            self.assignment = assignment
            self.state = "Stable"
            for member_id, member in self.members.items():
                if member.sync_parked:
                    member.sync_parked = False
                    member.sim.inbox.append(("sync", self._sync_ok(member_id)))
        return self._sync_ok(gen.member_id)

    def _sync_ok(self, member_id: str) -> dict[str, Any]:
        return {"error": None, "assignment": self.assignment.get(member_id, frozenset())}

    def heartbeat(self, member_id: str, generation_id: int, inst: str | None) -> Any:
        if (error := self._check(member_id, inst)) is not None:
            return error
        if generation_id != self.generation:
            return IllegalGenerationError()
        if self.state == "Preparing":
            return RebalanceInProgressError()
        return None

    def commit(
        self, member_id: str, generation_id: int, inst: str | None, parts: set[TopicPartition]
    ) -> KafkaError | None:
        if (error := self.heartbeat(member_id, generation_id, inst)) is not None:
            return None if isinstance(error, RebalanceInProgressError) else error
        if self.state == "Completing":
            return RebalanceInProgressError()
        for other, owned in self.assignment.items():
            assert other == member_id or not (owned & parts), (member_id, other, parts)
        return None

    def remove(self, member_id: str) -> None:
        member = self.members.pop(member_id, None)
        if member is None:
            return
        if member.instance_id is not None and self.static.get(member.instance_id) == member_id:
            del self.static[member.instance_id]
        if member.joined:
            member.sim.inbox.append(("join", {"error": UnknownMemberIdError()}))
        if member.sync_parked:
            member.sim.inbox.append(("sync", {"error": UnknownMemberIdError()}))
        self.assignment.pop(member_id, None)
        self._rebalance()

    def timeout_join(self) -> None:
        if self.state == "Preparing":
            for member_id in [i for i, m in self.members.items() if not m.joined]:
                self.remove(member_id)

    def assign(self) -> dict[str, frozenset[TopicPartition]]:
        """The leader's round-robin; cooperative withholds what changes owner."""
        ids = sorted(self.members)
        if not ids:
            return {}  # the leader was removed meanwhile: its SyncGroup will be refused
        owner: dict[TopicPartition, tuple[int, str]] = {}
        for member_id, member in self.members.items():
            for p in member.owned:
                if p not in owner or owner[p][0] < member.owned_generation:
                    owner[p] = (member.owned_generation, member_id)
        result: dict[str, set[TopicPartition]] = {i: set() for i in ids}
        for n, p in enumerate(PARTITIONS):
            target = ids[n % len(ids)]
            if self.protocol == "cooperative" and p in owner and owner[p][1] != target:
                continue
            result[target].add(p)
        return {i: frozenset(ps) for i, ps in result.items()}


class GroupMachine(RuleBasedStateMachine):
    group: ModelGroup
    sims: list[Sim]

    @initialize(protocol=st.sampled_from(["eager", "cooperative"]))
    def start(self, protocol: str) -> None:
        self.protocol = protocol
        self.group = ModelGroup(protocol)
        self.sims = []
        for name, inst in (("a", None), ("b", None), ("s", "static-s")):
            self._spawn(name, inst)

    def _spawn(self, name: str, inst: str | None) -> Sim:
        sim = Sim(name, Membership([ASSIGNORS[self.protocol]], group_instance_id=inst))
        sim.todo.extend(sim.m.start())
        self.sims.append(sim)
        return sim

    def _sim(self, i: int) -> Sim:
        return self.sims[i % len(self.sims)]

    # -- carrying out actions ------------------------------------------------------------------

    def _execute(self, sim: Sim, action: Action) -> None:
        m = sim.m
        if isinstance(action, FindCoordinator):
            sim.todo.extend(m.coordinator_found())
        elif isinstance(action, Rejoin):
            sim.todo.extend(m.join())
        elif isinstance(action, SendJoin):
            answer = self.group.join(sim, action)
            if answer is not None:
                sim.inbox.append(("join", answer))
        elif isinstance(action, SendSync):
            assignment = None
            if action.as_leader and not action.skip_assignment:
                assignment = self.group.assign()
            answer = self.group.sync(action, assignment)
            if answer is not None:
                sim.inbox.append(("sync", answer))
        elif isinstance(action, Revoke):
            self._revoke(sim, action)
        elif isinstance(action, Assign):
            self._assign(sim, action)
        elif isinstance(action, Stable):
            if sim.expect is not None and sim.expect[0] == self.group.generation:
                assert action.generation.generation_id == sim.expect[0]
                assert action.partitions == sim.expect[1]
            sim.expect = None
        elif isinstance(action, SendLeave):
            self.group.remove(action.member_id)
        elif isinstance(action, Left | Fatal):
            sim.done = True
            sim.todo.clear()

    def _revoke(self, sim: Sim, action: Revoke) -> None:
        # A loss may name partitions whose (superseded) revocation already stopped them.
        assert action.lost or action.partitions <= sim.workers, "revoking what it does not hold"
        gen = action.generation
        if action.lost:
            sim.lost.add((gen.generation_id, gen.member_id))
        elif action.commit_first and sim.m.may_commit(gen.generation_id, gen.member_id):
            error = self.group.commit(
                gen.member_id, gen.generation_id, sim.m.group_instance_id, set(action.partitions)
            )
            sim.todo.extend(sim.m.on_commit_response(error, gen))
        sim.workers -= action.partitions
        sim.todo.extend(sim.m.revoked(action))

    def _assign(self, sim: Sim, action: Assign) -> None:
        for other in self.sims:
            if other is sim or not (other.workers & action.partitions):
                continue
            # Only a member the group no longer has (evicted, fenced, timed out of the
            # barrier, not yet aware) may still hold a partition given to someone else.
            assert other.m.generation.member_id not in self.group.members, (
                other.name,
                other.workers & action.partitions,
            )
        sim.workers |= action.partitions

    # -- rules -------------------------------------------------------------------------------

    @rule(i=st.integers(0, 7))
    def act(self, i: int) -> None:
        sim = self._sim(i)
        if sim.todo and not sim.done:
            self._execute(sim, sim.todo.popleft())

    @rule(i=st.integers(0, 7))
    def deliver(self, i: int) -> None:
        sim = self._sim(i)
        if not sim.inbox or sim.done:
            return
        kind, answer = sim.inbox.popleft()
        if kind == "join":
            sim.todo.extend(sim.m.on_join_response(**answer))
        else:
            sim.todo.extend(sim.m.on_sync_response(**answer))

    @rule()
    def settle(self) -> None:
        """Everyone carries out its actions, answers arrive, heartbeats go, until quiet."""
        for _ in range(300):
            busy = False
            for i, sim in enumerate(self.sims):
                if sim.done:
                    continue
                if sim.todo or sim.inbox:
                    busy = True
                    self.act(i) if sim.todo else self.deliver(i)
            if not busy:
                before = [(s.m.state, s.m.generation) for s in self.sims]
                for i in range(len(self.sims)):
                    self.heartbeat(i)
                if not any(s.todo for s in self.sims) and before == [
                    (s.m.state, s.m.generation) for s in self.sims
                ]:
                    return

    @rule(i=st.integers(0, 7))
    def heartbeat(self, i: int) -> None:
        sim = self._sim(i)
        gen = sim.m.heartbeat()
        if gen is not None and not sim.done:
            error = self.group.heartbeat(gen.member_id, gen.generation_id, sim.m.group_instance_id)
            sim.todo.extend(sim.m.on_heartbeat_response(error, gen))

    @rule(i=st.integers(0, 7))
    def commit(self, i: int) -> None:
        sim = self._sim(i)
        gen = sim.m.generation
        if sim.done or not sim.workers or not sim.m.may_commit(gen.generation_id, gen.member_id):
            return
        inst = sim.m.group_instance_id
        error = self.group.commit(gen.member_id, gen.generation_id, inst, sim.workers)
        sim.todo.extend(sim.m.on_commit_response(error, gen))

    @rule(i=st.integers(0, 7))
    def broker_session_expiry(self, i: int) -> None:
        self.group.remove(self._sim(i).m.generation.member_id)

    @rule(i=st.integers(0, 7))
    def member_session_expiry(self, i: int) -> None:
        sim = self._sim(i)
        if not sim.done:
            sim.todo.extend(sim.m.session_expired())

    @rule()
    def join_barrier_timeout(self) -> None:
        self.group.timeout_join()

    @rule(i=st.integers(0, 7))
    def coordinator_moves(self, i: int) -> None:
        sim = self._sim(i)
        if not sim.done:
            sim.todo.extend(sim.m.on_heartbeat_response(NotCoordinatorError(), sim.m.generation))

    @rule(i=st.integers(0, 7))
    def leave(self, i: int) -> None:
        sim = self._sim(i)
        if not sim.done:
            sim.todo.extend(sim.m.leave())

    @precondition(lambda self: len(self.sims) < 8)
    @rule(i=st.integers(0, 7))
    def static_restart(self, i: int) -> None:
        """A static member's process comes back; the old one lingers as a zombie."""
        old = self._sim(i)
        inst = old.m.group_instance_id
        if inst is None:
            return
        member_id = self.group.static.get(inst)
        new = self._spawn(old.name, inst)
        if self.group.state == "Stable" and member_id in self.group.members:
            assigned = self.group.assignment.get(member_id, frozenset())
            new.expect = (self.group.generation, assigned)

    @precondition(lambda self: len(self.sims) < 8)
    @rule()
    def new_member(self) -> None:
        self._spawn(f"n{len(self.sims)}", None)

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def one_owner_per_partition_within_a_generation(self) -> None:
        seen: dict[tuple[int, TopicPartition], str] = {}
        for sim in self.sims:
            gen = sim.m.generation
            if sim.m.state is not MemberState.STABLE or gen.member_id not in self.group.members:
                continue
            for p in sim.m.owned_partitions:
                key = (gen.generation_id, p)
                assert key not in seen, (key, seen[key], sim.name)
                seen[key] = sim.name

    @invariant()
    def never_commits_after_being_told_it_lost(self) -> None:
        for sim in self.sims:
            for generation_id, member_id in sim.lost:
                assert not sim.m.may_commit(generation_id, member_id)

    @invariant()
    def owned_partitions_are_held_by_workers(self) -> None:
        for sim in self.sims:
            if not sim.done and not sim.todo:  # Assign actions not carried out yet
                assert sim.m.owned_partitions <= sim.workers
            if sim.m.state in (MemberState.LEFT, MemberState.FAILED) and not sim.todo:
                assert not sim.m.owned_partitions


GroupMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=80, deadline=None)
test_group_model = GroupMachine.TestCase
