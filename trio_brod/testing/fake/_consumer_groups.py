"""The fake Kafka's KIP-848 consumer groups (ConsumerGroupHeartbeat), as pure state.

Like :mod:`._groups`, every operation takes ``now`` and answers at once; timers are
:meth:`ConsumerGroups.next_deadline` / :meth:`ConsumerGroups.tick`. Kafka's rules, reduced to
what a client observes:

* the group epoch grows whenever the target assignment changes (a member joins, leaves,
  is evicted, changes its subscription, or a subscribed topic grows);
* the target assignment is the server-side ``uniform`` assignor's: partitions spread evenly,
  members keep what they own where the balance allows;
* a member reconciles toward its target one step per heartbeat, revoke before assign: it is
  first told the assignment without the partitions it must give up (its epoch unchanged);
  once a heartbeat shows it no longer owns them, it moves to the group's epoch and gets the
  new partitions that no other member still holds (the rest follow when released);
* a member that does not heartbeat for the session timeout, or does not give up its
  partitions within its rebalance timeout, is removed;
* epoch 0 joins, -1 leaves, -2 (static members) leaves for now: the instance's assignment
  waits for it to come back within the session timeout under a new member id.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from trio_brod.protocol.errors import (
    FencedMemberEpochError,
    GroupIdNotFoundError,
    InvalidRequestError,
    StaleMemberEpochError,
    UnknownMemberIdError,
    UnreleasedInstanceIdError,
)

__all__ = ["ConsumerGroup", "ConsumerGroups", "ConsumerMember", "HeartbeatResult", "uniform"]

TopicPartition = tuple[str, int]
#: group.consumer.session.timeout.ms and group.consumer.heartbeat.interval.ms defaults.
SESSION_TIMEOUT, HEARTBEAT_INTERVAL = 45.0, 5.0
_LEAVE, _LEAVE_STATIC = -1, -2


@dataclass(frozen=True)
class HeartbeatResult:
    """A ConsumerGroupHeartbeat answer (``assignment`` None: unchanged, not sent)."""

    error: int
    member_id: str = ""
    member_epoch: int = 0
    assignment: frozenset[TopicPartition] | None = None


@dataclass
class ConsumerMember:
    """A KIP-848 member: its subscription, epoch and what it was told it owns."""

    member_id: str
    instance_id: str | None
    rebalance_timeout: float
    topics: tuple[str, ...] = ()
    regex: str | None = None
    epoch: int = 0
    previous_epoch: int = -1
    assigned: frozenset[TopicPartition] = frozenset()
    revoking: frozenset[TopicPartition] = frozenset()
    revoke_deadline: float | None = None
    last_seen: float = 0.0
    #: Left with epoch -2 (a static member's temporary leave).
    away: bool = False
    #: The client id of the request that joined it (ConsumerGroupDescribe shows it).
    client_id: str = ""

    def subscribes(self, topic: str) -> bool:
        """Whether the member's subscription covers *topic*."""
        if topic in self.topics:
            return True
        return self.regex is not None and re.fullmatch(self.regex, topic) is not None


@dataclass
class ConsumerGroup:
    """A consumer group's epoch, members, target assignment and committed offsets."""

    group_id: str
    epoch: int = 0
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    static: dict[str, str] = field(default_factory=dict)
    target: dict[str, frozenset[TopicPartition]] = field(default_factory=dict)

    @property
    def state(self) -> str:
        """Kafka's consumer group states: Empty, Reconciling or Stable."""
        if not self.members:
            return "Empty"
        settled = all(
            m.epoch == self.epoch and not m.revoking and m.assigned == self.target.get(k)
            for k, m in self.members.items()
        )
        return "Stable" if settled else "Reconciling"


def uniform(
    members: Mapping[str, ConsumerMember],
    partitions: Mapping[str, int],
    current: Mapping[str, frozenset[TopicPartition]],
) -> dict[str, frozenset[TopicPartition]]:
    """The uniform assignor: every subscribed partition to one subscribed member, counts as
    even as the subscriptions allow, current owners kept where that does not unbalance.
    """
    names = sorted(members)
    wanted = sorted(
        (t, p)
        for t, n in partitions.items()
        if any(members[m].subscribes(t) for m in names)
        for p in range(n)
    )
    result: dict[str, set[TopicPartition]] = {m: set() for m in names}
    if not names:
        return {}
    base, extra = divmod(len(wanted), len(names))
    taken: set[TopicPartition] = set()
    valid = set(wanted)
    for m in names:
        for tp in sorted(current.get(m, frozenset())):
            if tp not in valid or tp in taken or not members[m].subscribes(tp[0]):
                continue
            if len(result[m]) < base or (len(result[m]) == base and extra > 0):
                if len(result[m]) == base:
                    extra -= 1
                result[m].add(tp)
                taken.add(tp)
    for tp in wanted:
        if tp in taken:
            continue
        candidates = [m for m in names if members[m].subscribes(tp[0])]
        owner = min(candidates, key=lambda m: (len(result[m]), m))
        result[owner].add(tp)
    return {m: frozenset(ps) for m, ps in result.items()}


@dataclass
class ConsumerGroups:
    """Every KIP-848 group of the fake cluster."""

    groups: dict[str, ConsumerGroup] = field(default_factory=dict)
    session_timeout: float = SESSION_TIMEOUT
    heartbeat_interval: float = HEARTBEAT_INTERVAL

    def heartbeat(
        self,
        now: float,
        group_id: str,
        member_id: str,
        epoch: int,
        instance_id: str | None,
        rebalance_timeout: float,
        topics: list[str] | None,
        regex: str | None,
        owned: frozenset[TopicPartition] | None,
        partitions: Mapping[str, int],
        *,
        member_id_from_client: bool = True,
        client_id: str = "",
    ) -> HeartbeatResult:
        """A ConsumerGroupHeartbeat; *partitions* is every topic's partition count now."""
        if not group_id:
            return HeartbeatResult(InvalidRequestError.code)
        group = self.groups.setdefault(group_id, ConsumerGroup(group_id))
        if epoch in (_LEAVE, _LEAVE_STATIC):
            return self._leave(now, group, member_id, epoch, partitions)
        if epoch == 0:
            joined = self._join(
                now, group, member_id, instance_id, rebalance_timeout, member_id_from_client
            )
            if isinstance(joined, HeartbeatResult):
                return joined
            member = joined
            member.client_id = client_id
            if topics is None and regex is None and not member.topics and member.regex is None:
                return HeartbeatResult(InvalidRequestError.code, member_id)
        else:
            found = group.members.get(member_id)
            if found is None or found.away:
                return HeartbeatResult(UnknownMemberIdError.code, member_id)
            member = found
            if epoch > member.epoch or (
                epoch < member.epoch
                and not (
                    epoch == member.previous_epoch and (owned is None or owned <= member.assigned)
                )
            ):
                return HeartbeatResult(FencedMemberEpochError.code, member_id)
        member.last_seen = now
        if topics is not None:
            member.topics = tuple(topics)
        if regex is not None:
            member.regex = regex or None
        if rebalance_timeout > 0:
            member.rebalance_timeout = rebalance_timeout
        self._retarget(group, partitions)
        return self._reconcile(now, group, member, owned, full=epoch == 0)

    def _join(
        self,
        now: float,
        group: ConsumerGroup,
        member_id: str,
        instance_id: str | None,
        rebalance_timeout: float,
        member_id_from_client: bool,
    ) -> ConsumerMember | HeartbeatResult:
        if not member_id:
            if member_id_from_client:
                return HeartbeatResult(InvalidRequestError.code)
            member_id = str(uuid.uuid4())
        existing = group.members.get(member_id)
        if existing is not None:
            return existing
        member = ConsumerMember(member_id, instance_id, rebalance_timeout, last_seen=now)
        if instance_id is not None and instance_id in group.static:
            old = group.members[group.static[instance_id]]
            if not old.away:
                return HeartbeatResult(UnreleasedInstanceIdError.code, member_id)
            # The static member is back: it takes over the old id's place and assignment.
            del group.members[old.member_id]
            member.epoch, member.assigned = old.epoch, old.assigned
            member.topics, member.regex = old.topics, old.regex
            if old.member_id in group.target:
                group.target[member_id] = group.target.pop(old.member_id)
        group.members[member_id] = member
        if instance_id is not None:
            group.static[instance_id] = member_id
        return member

    def _leave(
        self,
        now: float,
        group: ConsumerGroup,
        member_id: str,
        epoch: int,
        partitions: Mapping[str, int],
    ) -> HeartbeatResult:
        member = group.members.get(member_id)
        if member is None:
            return HeartbeatResult(UnknownMemberIdError.code, member_id)
        if epoch == _LEAVE_STATIC and member.instance_id is not None:
            member.away, member.last_seen = True, now
        else:
            self.remove(group, member_id, partitions)
        return HeartbeatResult(0, member_id, epoch)

    def remove(self, group: ConsumerGroup, member_id: str, partitions: Mapping[str, int]) -> None:
        """Remove a member (left, evicted or fenced) and move the target assignment on."""
        member = group.members.pop(member_id, None)
        if member is None:
            return
        if member.instance_id is not None and group.static.get(member.instance_id) == member_id:
            del group.static[member.instance_id]
        group.target.pop(member_id, None)
        self._retarget(group, partitions, force=True)

    def _retarget(
        self, group: ConsumerGroup, partitions: Mapping[str, int], *, force: bool = False
    ) -> None:
        target = uniform(group.members, partitions, group.target)
        if force or target != group.target:
            group.epoch += 1
            group.target = target

    def _reconcile(
        self,
        now: float,
        group: ConsumerGroup,
        member: ConsumerMember,
        owned: frozenset[TopicPartition] | None,
        *,
        full: bool,
    ) -> HeartbeatResult:
        before = (member.epoch, member.assigned)
        if member.revoking:
            if owned is not None and not owned & member.revoking:
                member.revoking, member.revoke_deadline = frozenset(), None
            else:
                return self._answer(member, full)
        target = group.target.get(member.member_id, frozenset())
        if member.epoch < group.epoch or member.assigned != target:
            revoke = member.assigned - target
            if revoke:
                member.assigned -= revoke
                member.revoking = revoke
                member.revoke_deadline = now + member.rebalance_timeout
            else:
                held: set[TopicPartition] = set()
                for other in group.members.values():
                    if other is not member:
                        held |= other.assigned | other.revoking
                if member.epoch != group.epoch:
                    member.previous_epoch, member.epoch = member.epoch, group.epoch
                member.assigned = (member.assigned & target) | (target - held)
        changed = (member.epoch, member.assigned) != before
        stale_view = owned is not None and owned != member.assigned and not member.revoking
        return self._answer(member, full or changed or stale_view)

    @staticmethod
    def _answer(member: ConsumerMember, send: bool) -> HeartbeatResult:
        return HeartbeatResult(0, member.member_id, member.epoch, member.assigned if send else None)

    # -- offsets, timers, faults ---------------------------------------------------------

    def check_commit(self, group_id: str, member_id: str, epoch: int) -> int | None:
        """An OffsetCommit's error for a consumer group (None: no such consumer group)."""
        group = self.groups.get(group_id)
        if group is None or not group.members:
            return None
        if epoch < 0 and not member_id:
            return UnknownMemberIdError.code
        member = group.members.get(member_id)
        if member is None:
            return UnknownMemberIdError.code
        if epoch != member.epoch:
            return StaleMemberEpochError.code
        return 0

    def owns(self, group_id: str) -> bool:
        """Whether *group_id* is a consumer group with members."""
        group = self.groups.get(group_id)
        return group is not None and bool(group.members)

    def forget_empty(self, group_id: str) -> bool:
        """Remove a consumer group that has no members (DeleteGroups); False if there was
        none. Its committed offsets are the classic groups' to delete."""
        group = self.groups.get(group_id)
        if group is None or group.members:
            return False
        del self.groups[group_id]
        return True

    def refuse_classic(self, group_id: str) -> int:
        """A classic request to a live consumer group: GROUP_ID_NOT_FOUND (the fake does not
        convert groups between protocols).
        """
        return GroupIdNotFoundError.code if self.owns(group_id) else 0

    def next_deadline(self) -> float | None:
        """When the next session or revocation timer fires."""
        deadlines = []
        for group in self.groups.values():
            for m in group.members.values():
                deadlines.append(m.last_seen + self.session_timeout)
                if m.revoke_deadline is not None:
                    deadlines.append(m.revoke_deadline)
        return min(deadlines, default=None)

    def tick(self, now: float, partitions: Mapping[str, int]) -> None:
        """Evict the members whose session or revocation time ran out."""
        for group in self.groups.values():
            for m in list(group.members.values()):
                late = m.revoke_deadline is not None and now >= m.revoke_deadline
                if late or now >= m.last_seen + self.session_timeout:
                    self.remove(group, m.member_id, partitions)

    def expire(self, group_id: str, member_id: str, partitions: Mapping[str, int]) -> bool:
        """Evict a member now (False if it is none)."""
        group = self.groups.get(group_id)
        if group is None or member_id not in group.members:
            return False
        self.remove(group, member_id, partitions)
        return True
