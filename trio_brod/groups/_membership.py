"""The group member's state machine: every decision of the classic group protocol, no I/O.

A member of a Kafka consumer group (classic protocol: JoinGroup, SyncGroup, Heartbeat,
LeaveGroup, OffsetCommit) has to decide, after each response, whether it is still in its
generation, which partitions it must give up (and whether it may still commit for them), when
to join again and when to give up. Those decisions are made here, in a plain class with no
sockets, no Trio and no clock, modelled on the facts of Java's ``AbstractCoordinator`` and
``ConsumerCoordinator``; the member task (``groups/member.py``) only carries them out. Being
pure, the rules can be tested against a model of the broker's group with hypothesis.

The driver's contract
---------------------

Every event method returns a tuple of :data:`Action` values. The driver carries them out in
order:

==========================  ==================================================================
Action                      What the driver does
==========================  ==================================================================
:class:`FindCoordinator`    Look the group coordinator up (with its own retries), then call
                            :meth:`Membership.coordinator_found`.
:class:`Rejoin`             Wait one backoff if ``after_backoff``, then call
                            :meth:`Membership.join`.
:class:`SendJoin`           Send JoinGroup with these fields (the subscription metadata
                            carries ``owned_partitions`` and ``generation_id``), then call
                            :meth:`Membership.on_join_response`.
:class:`SendSync`           Send SyncGroup (as leader: run the assignor over the JoinGroup
                            response's members, unless ``skip_assignment``), then call
                            :meth:`Membership.on_sync_response`.
:class:`Revoke`             Stop the workers of ``partitions``: if ``lost``, cancel them at
                            once and commit nothing for them; otherwise let each finish its
                            current message and, if ``commit_first``, commit their offsets
                            with ``generation`` (checking :meth:`Membership.may_commit`).
                            Then call :meth:`Membership.revoked` with the action. A Revoke is
                            always the last action of its tuple: what follows it comes from
                            ``revoked``.
:class:`Assign`             Start workers for ``partitions`` (of ``generation``).
:class:`Stable`             The rebalance is complete: heartbeats go on with ``generation``.
:class:`SendLeave`          Send LeaveGroup (best effort; the response changes nothing).
:class:`Left`               The member has left: nothing more will happen.
:class:`Fatal`              Stop the member and raise ``error`` (after calling
                            :meth:`Membership.leave`, which then sends no LeaveGroup).
==========================  ==================================================================

Besides, every heartbeat interval the driver calls :meth:`Membership.heartbeat` (it returns
the request to send, or None) and :meth:`Membership.on_heartbeat_response`, or
:meth:`Membership.session_expired` when no heartbeat succeeded for a session timeout; a
committer checks :meth:`Membership.may_commit` before sending and reports group-level
errors to :meth:`Membership.on_commit_response`; a failed connection to the coordinator is
reported to :meth:`Membership.coordinator_lost`.

States
------

``UNJOINED`` (not in a generation, or about to join again), ``PREPARING_REBALANCE``
(JoinGroup sent), ``COMPLETING_REBALANCE`` (SyncGroup sent), ``STABLE`` (in a generation, with
an assignment), ``LEFT`` and ``FAILED`` (final). Apart from the state the member keeps: the
generation (:class:`Generation`), the partitions it owns, whether a rejoin is needed, whether
the coordinator is known, and at most one pending revocation.

Rebalance protocol: ``"cooperative"`` if every configured assignor supports it, else
``"eager"`` (as Java decides). Eager: every partition is revoked, with a commit, before
JoinGroup. Cooperative (KIP-429): partitions are kept through the rebalance; after SyncGroup
only those the new assignment no longer holds are revoked, and if any were, the member joins
again at once so that the assignor can give them to their new owner.

Transitions
-----------

"lost" means: generation reset (id -1, and the member id too where said), every owned
partition revoked with ``lost=True`` (no commit), state ``UNJOINED``, rejoin needed.
"coordinator unknown" means: emit FindCoordinator, keep the generation; a JoinGroup or
SyncGroup in flight is given up (state ``UNJOINED``, rejoin needed). "fatal" means: every owned
partition lost, state ``FAILED``, then :class:`Fatal`.

==========================  =========================================  ========================
Event (state)               Outcome                                    Java's rule
==========================  =========================================  ========================
start (UNJOINED)            FindCoordinator, then Rejoin               ensureCoordinatorReady
join (UNJOINED/STABLE)      eager, owning partitions: Revoke(all,      onJoinPrepare
                            commit_first); then SendJoin,
                            PREPARING_REBALANCE
join response ok            generation set, COMPLETING_REBALANCE,      JoinGroupResponseHandler
(PREPARING)                 SendSync(as_leader = member is leader)
join: MEMBER_ID_REQUIRED    member id := the one given, Rejoin now     KIP-394
join: UNKNOWN_MEMBER_ID     lost, member id reset, Rejoin now          resetState(true)
join: REBALANCE_IN_PROG.    UNJOINED, Rejoin now                       retried at once
join: COORD_LOAD_IN_PROG.   UNJOINED, Rejoin after backoff             retriable
join: NOT_COORDINATOR,      coordinator unknown                        markCoordinatorUnknown
COORDINATOR_NOT_AVAILABLE
join: FENCED_INSTANCE_ID,   fatal                                      fatal errors of join
INCONSISTENT_GROUP_PROT.,
GROUP_AUTHORIZATION_F.,
GROUP_MAX_SIZE_REACHED,
INVALID_SESSION_TIMEOUT,
INVALID_GROUP_ID, others
sync response ok            STABLE; Assign(new - owned), Stable;       onJoinComplete
(COMPLETING)                cooperative, if the new assignment drops
                            owned partitions: Revoke(them,
                            commit_first), then Rejoin now (eager
                            owns nothing at this point)
sync: REBALANCE_IN_PROG.    UNJOINED, Rejoin now (partitions kept)     SyncGroupResponseHandler
sync: UNKNOWN_MEMBER_ID     lost, member id reset
sync: ILLEGAL_GENERATION    lost, member id kept
heartbeat ok                nothing
heartbeat: REBALANCE_IN_P.  STABLE: Rejoin now (eager revokes in       HeartbeatResponseHandler
                            join); COMPLETING: ignored
heartbeat: ILLEGAL_GEN.     lost, member id kept, Rejoin now
heartbeat: UNKNOWN_MEMBER   lost, member id reset, Rejoin now
heartbeat: FENCED_INST.     fatal
heartbeat: coordinator      coordinator unknown (STABLE stays STABLE:
errors                      heartbeats resume once it is found)
session expired             lost, member id reset, coordinator         sessionTimeoutExpired
                            unknown                                    (stricter: see below)
commit: REBALANCE_IN_PROG.  STABLE: Rejoin now                         requestRejoin
commit: ILLEGAL_GEN.,       as heartbeat; GROUP_AUTHORIZATION_F.
UNKNOWN_MEMBER_ID,          is fatal (for heartbeats too); other
FENCED_INSTANCE_ID,         errors concern the committer only
coordinator errors
leave                       Revoke(owned, commit_first); dynamic       maybeLeaveGroup
                            member with a member id and a known        (static members do not
                            coordinator: SendLeave; then Left          leave, KIP-345)
==========================  =========================================  ========================

A response sent under another generation than the current one (a heartbeat or commit that
crossed a rebalance) is ignored, except that a coordinator error still makes the coordinator
unknown, as Java does. JoinGroup and SyncGroup responses are ignored unless the member is
waiting for one.

Two choices are stricter than Java's. A session that expired on the member's side (no
heartbeat answered for ``session_timeout``) makes the partitions lost at once, instead of
waiting to hear UNKNOWN_MEMBER_ID from the rediscovered coordinator: by then the broker has
given them to someone else, and the member must not keep processing them (brod's issue #649).
And :meth:`Membership.may_commit` holds in ``STABLE`` only (Java's ``generationIfStable``);
the broker would accept commits while preparing a rebalance, but the member has nothing to
commit there that the revocation before JoinGroup did not commit already.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from trio_brod.protocol.errors import (
    CoordinatorNotAvailableError,
    FencedInstanceIdError,
    GroupAuthorizationFailedError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    KafkaError,
    MemberIdRequiredError,
    NotCoordinatorError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

__all__ = [
    "NO_GENERATION",
    "Action",
    "Assign",
    "Fatal",
    "FindCoordinator",
    "Generation",
    "Left",
    "MemberState",
    "Membership",
    "RebalanceProtocol",
    "Rejoin",
    "Revoke",
    "SendJoin",
    "SendLeave",
    "SendSync",
    "Stable",
    "TopicPartition",
]

#: A partition of a topic: (topic, partition index).
TopicPartition = tuple[str, int]

#: How a group rebalances: all partitions revoked before joining, or only those that move.
RebalanceProtocol = Literal["eager", "cooperative"]

#: The protocol type of consumer groups in JoinGroup/SyncGroup.
CONSUMER_PROTOCOL_TYPE = "consumer"


class MemberState(enum.Enum):
    """Where the member is in the join/sync cycle (Java's ``MemberState``, plus the ends)."""

    UNJOINED = "unjoined"
    PREPARING_REBALANCE = "preparing_rebalance"
    COMPLETING_REBALANCE = "completing_rebalance"
    STABLE = "stable"
    LEFT = "left"
    FAILED = "failed"


@dataclass(frozen=True)
class Generation:
    """A generation of the group as this member knows it.

    ``generation_id`` is -1 when the member is in no generation (never joined, or its
    generation was reset: then commits are refused). ``member_id`` is ``""`` until the
    coordinator has given one.
    """

    generation_id: int = -1
    member_id: str = ""
    protocol_name: str | None = None
    leader_id: str | None = None

    @property
    def valid(self) -> bool:
        """True if this is a real generation: commits and heartbeats may carry it."""
        return self.generation_id >= 0 and self.member_id != ""

    def same(self, generation_id: int, member_id: str) -> bool:
        """True if ``generation_id`` and ``member_id`` are this generation's."""
        return self.generation_id == generation_id and self.member_id == member_id


#: No generation, no member id.
NO_GENERATION = Generation()


# -- actions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FindCoordinator:
    """Look up the group's coordinator, then call :meth:`Membership.coordinator_found`."""

    reason: str


@dataclass(frozen=True)
class Rejoin:
    """Call :meth:`Membership.join`, after one backoff if ``after_backoff``."""

    after_backoff: bool
    reason: str


@dataclass(frozen=True)
class SendJoin:
    """Send JoinGroup; report the response to :meth:`Membership.on_join_response`.

    ``owned_partitions`` and ``generation_id`` go into the subscription metadata
    (ConsumerProtocol v1+/v2+), which the cooperative assignor needs; ``protocols`` are the
    assignor names in order of preference; ``reason`` goes to JoinGroup v8+.
    """

    member_id: str
    group_instance_id: str | None
    protocols: tuple[str, ...]
    owned_partitions: frozenset[TopicPartition]
    generation_id: int
    reason: str


@dataclass(frozen=True)
class SendSync:
    """Send SyncGroup with ``generation``; report to :meth:`Membership.on_sync_response`.

    A leader computes the assignment with the assignor named ``generation.protocol_name``
    from the JoinGroup response's members, unless ``skip_assignment`` (KIP-814: a static
    leader rejoined a stable group; the broker keeps the assignment it has).
    """

    generation: Generation
    group_instance_id: str | None
    as_leader: bool
    skip_assignment: bool = False


@dataclass(frozen=True)
class Revoke:
    """Stop the workers of ``partitions``, then call :meth:`Membership.revoked` with this.

    ``generation`` is the one they were owned in. ``lost``: the member is no longer in that
    generation; another member may have them already. Cancel the workers at once and commit
    nothing. Otherwise the workers may finish their current message, and with
    ``commit_first`` their offsets are committed with ``generation`` before the partitions
    are given up.
    """

    partitions: frozenset[TopicPartition]
    lost: bool
    commit_first: bool
    generation: Generation
    seq: int


@dataclass(frozen=True)
class Assign:
    """Start workers for ``partitions``, newly owned in ``generation``."""

    partitions: frozenset[TopicPartition]
    generation: Generation


@dataclass(frozen=True)
class Stable:
    """A rebalance completed: the member owns ``partitions`` in ``generation``."""

    generation: Generation
    partitions: frozenset[TopicPartition]


@dataclass(frozen=True)
class SendLeave:
    """Send LeaveGroup for ``member_id`` (best effort; the answer changes nothing)."""

    member_id: str
    group_instance_id: str | None
    reason: str


@dataclass(frozen=True)
class Left:
    """The member has left the group (or never was in it): nothing more will happen."""


@dataclass(frozen=True)
class Fatal:
    """The member cannot go on: stop, and raise ``error`` to the application."""

    error: KafkaError


#: What an event method asks the driver to do.
Action = (
    FindCoordinator
    | Rejoin
    | SendJoin
    | SendSync
    | Revoke
    | Assign
    | Stable
    | SendLeave
    | Left
    | Fatal
)
#: The actions of one event, to be carried out in order.
Actions = tuple[Action, ...]


class AssignorInfo(Protocol):
    """What the state machine needs of an assignor: its name and rebalance protocols."""

    @property
    def name(self) -> str:
        """The protocol name sent in JoinGroup (``"range"``, ``"cooperative-sticky"``...)."""
        ...

    @property
    def rebalance_protocols(self) -> tuple[str, ...]:
        """``("eager",)`` or ``("cooperative", "eager")``."""
        ...


_COORDINATOR_ERRORS = (NotCoordinatorError, CoordinatorNotAvailableError)


@dataclass
class _PendingRevoke:
    seq: int
    partitions: frozenset[TopicPartition]


class Membership:
    """One member's view of its group, and the rules that move it (see the module's table).

    Args:
        assignors: The assignors offered in JoinGroup, in order of preference.
        group_instance_id: For a static member (KIP-345), its ``group.instance.id``.
    """

    def __init__(
        self, assignors: Sequence[AssignorInfo], *, group_instance_id: str | None = None
    ) -> None:
        if not assignors:
            raise ValueError("a group member needs at least one assignor")
        self._protocols = tuple(a.name for a in assignors)
        cooperative = all("cooperative" in a.rebalance_protocols for a in assignors)
        self._rebalance_protocol: RebalanceProtocol = "cooperative" if cooperative else "eager"
        self._instance_id = group_instance_id
        self._state = MemberState.UNJOINED
        self._generation = NO_GENERATION
        self._owned: frozenset[TopicPartition] = frozenset()
        self._coordinator_known = False
        self._finding = False
        self._rejoin_needed = True
        self._rejoin_reason = "joining the group"
        self._rejoin_backoff = False
        self._rejoin_announced = False
        self._join_go = False
        self._leaving = False
        self._fatal: KafkaError | None = None
        self._fatal_reported = False
        self._pending: _PendingRevoke | None = None
        self._seq = 0

    # -- what the member is ----------------------------------------------------------------

    @property
    def state(self) -> MemberState:
        """The current state."""
        return self._state

    @property
    def generation(self) -> Generation:
        """The current generation (:data:`NO_GENERATION`-like when reset)."""
        return self._generation

    @property
    def owned_partitions(self) -> frozenset[TopicPartition]:
        """Partitions owned now (those of a pending revocation excluded)."""
        return self._owned

    @property
    def rebalance_protocol(self) -> RebalanceProtocol:
        """``"cooperative"`` if every assignor supports it, else ``"eager"``."""
        return self._rebalance_protocol

    @property
    def group_instance_id(self) -> str | None:
        """The static member's instance id, or None for a dynamic member."""
        return self._instance_id

    @property
    def is_leader(self) -> bool:
        """True if this member leads the current generation."""
        g = self._generation
        return g.valid and g.leader_id == g.member_id

    @property
    def coordinator_known(self) -> bool:
        """False from a coordinator error until :meth:`coordinator_found`."""
        return self._coordinator_known

    def may_commit(self, generation_id: int, member_id: str) -> bool:
        """True if offsets may be committed now with this generation and member id.

        Only the current generation, only while ``STABLE``: never a generation the member has
        left or whose partitions were lost, never while failed or gone.
        """
        return (
            self._state is MemberState.STABLE
            and self._generation.valid
            and self._generation.same(generation_id, member_id)
        )

    # -- coordinator -----------------------------------------------------------------------

    def start(self) -> Actions:
        """Begin: find the coordinator, then join."""
        return self._proceed()

    def coordinator_found(self) -> Actions:
        """The coordinator was found: go on with what was waiting for it."""
        self._finding = False
        self._coordinator_known = True
        return self._proceed()

    def coordinator_lost(self, reason: str = "connection to the coordinator lost") -> Actions:
        """The connection to the coordinator failed: requests in flight are gone."""
        return self._coordinator_unknown(reason)

    # -- joining ---------------------------------------------------------------------------

    def request_rejoin(self, reason: str) -> Actions:
        """Join again (e.g. a subscribed topic gained partitions; the subscription changed)."""
        if self._state in (MemberState.LEFT, MemberState.FAILED):
            return ()
        self._need_rejoin(reason, backoff=False)
        return self._proceed()

    def join(self) -> Actions:
        """Carry out a :class:`Rejoin`: revoke first if eager, then send JoinGroup."""
        if self._rejoin_announced:
            self._rejoin_announced = False
            self._join_go = True
        return self._proceed()

    def on_join_response(
        self,
        error: KafkaError | None,
        *,
        generation_id: int = -1,
        member_id: str = "",
        leader_id: str = "",
        protocol_name: str | None = None,
        protocol_type: str | None = None,
        skip_assignment: bool = False,
    ) -> Actions:
        """A JoinGroup response (its error, or None, and its fields)."""
        if self._state is not MemberState.PREPARING_REBALANCE or self._leaving:
            return ()
        self._state = MemberState.UNJOINED
        self._rejoin_needed = error is not None
        if error is None:
            if protocol_type not in (None, CONSUMER_PROTOCOL_TYPE) or (
                protocol_name not in self._protocols
            ):
                return self._fail(InconsistentGroupProtocolError(f"chose {protocol_name!r}"))
            self._generation = Generation(generation_id, member_id, protocol_name, leader_id)
            self._state = MemberState.COMPLETING_REBALANCE
            return (
                SendSync(
                    self._generation,
                    self._instance_id,
                    as_leader=member_id == leader_id,
                    skip_assignment=skip_assignment,
                ),
            )
        if isinstance(error, MemberIdRequiredError):
            self._generation = Generation(-1, member_id)
            self._need_rejoin(f"rejoining with the member id given: {member_id}", backoff=False)
            return self._proceed()
        if isinstance(error, RebalanceInProgressError):
            self._need_rejoin("JoinGroup: rebalance in progress", backoff=False)
            return self._proceed()
        return self._common_error(error, "JoinGroup", rejoin=True)

    def on_sync_response(
        self,
        error: KafkaError | None,
        *,
        assignment: Iterable[TopicPartition] = (),
        protocol_name: str | None = None,
        protocol_type: str | None = None,
    ) -> Actions:
        """A SyncGroup response: its error, or None and the decoded assignment.

        ``protocol_name``/``protocol_type`` are SyncGroup v5+'s (None before).
        """
        if self._state is not MemberState.COMPLETING_REBALANCE or self._leaving:
            return ()
        self._state = MemberState.UNJOINED
        self._rejoin_needed = error is not None
        if error is None:
            if protocol_type not in (None, CONSUMER_PROTOCOL_TYPE) or (
                protocol_name is not None and protocol_name != self._generation.protocol_name
            ):
                return self._fail(InconsistentGroupProtocolError(f"chose {protocol_name!r}"))
            return self._complete(frozenset(assignment))
        if isinstance(error, RebalanceInProgressError):
            self._need_rejoin("SyncGroup: rebalance in progress", backoff=False)
            return self._proceed()
        return self._common_error(error, "SyncGroup", rejoin=True)

    def _complete(self, assigned: frozenset[TopicPartition]) -> Actions:
        self._state = MemberState.STABLE
        gen = self._generation
        revoked = self._owned - assigned
        added = assigned - self._owned
        actions: list[Action] = []
        if added:
            actions.append(Assign(added, gen))
        actions.append(Stable(gen, assigned))
        if revoked:
            # Cooperative: give up what moved, with a commit, then join again so that the
            # assignor can hand it to its new owner (eager owns nothing here).
            self._need_rejoin("partitions revoked: rejoining to let them move", backoff=False)
        self._owned = assigned
        if revoked:
            return (*actions, self._revoke(revoked, lost=False))
        return (*actions, *self._proceed())

    # -- heartbeats and commits --------------------------------------------------------------

    def heartbeat(self) -> Generation | None:
        """The generation a heartbeat should carry now, or None if none should be sent."""
        if (
            self._coordinator_known
            and self._generation.valid
            and self._state in (MemberState.COMPLETING_REBALANCE, MemberState.STABLE)
        ):
            return self._generation
        return None

    def on_heartbeat_response(self, error: KafkaError | None, sent: Generation) -> Actions:
        """A Heartbeat response to a request sent with ``sent``."""
        return self._group_response(error, sent, "Heartbeat")

    def on_commit_response(self, error: KafkaError | None, sent: Generation) -> Actions:
        """The group-level error of an OffsetCommit sent with ``sent`` (or None).

        Partition-level problems (metadata too large, unknown partition) concern the
        committer alone: pass them and they change nothing here.
        """
        return self._group_response(error, sent, "OffsetCommit")

    def session_expired(self) -> Actions:
        """No heartbeat was answered for a session timeout: the coordinator has dropped us."""
        if self._state in (MemberState.LEFT, MemberState.FAILED):
            return ()
        self._coordinator_known = False
        return self._lose("session timed out without a heartbeat", reset_member_id=True)

    def _group_response(self, error: KafkaError | None, sent: Generation, api: str) -> Actions:
        if error is None or self._state in (MemberState.LEFT, MemberState.FAILED):
            return ()
        if isinstance(error, _COORDINATOR_ERRORS):
            return self._coordinator_unknown(f"{api}: {error.name}")
        if not self._generation.same(sent.generation_id, sent.member_id):
            return ()  # sent under a generation we have already left
        if isinstance(error, RebalanceInProgressError):
            if self._state is MemberState.STABLE:
                self._need_rejoin(f"{api}: the group is rebalancing", backoff=False)
                return self._proceed()
            return ()  # the rebalance we are taking part in
        if isinstance(error, (IllegalGenerationError, UnknownMemberIdError)):
            return self._common_error(error, api, rejoin=False)
        if isinstance(error, (FencedInstanceIdError, GroupAuthorizationFailedError)) or (
            api == "Heartbeat" and not error.retriable
        ):
            return self._fail(error)
        # Retriable (the next heartbeat or commit will tell), or a commit's partition-level
        # problem (OFFSET_METADATA_TOO_LARGE...), the committer's own business.
        return ()

    def _common_error(self, error: KafkaError, api: str, *, rejoin: bool) -> Actions:
        reason = f"{api}: {error.name}"
        if isinstance(error, UnknownMemberIdError):
            return self._lose(reason, reset_member_id=True)
        if isinstance(error, IllegalGenerationError):
            return self._lose(reason, reset_member_id=False)
        if isinstance(error, _COORDINATOR_ERRORS):
            return self._coordinator_unknown(reason)
        if rejoin and error.retriable:
            # COORDINATOR_LOAD_IN_PROGRESS and the like: the same request, after a backoff.
            self._need_rejoin(reason, backoff=True)
            return self._proceed()
        return self._fail(error)

    # -- leaving -----------------------------------------------------------------------------

    def leave(self, reason: str = "the member is closing") -> Actions:
        """Leave: revoke (with a commit) what is owned, then LeaveGroup unless static."""
        if self._state in (MemberState.LEFT, MemberState.FAILED) or self._leaving:
            return ()
        self._leaving = True
        self._rejoin_reason = reason
        return self._proceed()

    def revoked(self, action: Revoke) -> Actions:
        """The driver has carried out ``action``: go on with what waited for it."""
        if self._pending is None or self._pending.seq != action.seq:
            return ()  # superseded by a later revocation
        self._pending = None
        return self._proceed()

    # -- the machinery -------------------------------------------------------------------------

    def _revoke(
        self,
        partitions: frozenset[TopicPartition],
        *,
        lost: bool,
        owner: Generation | None = None,
    ) -> Revoke:
        # A revocation pending still is folded into this one: one outstanding at a time.
        if self._pending is not None:
            partitions |= self._pending.partitions
        self._seq += 1
        self._pending = _PendingRevoke(self._seq, partitions)
        self._owned -= partitions
        return Revoke(partitions, lost, not lost, owner or self._generation, self._seq)

    def _need_rejoin(self, reason: str, *, backoff: bool) -> None:
        self._rejoin_needed = True
        self._rejoin_reason = reason
        self._rejoin_backoff = backoff
        self._join_go = False  # announce a Rejoin again, with this reason and backoff

    def _coordinator_unknown(self, reason: str) -> Actions:
        if self._state in (MemberState.LEFT, MemberState.FAILED):
            return ()
        self._coordinator_known = False
        if self._state in (MemberState.PREPARING_REBALANCE, MemberState.COMPLETING_REBALANCE):
            self._state = MemberState.UNJOINED
            self._need_rejoin(reason, backoff=False)
        return self._proceed(reason)

    def _lose(self, reason: str, *, reset_member_id: bool) -> Actions:
        owner = self._generation
        member_id = "" if reset_member_id else owner.member_id
        self._generation = Generation(-1, member_id)
        if not self._leaving:
            self._state = MemberState.UNJOINED
            self._need_rejoin(reason, backoff=False)
        return self._lose_partitions(owner)

    def _lose_partitions(self, owner: Generation) -> Actions:
        pending = self._pending.partitions if self._pending is not None else frozenset()
        lost = self._owned | pending
        if lost:
            return (self._revoke(lost, lost=True, owner=owner),)
        return self._proceed()

    def _fail(self, error: KafkaError) -> Actions:
        owner = self._generation
        self._state = MemberState.FAILED
        self._fatal = error
        self._generation = Generation(-1, owner.member_id)
        return self._lose_partitions(owner)

    def _proceed(self, reason: str | None = None) -> Actions:
        """What to do next, once nothing is pending: the single place that moves on."""
        if self._pending is not None:
            return ()
        if self._state is MemberState.FAILED:
            if self._fatal is not None and not self._fatal_reported:
                self._fatal_reported = True
                return (Fatal(self._fatal),)
            return ()
        if self._state is MemberState.LEFT:
            return ()
        if self._leaving:
            return self._finish_leave()
        if not self._coordinator_known:
            if self._finding:
                return ()
            self._finding = True
            return (FindCoordinator(reason or self._rejoin_reason),)
        if not self._rejoin_needed or self._state not in (
            MemberState.UNJOINED,
            MemberState.STABLE,
        ):
            return ()
        if not self._join_go:
            if self._rejoin_announced:
                return ()
            self._rejoin_announced = True
            return (Rejoin(self._rejoin_backoff, self._rejoin_reason),)
        # onJoinPrepare: an eager member gives everything up, with a commit, before joining.
        if self._rebalance_protocol == "eager" and self._owned:
            return (self._revoke(self._owned, lost=not self._generation.valid),)
        self._join_go = False
        self._rejoin_needed = False
        self._state = MemberState.PREPARING_REBALANCE
        return (
            SendJoin(
                self._generation.member_id,
                self._instance_id,
                self._protocols,
                self._owned,
                self._generation.generation_id,
                self._rejoin_reason,
            ),
        )

    def _finish_leave(self) -> Actions:
        if self._owned:
            return (self._revoke(self._owned, lost=not self._generation.valid),)
        gen = self._generation
        actions: list[Action] = []
        if (
            self._instance_id is None
            and self._coordinator_known
            and gen.member_id
            and self._state is not MemberState.UNJOINED
        ):
            actions.append(SendLeave(gen.member_id, None, self._rejoin_reason))
        self._state = MemberState.LEFT
        self._generation = NO_GENERATION
        actions.append(Left())
        return tuple(actions)
