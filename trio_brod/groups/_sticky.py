"""The sticky assignment: Java's ``AbstractStickyAssignor``, step for step.

The cooperative-sticky assignor must give Java's answer, and Java's answer depends on more
than the sorting rules: in places it takes members in the iteration order of a
``java.util.HashMap`` (which member keeps its surplus partitions when several own more than
their share) or takes the first element of a ``HashSet`` (which partition moves back when
two members swap). So those orders are computed here as Java's ``HashMap`` would have them:
by hash bucket for the table size the map would have grown to, then by insertion order.
The input mapping's order stands for the JoinGroup response's, which is the order in which
Java's coordinator fills its map. (Buckets Java turns into trees, with eight or more keys
colliding in a table of 64 or more slots, are not modelled: their order is Java's only as
long as that does not happen.)

Two paths, as in Java:

* constrained: every member subscribes to the same topics. Each member keeps its owned
  partitions up to its quota (``floor`` or ``ceil`` of partitions / members), and the rest
  go round-robin to the members below quota.
* general: subscriptions differ. Owned partitions are kept where still subscribed, the
  others given to the least loaded subscriber, then partitions are moved one at a time
  while that improves the balance, preferring to undo an earlier move.

Not modelled, as they need replica racks: rack-aware assignment. Inputs Java would crash on
or corrupt (an owned partition that does not exist, a member claiming a partition twice)
are cleaned first: such partitions are ignored.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence

from trio_brod.groups._protocol import MemberSubscription, TopicPartition, java_string_key

__all__ = ["java_hash_order", "java_string_hash", "sticky_assign"]

_MASK = 0xFFFFFFFF
_INT32 = struct.Struct(">i")
_DEFAULT_GENERATION = -1


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode``, as an unsigned 32-bit int."""
    h = 0
    encoded = java_string_key(text)
    for i in range(0, len(encoded), 2):
        h = (31 * h + (encoded[i] << 8 | encoded[i + 1])) & _MASK
    return h


def _tp_hash(tp: TopicPartition) -> int:
    # TopicPartition.hashCode: 31 * (31 + partition) + topic.hashCode(), on ints.
    return (31 * ((31 + tp[1]) & _MASK) + java_string_hash(tp[0])) & _MASK


def _bucket(h: int, capacity: int) -> int:
    # HashMap.hash spreads the high half into the low one, then masks by the table size.
    return (h ^ (h >> 16)) & (capacity - 1)


def _grown_capacity(size: int) -> int:
    """The table size of a default HashMap after ``size`` insertions."""
    capacity = 16
    while size > capacity * 3 // 4:
        capacity *= 2
    return capacity


def java_hash_order(keys: Sequence[str]) -> list[str]:
    """``keys`` (distinct, in insertion order) in the iteration order of a default
    ``HashMap<String, ?>`` they were put into."""
    capacity = _grown_capacity(len(keys))
    return sorted(keys, key=lambda key: _bucket(java_string_hash(key), capacity))


class _JavaHashSet:
    """The part of a ``HashSet<TopicPartition>`` the algorithm looks at: which element its
    iterator gives first."""

    __slots__ = ("_capacity", "_items", "_seq")

    def __init__(self) -> None:
        self._items: dict[TopicPartition, int] = {}
        self._capacity = 16
        self._seq = 0

    def add(self, tp: TopicPartition) -> None:
        if tp in self._items:
            return
        self._items[tp] = self._seq
        self._seq += 1
        if len(self._items) > self._capacity * 3 // 4:
            self._capacity *= 2

    def remove(self, tp: TopicPartition) -> None:
        del self._items[tp]

    def __bool__(self) -> bool:
        return bool(self._items)

    def first(self) -> TopicPartition:
        capacity = self._capacity
        return min(self._items, key=lambda tp: (_bucket(_tp_hash(tp), capacity), self._items[tp]))


def _member_generation(s: MemberSubscription) -> int | None:
    """``CooperativeStickyAssignor.memberData``'s generation: the subscription's (v2+),
    else the int32 in the user data (-1 if that is unreadable), else none."""
    if s.generation_id >= 0:
        return s.generation_id
    if s.user_data is None:
        return None
    if len(s.user_data) < 4:
        return _DEFAULT_GENERATION
    generation: int = _INT32.unpack_from(s.user_data)[0]
    return generation


def _subscription_generation(s: MemberSubscription) -> int:
    return s.generation_id if s.generation_id >= 0 else _DEFAULT_GENERATION


def _valid_owned(s: MemberSubscription, topics: Mapping[str, int]) -> list[TopicPartition]:
    # The owned partitions of known topics (Java's filter), less nonexistent ones and
    # repeats (Java would hand out a nonexistent partition, or drop a repeated one for all).
    seen: set[TopicPartition] = set()
    owned: list[TopicPartition] = []
    for tp in s.owned_partitions:
        count = topics.get(tp[0])
        if count is not None and 0 <= tp[1] < count and tp not in seen:
            seen.add(tp)
            owned.append(tp)
    return owned


def sticky_assign(
    topics: Mapping[str, int], subscriptions: Mapping[str, MemberSubscription]
) -> tuple[dict[str, list[TopicPartition]], dict[TopicPartition, str] | None]:
    """The sticky assignment of ``topics`` (the subscribed topics with partitions) to the
    members, and the partitions changing owner with their new owner, or None where Java
    leaves it to be computed from the result (the general path)."""
    if not subscriptions:
        return {}, {}
    members = java_hash_order(list(subscriptions))
    owned: dict[str, list[TopicPartition]] = {}
    multiply_owned: set[TopicPartition] = set()
    owner_of: dict[TopicPartition, str] = {}
    subscribed: set[str] = set()
    all_equal = True
    max_generation = _DEFAULT_GENERATION
    for member in members:
        s = subscriptions[member]
        if not subscribed:
            subscribed.update(s.topics)
        elif all_equal and (
            len(s.topics) != len(subscribed) or not subscribed.issuperset(s.topics)
        ):
            all_equal = False
        generation = _member_generation(s)
        member_generation = _DEFAULT_GENERATION if generation is None else generation
        max_generation = max(max_generation, member_generation)
        mine: list[TopicPartition] = []
        owned[member] = mine
        for tp in _valid_owned(s, topics):
            other = owner_of.get(tp)
            if other is None:
                mine.append(tp)
                owner_of[tp] = member
                continue
            other_generation = _subscription_generation(subscriptions[other])
            if member_generation == other_generation:
                # Two owners in one generation: neither keeps it.
                multiply_owned.add(tp)
                if tp in owned[other]:
                    owned[other].remove(tp)
                owner_of[tp] = member
            elif member_generation > other_generation:
                mine.append(tp)
                if tp in owned[other]:
                    owned[other].remove(tp)
                owner_of[tp] = member
    if all_equal:
        return _Constrained(topics, owned, multiply_owned).build()
    general = _General(topics, subscriptions, members, owned, max_generation)
    return general.build(), None


def _sorted_partitions(topics: Iterable[str], counts: Mapping[str, int]) -> list[TopicPartition]:
    return [(topic, p) for topic in topics for p in range(counts[topic])]


class _Constrained:
    """Java's ``ConstrainedAssignmentBuilder``: all members subscribe to the same topics."""

    def __init__(
        self,
        topics: Mapping[str, int],
        owned: dict[str, list[TopicPartition]],
        multiply_owned: set[TopicPartition],
    ) -> None:
        self.topics = topics
        self.owned = owned  # in the member map's Java order
        self.multiply_owned = multiply_owned
        total = sum(topics.values())
        n = len(owned)
        self.min_quota = total // n
        self.max_quota = -(-total // n)
        self.expected_over = total % n
        self.current_over = 0
        self.assignment: dict[str, list[TopicPartition]] = {member: [] for member in owned}
        self.maybe_revoked: dict[TopicPartition, str] = {}
        self.transferring: dict[TopicPartition, str] = {}
        self.under: list[str] = []
        self.exactly_min: list[str] = []

    def build(self) -> tuple[dict[str, list[TopicPartition]], dict[TopicPartition, str]]:
        assigned = self._assign_owned()
        unassigned = [
            tp
            for tp in _sorted_partitions(sorted(self.topics, key=java_string_key), self.topics)
            if tp not in assigned
        ]
        self.under.sort(key=java_string_key)
        self.exactly_min.sort(key=java_string_key)
        self._assign_round_robin(unassigned)
        return self.assignment, self.transferring

    def _assign_owned(self) -> set[TopicPartition]:
        assigned: set[TopicPartition] = set()
        for member, claimed in self.owned.items():
            mine = sorted(claimed, key=lambda tp: (tp[1], java_string_key(tp[0])))
            mine = [tp for tp in mine if tp not in self.multiply_owned]
            if len(mine) < self.min_quota:
                keep = mine
                self.under.append(member)
            elif len(mine) >= self.max_quota and self.current_over < self.expected_over:
                self.current_over += 1
                if self.current_over == self.expected_over:
                    self.exactly_min.clear()
                keep = mine[: self.max_quota]
            else:
                keep = mine[: self.min_quota]
                if self.current_over < self.expected_over:
                    self.exactly_min.append(member)
            for tp in mine[len(keep) :]:
                self.maybe_revoked[tp] = member
            self.assignment[member].extend(keep)
            assigned.update(keep)
        return assigned

    def _assign_round_robin(self, unassigned: list[TopicPartition]) -> None:
        # Java walks `under` with an iterator it removes through and restarts; `cursor` is
        # that iterator's position.
        cursor = 0
        for tp in unassigned:
            if cursor < len(self.under):
                member = self.under[cursor]
                cursor += 1
            elif not self.under and not self.exactly_min:
                raise AssertionError(f"no member left for {tp}: the quotas are wrong")
            elif not self.under:
                member = self.exactly_min.pop(0)
            else:
                member = self.under[0]
                cursor = 1
            count = self._assign_new(tp, member)
            if count == self.min_quota:
                cursor -= 1
                del self.under[cursor]
                self.exactly_min.append(member)
            elif count == self.max_quota:
                self.current_over += 1

    def _assign_new(self, tp: TopicPartition, member: str) -> int:
        partitions = self.assignment[member]
        partitions.append(tp)
        previous = self.maybe_revoked.get(tp)
        if (previous is not None and previous != member) or tp in self.multiply_owned:
            self.transferring[tp] = member
        return len(partitions)


class _Movements:
    """Java's ``PartitionMovements``: which partitions moved between which members, to move
    a partition back rather than swap two."""

    def __init__(self) -> None:
        self.by_topic: dict[str, dict[tuple[str, str], _JavaHashSet]] = {}
        self.moves: dict[TopicPartition, tuple[str, str]] = {}

    def _remove(self, tp: TopicPartition) -> tuple[str, str]:
        pair = self.moves.pop(tp)
        pairs = self.by_topic[tp[0]]
        pairs[pair].remove(tp)
        if not pairs[pair]:
            del pairs[pair]
        if not pairs:
            del self.by_topic[tp[0]]
        return pair

    def _add(self, tp: TopicPartition, pair: tuple[str, str]) -> None:
        self.moves[tp] = pair
        self.by_topic.setdefault(tp[0], {}).setdefault(pair, _JavaHashSet()).add(tp)

    def move(self, tp: TopicPartition, old: str, new: str) -> None:
        if tp in self.moves:
            source, _ = self._remove(tp)
            if source != new:
                self._add(tp, (source, new))
        else:
            self._add(tp, (old, new))

    def partition_to_move(self, tp: TopicPartition, old: str, new: str) -> TopicPartition:
        pairs = self.by_topic.get(tp[0])
        if pairs is None:
            return tp
        if tp in self.moves:
            old = self.moves[tp][0]
        reverse = pairs.get((new, old))
        return tp if reverse is None else reverse.first()


class _General:
    """Java's ``GeneralAssignmentBuilder``: members subscribe to different topics."""

    def __init__(
        self,
        topics: Mapping[str, int],
        subscriptions: Mapping[str, MemberSubscription],
        members: list[str],
        owned: dict[str, list[TopicPartition]],
        max_generation: int,
    ) -> None:
        self.topics = topics
        self.total = sum(topics.values())
        self.subscriptions = subscriptions
        self.members = members  # Java's iteration order of the subscriptions
        self.max_generation = max_generation
        self.topic_members: dict[str, list[str]] = {topic: [] for topic in topics}
        self.member_topics: dict[str, list[str]] = {}
        for member in members:
            mine = [topic for topic in subscriptions[member].topics if topic in topics]
            self.member_topics[member] = mine
            for topic in mine:
                self.topic_members[topic].append(member)
        self.current = owned
        self.owner: dict[TopicPartition, str] = {
            tp: member for member, partitions in owned.items() for tp in partitions
        }
        sorted_topics = sorted(
            topics, key=lambda t: (len(self.topic_members[t]), java_string_key(t))
        )
        self.sorted_partitions = _sorted_partitions(sorted_topics, topics)
        self.active: set[str] = set()  # Java's sortedCurrentSubscriptions, sorted on demand
        self.movements = _Movements()
        self.revocation_required = False

    def _by_load(self) -> list[str]:
        return sorted(self.active, key=lambda m: (len(self.current[m]), java_string_key(m)))

    def build(self) -> dict[str, list[TopicPartition]]:
        previous = self._previous_owners()
        assigned = self._keep_owned()
        unassigned = [tp for tp in self.sorted_partitions if tp not in assigned]
        self.active.update(self.current)
        self._balance(previous, unassigned)
        return self.current

    def _previous_owners(self) -> dict[TopicPartition, tuple[str, int]]:
        """Owners from older generations: where a partition goes back to rather than on."""
        previous: dict[TopicPartition, tuple[str, int]] = {}
        for member in self.members:
            s = self.subscriptions[member]
            generation = _member_generation(s)
            if generation is not None and generation < self.max_generation:
                claimed = generation
            elif generation is None and self.max_generation > _DEFAULT_GENERATION:
                claimed = _DEFAULT_GENERATION
            else:
                continue
            for tp in s.owned_partitions:
                known = previous.get(tp)
                if known is None or claimed > known[1]:
                    previous[tp] = (member, claimed)
        return previous

    def _keep_owned(self) -> set[TopicPartition]:
        assigned: set[TopicPartition] = set()
        for member, partitions in self.current.items():
            still = set(self.subscriptions[member].topics)
            kept = [tp for tp in partitions if tp[0] in still]
            if len(kept) != len(partitions):
                # Java leaves the dropped partitions' owner entries; the partitions are
                # unassigned and get a new owner below, which overwrites them.
                self.revocation_required = True
                partitions[:] = kept
            assigned.update(kept)
        return assigned

    def _max_size(self, member: str) -> int:
        mine = self.member_topics[member]
        if len(mine) == len(self.topics):
            return self.total
        return sum(self.topics[topic] for topic in mine)

    def _can_move_topic(self, topic: str) -> bool:
        return len(self.topic_members[topic]) >= 2

    def _can_member_change(self, member: str) -> bool:
        partitions = self.current[member]
        if len(partitions) < self._max_size(member):
            return True
        return any(self._can_move_topic(tp[0]) for tp in partitions)

    def _give(self, tp: TopicPartition) -> None:
        for member in self._by_load():
            if tp[0] in self.member_topics[member]:
                self.current[member].append(tp)
                self.owner[tp] = member
                return

    def _balance(
        self, previous: dict[TopicPartition, tuple[str, int]], unassigned: list[TopicPartition]
    ) -> None:
        initializing = not self.current[self._by_load()[-1]]
        for tp in unassigned:
            if self.topic_members[tp[0]]:
                self._give(tp)
        fixed_topics = {topic for topic in self.topics if not self._can_move_topic(topic)}
        movable = [tp for tp in self.sorted_partitions if tp[0] not in fixed_topics]
        unassigned = [tp for tp in unassigned if tp[0] not in fixed_topics]
        fixed: dict[str, list[TopicPartition]] = {}
        for member in self.members:
            if not self._can_member_change(member):
                self.active.discard(member)
                fixed[member] = self.current.pop(member)
        before = {member: list(partitions) for member, partitions in self.current.items()}
        before_owner = dict(self.owner)
        if not self.revocation_required:
            self._reassign(unassigned, previous)
        moved = self._reassign(movable, previous)
        if not initializing and moved and _score(self.current) >= _score(before):
            self.current.clear()
            self.current.update(before)
            self.owner = before_owner
        self.current.update(fixed)

    def _is_balanced(self) -> bool:
        by_load = self._by_load()
        if len(self.current[by_load[0]]) >= len(self.current[by_load[-1]]) - 1:
            return True
        owner = {tp: member for member, partitions in self.current.items() for tp in partitions}
        for member in by_load:
            partitions = self.current[member]
            count = len(partitions)
            if count == self._max_size(member):
                continue
            mine = set(partitions)
            for topic in self.member_topics[member]:
                for p in range(self.topics[topic]):
                    tp = (topic, p)
                    if tp in mine:
                        continue
                    other = owner.get(tp)
                    if other is not None and count + 1 < len(self.current[other]):
                        return False
        return True

    def _reassign(
        self, partitions: list[TopicPartition], previous: dict[TopicPartition, tuple[str, int]]
    ) -> bool:
        performed = False
        modified = True
        while modified:
            modified = False
            for tp in partitions:
                if self._is_balanced():
                    break
                member = self.owner[tp]
                count = len(self.current[member])
                earlier = previous.get(tp)
                if (
                    earlier is not None
                    and earlier[0] in self.current
                    and count > len(self.current[earlier[0]]) + 1
                ):
                    self._move(tp, earlier[0])
                    performed = modified = True
                    continue
                for other in self.topic_members[tp[0]]:
                    if count > len(self.current[other]) + 1:
                        target = next(m for m in self._by_load() if tp[0] in self.member_topics[m])
                        self._move(tp, target)
                        performed = modified = True
                        break
        return performed

    def _move(self, tp: TopicPartition, new: str) -> None:
        tp = self.movements.partition_to_move(tp, self.owner[tp], new)
        old = self.owner[tp]
        self.movements.move(tp, old, new)
        self.current[old].remove(tp)
        self.current[new].append(tp)
        self.owner[tp] = new


def _score(assignment: Mapping[str, list[TopicPartition]]) -> int:
    """Java's balance score: the sum over pairs of members of their sizes' difference."""
    sizes = [len(partitions) for partitions in assignment.values()]
    return sum(abs(a - b) for i, a in enumerate(sizes) for b in sizes[i + 1 :])
