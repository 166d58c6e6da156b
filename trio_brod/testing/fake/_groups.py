"""The fake Kafka's classic group coordinator, as pure state: no sockets, no Trio.

Every operation takes ``now`` (seconds on the caller's clock) and answers at once, or hands
back a :class:`Waiter` that a later operation completes (a JoinGroup waits for the other
members to rejoin, a follower's SyncGroup for the leader's assignment). :meth:`Groups.tick`
applies the timers that are due (session timeouts, rebalance timeouts) and
:meth:`Groups.next_deadline` says when the next one is, so the network layer
(:mod:`._group_apis`) only sleeps on Trio's clock and translates, and hypothesis can drive
this module directly with any interleaving of requests and clock jumps.

The rules are Kafka's (``ClassicGroup`` / ``GroupMetadataManager`` of the broker):

* a JoinGroup (v4+) without a member id is answered MEMBER_ID_REQUIRED with a new id the
  client must rejoin with; a static member (``group.instance.id``) is admitted at once;
* a rebalance (PreparingRebalance) waits for every known member to rejoin, up to the longest
  rebalance timeout of the members; those who did not rejoin are removed; the generation
  then grows by one, the leader (kept if it rejoined, else the first to join) gets every
  member's metadata, and the protocol is the one most members prefer among those every
  member supports;
* a static member rejoining with a new member id replaces (fences) its old id: if the group
  is Stable and the rejoin leaves the group's protocol as it is, the generation and
  assignment are kept (its metadata may change: a restarted member owns nothing);
* sessions expire when a member sends nothing (join, sync, heartbeat) for its session
  timeout while not waiting for a join or sync answer; that removes the member and starts a
  rebalance.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from trio_brod.protocol.errors import (
    CoordinatorNotAvailableError,
    FencedInstanceIdError,
    GroupIdNotFoundError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    InvalidGroupIdError,
    InvalidSessionTimeoutError,
    MemberIdRequiredError,
    NonEmptyGroupError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

__all__ = [
    "EMPTY",
    "Committed",
    "Group",
    "Groups",
    "JoinResult",
    "Member",
    "SyncResult",
    "Waiter",
]

EMPTY, PREPARING, COMPLETING, STABLE, DEAD = (
    "Empty",
    "PreparingRebalance",
    "CompletingRebalance",
    "Stable",
    "Dead",
)
#: Kafka's group.min.session.timeout.ms and group.max.session.timeout.ms.
MIN_SESSION_MS, MAX_SESSION_MS = 6_000, 1_800_000

T = TypeVar("T")


@dataclass
class Waiter(Generic[T]):
    """An answer that a later operation fills in (``result`` stays None until then)."""

    result: T | None = None


@dataclass(frozen=True)
class JoinResult:
    """A JoinGroup answer; ``members`` is every member's (id, instance id, metadata) for the
    leader, empty for the others.
    """

    error: int
    member_id: str
    generation: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    members: tuple[tuple[str, str | None, bytes], ...] = ()
    skip_assignment: bool = False


@dataclass(frozen=True)
class SyncResult:
    """A SyncGroup answer."""

    error: int
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@dataclass(frozen=True)
class Committed:
    """A committed offset."""

    offset: int
    leader_epoch: int
    metadata: str | None


@dataclass
class Member:
    """A member of a classic group."""

    member_id: str
    instance_id: str | None
    client_id: str
    client_host: str
    session_timeout: float
    rebalance_timeout: float
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    #: Rejoined in the current rebalance.
    joined: bool = False
    join: Waiter[JoinResult] | None = None
    sync: Waiter[SyncResult] | None = None
    last_seen: float = 0.0

    def metadata(self, protocol: str | None) -> bytes:
        """The member's metadata for *protocol* (empty if it has none)."""
        return next((m for name, m in self.protocols if name == protocol), b"")

    def deadline(self) -> float | None:
        """When the session expires (None while the member awaits an answer)."""
        if (self.join is not None and self.join.result is None) or (
            self.sync is not None and self.sync.result is None
        ):
            return None
        return self.last_seen + self.session_timeout


@dataclass
class Group:
    """One group: its members, generation, state and committed offsets."""

    group_id: str
    state: str = EMPTY
    generation: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    #: group.instance.id -> member id of the static members.
    static: dict[str, str] = field(default_factory=dict)
    #: Member ids handed out with MEMBER_ID_REQUIRED, not joined yet -> when they expire
    #: (their session timeout). A rebalance waits for them too, as Kafka's does.
    pending: dict[str, float] = field(default_factory=dict)
    rebalance_deadline: float | None = None
    offsets: dict[tuple[str, int], Committed] = field(default_factory=dict)

    # -- rebalances ----------------------------------------------------------------------

    def prepare(self, now: float) -> None:
        if self.state == PREPARING:
            return
        if self.state == COMPLETING:
            # The assignment of the interrupted generation is dropped, and followers waiting
            # for it learn of the new rebalance (Kafka's resetAndPropagateAssignmentWithError).
            for m in self.members.values():
                m.assignment = b""
                if m.sync is not None and m.sync.result is None:
                    m.sync.result = SyncResult(RebalanceInProgressError.code)
        self.state = PREPARING
        for m in self.members.values():
            m.joined = False
        timeout = max((m.rebalance_timeout for m in self.members.values()), default=0.0)
        self.rebalance_deadline = now + timeout

    def try_complete_join(self, now: float, *, force: bool = False) -> None:
        if self.state != PREPARING:
            return
        if not force and (self.pending or not all(m.joined for m in self.members.values())):
            return
        for m in [m for m in self.members.values() if not m.joined]:
            self.remove(m.member_id)
        self.rebalance_deadline = None
        self.generation += 1
        if not self.members:
            # The protocol type stays (DescribeGroups shows it) until a member joins again.
            self.state, self.leader, self.protocol_name = EMPTY, None, None
            return
        if self.leader not in self.members:
            self.leader = next(iter(self.members))
        self.protocol_name = self.select_protocol()
        self.state = COMPLETING
        everyone = tuple(
            (m.member_id, m.instance_id, m.metadata(self.protocol_name))
            for m in self.members.values()
        )
        for m in self.members.values():
            # The previous assignment stays until the leader's SyncGroup replaces it.
            m.last_seen = now
            m.sync = None
            result = JoinResult(
                0,
                m.member_id,
                self.generation,
                self.protocol_type,
                self.protocol_name,
                self.leader,
                everyone if m.member_id == self.leader else (),
            )
            if m.join is not None and m.join.result is None:
                m.join.result = result
            else:
                m.join = Waiter(result)
        # A sync that never comes is bounded as the join was.
        self.rebalance_deadline = now + max(m.rebalance_timeout for m in self.members.values())

    def select_protocol(self) -> str:
        """The protocol the next generation would use: the one most members prefer among
        those every member supports, ties going to the leader's order."""
        common = set.intersection(*({n for n, _ in m.protocols} for m in self.members.values()))
        votes: dict[str, int] = {}
        for m in self.members.values():
            choice = next(n for n, _ in m.protocols if n in common)
            votes[choice] = votes.get(choice, 0) + 1
        leader_order = [n for n, _ in self.members[self.leader or ""].protocols if n in common]
        return max(leader_order, key=lambda n: (votes.get(n, 0), -leader_order.index(n)))

    def remove(self, member_id: str, error: int = UnknownMemberIdError.code) -> None:
        member = self.members.pop(member_id, None)
        if member is None:
            return
        if member.instance_id is not None and self.static.get(member.instance_id) == member_id:
            del self.static[member.instance_id]
        if member.join is not None and member.join.result is None:
            member.join.result = JoinResult(error, member_id)
        if member.sync is not None and member.sync.result is None:
            member.sync.result = SyncResult(error)
        if self.leader == member_id:
            self.leader = next(iter(self.members), None)

    def member_left(self, member_id: str, now: float) -> None:
        self.remove(member_id)
        if self.state in (STABLE, COMPLETING):
            self.prepare(now)
        if not self.members and self.state == PREPARING:
            self.try_complete_join(now, force=True)
        else:
            self.try_complete_join(now)

    def validate(self, member_id: str, instance_id: str | None) -> Member:
        """Kafka's validateMember: FENCED_INSTANCE_ID or UNKNOWN_MEMBER_ID."""
        if instance_id is not None:
            known = self.static.get(instance_id)
            if known is None:
                raise _Refused(UnknownMemberIdError.code)
            if known != member_id:
                raise _Refused(FencedInstanceIdError.code)
        member = self.members.get(member_id)
        if member is None:
            raise _Refused(UnknownMemberIdError.code)
        return member

    # -- what a test may do --------------------------------------------------------------

    def expire(self, member_id: str, now: float) -> bool:
        """Evict a member as its session timeout would (False if it is no member)."""
        if member_id not in self.members:
            return False
        self.member_left(member_id, now)
        return True

    # -- timers --------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When the next timer of this group fires."""
        deadlines = [d for m in self.members.values() if (d := m.deadline()) is not None]
        if self.rebalance_deadline is not None:
            deadlines.append(self.rebalance_deadline)
        deadlines.extend(self.pending.values())
        return min(deadlines, default=None)

    def tick(self, now: float) -> None:
        """Apply every timer due at *now*."""
        expired = [m for m, deadline in self.pending.items() if now >= deadline]
        for member_id in expired:
            del self.pending[member_id]
        if expired:
            self.try_complete_join(now)
        if self.rebalance_deadline is not None and now >= self.rebalance_deadline:
            if self.state == PREPARING:
                self.try_complete_join(now, force=True)
            elif self.state == COMPLETING:
                # Members that never sent their SyncGroup are removed; the rest rejoin.
                self.rebalance_deadline = None
                for m in list(self.members.values()):
                    if m.sync is None:
                        self.remove(m.member_id)
                self.prepare(now)
                self.try_complete_join(now, force=not self.members)
            else:
                self.rebalance_deadline = None
        for m in list(self.members.values()):
            deadline = m.deadline()
            if deadline is not None and now >= deadline and m.member_id in self.members:
                self.member_left(m.member_id, now)


class _Refused(Exception):
    def __init__(self, error: int) -> None:
        super().__init__(error)
        self.error = error


@dataclass
class Groups:
    """Every group of the fake cluster (the coordinator's state; its offsets too)."""

    groups: dict[str, Group] = field(default_factory=dict)
    #: The groups that may have a timer running (see next_deadline).
    _timed: dict[str, Group] = field(default_factory=dict, repr=False)
    min_session_timeout: float = MIN_SESSION_MS / 1000
    max_session_timeout: float = MAX_SESSION_MS / 1000

    def get(self, group_id: str, *, create: bool = False) -> Group | None:
        """The group (made empty if *create*).

        The group is put among those whose timers are looked at (see
        :meth:`next_deadline`): a group only gets timers from members, and members only
        come by a join, which finds its group here.
        """
        group = self.groups.get(group_id)
        if group is None and create:
            group = self.groups[group_id] = Group(group_id)
        if group is not None:
            self._timed[group_id] = group
        return group

    def next_deadline(self) -> float | None:
        """When the next timer of any group fires.

        Only groups that may have a timer are looked at: an idle group (no members, no
        rebalance, no pending member) is dropped from them until :meth:`get` finds it
        again. The timer task asks after every group request, and a fake that keeps a
        group per hypothesis example would otherwise scan all of them each time.
        """
        earliest: float | None = None
        for group_id, group in list(self._timed.items()):
            if not group.members and not group.pending and group.rebalance_deadline is None:
                del self._timed[group_id]
                continue
            deadline = group.next_deadline()
            if deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        return earliest

    def tick(self, now: float) -> None:
        """Apply every timer due at *now* (idle groups have none)."""
        for group in list(self._timed.values()):
            group.tick(now)

    # -- JoinGroup -----------------------------------------------------------------------

    def join(
        self,
        now: float,
        group_id: str,
        member_id: str,
        instance_id: str | None,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        session_timeout: float,
        rebalance_timeout: float,
        *,
        client_id: str = "",
        client_host: str = "",
        require_known_member_id: bool = True,
        skip_assignment_ok: bool = False,
    ) -> Waiter[JoinResult]:
        """A JoinGroup: answered at once (an error, MEMBER_ID_REQUIRED, a static member's
        rejoin into a Stable group) or when the rebalance completes.
        """

        def fail(error: int, member: str = member_id) -> Waiter[JoinResult]:
            return Waiter(JoinResult(error, member))

        if not group_id:
            return fail(InvalidGroupIdError.code)
        if not (self.min_session_timeout <= session_timeout <= self.max_session_timeout):
            return fail(InvalidSessionTimeoutError.code)
        if not protocol_type or not protocols:
            return fail(InconsistentGroupProtocolError.code)
        group = self.get(group_id, create=True)
        assert group is not None
        if group.state == DEAD:
            return fail(CoordinatorNotAvailableError.code)
        if group.members and (
            protocol_type != group.protocol_type
            or not set.intersection(
                {n for n, _ in protocols},
                *({n for n, _ in m.protocols} for m in group.members.values()),
            )
        ):
            return fail(InconsistentGroupProtocolError.code)
        fields = (client_id, client_host, session_timeout, rebalance_timeout, protocol_type)

        if not member_id:
            new_id = f"{client_id or 'member'}-{uuid.uuid4()}"
            if instance_id is not None:
                old_id = group.static.get(instance_id)
                if old_id is not None:
                    return self._static_rejoin(
                        now, group, old_id, new_id, protocols, fields, skip_assignment_ok
                    )
            elif require_known_member_id:
                group.pending[new_id] = now + session_timeout
                return fail(MemberIdRequiredError.code, new_id)
            return self._add(now, group, new_id, instance_id, protocols, fields)

        if member_id in group.pending:
            del group.pending[member_id]
            return self._add(now, group, member_id, instance_id, protocols, fields)
        try:
            member = group.validate(member_id, instance_id)
        except _Refused as refused:
            return fail(refused.error)
        changed = member.protocols != list(protocols)
        member.protocols = list(protocols)
        member.session_timeout, member.rebalance_timeout = session_timeout, rebalance_timeout
        member.last_seen = now
        is_leader = member.member_id == group.leader
        if not changed and ((group.state == STABLE and not is_leader) or group.state == COMPLETING):
            # A rejoin without changes into a stable group (a follower's) or a completing
            # one gets the current generation back, as its lost answer would have said.
            everyone: tuple[tuple[str, str | None, bytes], ...] = ()
            if is_leader:
                everyone = tuple(
                    (m.member_id, m.instance_id, m.metadata(group.protocol_name))
                    for m in group.members.values()
                )
            waiter = Waiter(
                JoinResult(
                    0,
                    member_id,
                    group.generation,
                    group.protocol_type,
                    group.protocol_name,
                    group.leader or "",
                    everyone,
                )
            )
            member.join = waiter
            return waiter
        return self._await_join(now, group, member)

    def _add(
        self,
        now: float,
        group: Group,
        member_id: str,
        instance_id: str | None,
        protocols: list[tuple[str, bytes]],
        fields: tuple[str, str, float, float, str],
    ) -> Waiter[JoinResult]:
        client_id, client_host, session_timeout, rebalance_timeout, protocol_type = fields
        member = Member(
            member_id,
            instance_id,
            client_id,
            client_host,
            session_timeout,
            rebalance_timeout,
            protocol_type,
            list(protocols),
            last_seen=now,
        )
        if not group.members:
            group.protocol_type = protocol_type
        group.members[member_id] = member
        if instance_id is not None:
            group.static[instance_id] = member_id
        if group.leader is None:
            group.leader = member_id
        return self._await_join(now, group, member)

    def _await_join(self, now: float, group: Group, member: Member) -> Waiter[JoinResult]:
        if group.state != PREPARING:
            group.prepare(now)
        if member.join is not None and member.join.result is None:
            # The same member joins again before its first join was answered: the old
            # request is superseded (Kafka answers it UNKNOWN_MEMBER_ID as well).
            member.join.result = JoinResult(UnknownMemberIdError.code, member.member_id)
        member.joined = True
        member.join = waiter = Waiter[JoinResult]()
        group.try_complete_join(now)
        return waiter

    def _static_rejoin(
        self,
        now: float,
        group: Group,
        old_id: str,
        new_id: str,
        protocols: list[tuple[str, bytes]],
        fields: tuple[str, str, float, float, str],
        skip_assignment_ok: bool,
    ) -> Waiter[JoinResult]:
        old = group.members.pop(old_id)
        # The old id is fenced: its pending answers are FENCED_INSTANCE_ID.
        if old.join is not None and old.join.result is None:
            old.join.result = JoinResult(FencedInstanceIdError.code, old_id)
        if old.sync is not None and old.sync.result is None:
            old.sync.result = SyncResult(FencedInstanceIdError.code)
        client_id, client_host, session_timeout, rebalance_timeout, protocol_type = fields
        member = Member(
            new_id,
            old.instance_id,
            client_id,
            client_host,
            session_timeout,
            rebalance_timeout,
            protocol_type,
            list(protocols),
            assignment=old.assignment,
            joined=old.joined,
            last_seen=now,
        )
        group.members[new_id] = member
        assert old.instance_id is not None
        group.static[old.instance_id] = new_id
        was_leader = group.leader == old_id
        if was_leader:
            group.leader = new_id
        if group.state == STABLE and group.select_protocol() == group.protocol_name:
            # Kafka keeps the generation whenever the rejoin leaves the group's protocol as
            # it is, even if the member's metadata changed (a restarted member no longer
            # owns anything): that is the point of static membership. A leader that can
            # skip the assignment (JoinGroup v9+, KIP-814) is told it leads; an older one
            # is told the old id leads, so it syncs as a follower and gets its partitions.
            everyone: tuple[tuple[str, str | None, bytes], ...] = ()
            skip = was_leader and skip_assignment_ok
            if skip:
                everyone = tuple(
                    (m.member_id, m.instance_id, m.metadata(group.protocol_name))
                    for m in group.members.values()
                )
            member.join = Waiter(
                JoinResult(
                    0,
                    new_id,
                    group.generation,
                    group.protocol_type,
                    group.protocol_name,
                    old_id if was_leader and not skip else (group.leader or ""),
                    everyone,
                    skip_assignment=skip,
                )
            )
            return member.join
        member.joined = False
        return self._await_join(now, group, member)

    # -- SyncGroup, Heartbeat, LeaveGroup ------------------------------------------------

    def sync(
        self,
        now: float,
        group_id: str,
        generation: int,
        member_id: str,
        instance_id: str | None,
        assignments: dict[str, bytes],
        protocol_type: str | None = None,
        protocol_name: str | None = None,
    ) -> Waiter[SyncResult]:
        """A SyncGroup: the leader's hands out the assignment, the others wait for it."""
        group = self.groups.get(group_id)
        if group is None or group.state == EMPTY:
            return Waiter(SyncResult(UnknownMemberIdError.code))
        try:
            member = group.validate(member_id, instance_id)
        except _Refused as refused:
            return Waiter(SyncResult(refused.error))
        if generation != group.generation:
            return Waiter(SyncResult(IllegalGenerationError.code))
        if (protocol_type is not None and protocol_type != group.protocol_type) or (
            protocol_name is not None and protocol_name != group.protocol_name
        ):
            return Waiter(SyncResult(InconsistentGroupProtocolError.code))
        if group.state == PREPARING:
            return Waiter(SyncResult(RebalanceInProgressError.code))
        member.last_seen = now
        if group.state == STABLE:
            return Waiter(self._sync_result(group, member))
        member.sync = Waiter()
        if member_id == group.leader:
            for m in group.members.values():
                m.assignment = assignments.get(m.member_id, b"")
            group.state = STABLE
            group.rebalance_deadline = None
            for m in group.members.values():
                if m.sync is not None and m.sync.result is None:
                    m.sync.result = self._sync_result(group, m)
        return member.sync

    @staticmethod
    def _sync_result(group: Group, member: Member) -> SyncResult:
        return SyncResult(0, member.assignment, group.protocol_type, group.protocol_name)

    def heartbeat(
        self, now: float, group_id: str, generation: int, member_id: str, instance_id: str | None
    ) -> int:
        """A Heartbeat's error code."""
        group = self.groups.get(group_id)
        if group is None or group.state == EMPTY:
            return UnknownMemberIdError.code
        try:
            member = group.validate(member_id, instance_id)
        except _Refused as refused:
            return refused.error
        if generation != group.generation:
            return IllegalGenerationError.code
        member.last_seen = now
        if group.state == PREPARING:
            return RebalanceInProgressError.code
        return 0

    def leave(
        self, now: float, group_id: str, members: list[tuple[str, str | None]]
    ) -> tuple[int, list[int]]:
        """A LeaveGroup of (member id, instance id) pairs: the request's error and each
        member's (a static member may leave by its instance id alone).
        """
        group = self.groups.get(group_id)
        if group is None:
            # The request itself succeeds; each member is unknown (as Kafka answers).
            return 0, [UnknownMemberIdError.code] * len(members)
        errors = []
        for member_id, instance_id in members:
            if instance_id is not None and not member_id:
                member_id = group.static.get(instance_id, "")
                if not member_id:
                    errors.append(UnknownMemberIdError.code)
                    continue
            try:
                group.validate(member_id, instance_id)
            except _Refused as refused:
                errors.append(refused.error)
                continue
            group.member_left(member_id, now)
            errors.append(0)
        return 0, errors

    # -- offsets -------------------------------------------------------------------------

    def check_commit(
        self, group_id: str, generation: int, member_id: str, instance_id: str | None
    ) -> int:
        """Whether an OffsetCommit may write (0) or its error, by Kafka's order of checks; a
        commit with generation -1 and no member ("simple" commit) writes to an empty or new
        group.
        """
        group = self.groups.get(group_id)
        if group is None:
            if generation < 0:
                self.get(group_id, create=True)
                return 0
            return IllegalGenerationError.code
        if group.state == DEAD:
            return CoordinatorNotAvailableError.code
        if generation < 0 and group.state == EMPTY:
            return 0
        if instance_id is not None and group.static.get(instance_id, member_id) != member_id:
            return FencedInstanceIdError.code
        if group.state == COMPLETING:
            return RebalanceInProgressError.code
        if member_id not in group.members:
            return UnknownMemberIdError.code
        if generation != group.generation:
            return IllegalGenerationError.code
        return 0

    def commit(self, group_id: str, topic: str, partition: int, committed: Committed) -> None:
        """Store a committed offset (after :meth:`check_commit` allowed it)."""
        group = self.get(group_id, create=True)
        assert group is not None
        group.offsets[(topic, partition)] = committed

    def delete(self, group_id: str) -> int:
        """DeleteGroups for one group: 0 once an Empty group is gone with its offsets,
        NON_EMPTY_GROUP in any other state, GROUP_ID_NOT_FOUND if there is no such group.

        As Kafka, only the state counts: member ids handed out with MEMBER_ID_REQUIRED and
        not joined yet do not keep an Empty group.
        """
        group = self.groups.get(group_id)
        if group is None or group.state == DEAD:
            return GroupIdNotFoundError.code
        if group.state != EMPTY:
            return NonEmptyGroupError.code
        del self.groups[group_id]
        self._timed.pop(group_id, None)
        return 0

    def committed(self, group_id: str) -> dict[tuple[str, int], Committed]:
        """A group's committed offsets."""
        group = self.groups.get(group_id)
        return {} if group is None else dict(group.offsets)
