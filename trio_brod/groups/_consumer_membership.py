"""The KIP-848 group member's state machine: the ``consumer`` protocol's decisions, no I/O.

With the consumer group protocol (Kafka 4.0+) a member speaks a single request,
ConsumerGroupHeartbeat. The broker computes the assignment; each heartbeat response may
carry the member's new epoch and its new *target* assignment, and the member reconciles
towards it partition by partition: it first gives up what it must revoke (its workers stop,
their offsets are committed with the member epoch), then starts what it was given, and it
acknowledges by reporting what it owns in its next heartbeat, which it sends at once. There
is no group-wide barrier: partitions that stay with their member are never stopped.

:class:`ConsumerMembership` makes those decisions in a plain class with no sockets, no Trio
and no clock (the facts follow Java's ``ConsumerMembershipManager`` and the broker's
``GroupMetadataManager``); the driver (``groups/_consumer_member.py``) carries them out.

The driver's contract
---------------------

* :meth:`ConsumerMembership.heartbeat` gives the request to send now (a :class:`Heartbeat`),
  or None; the answer goes to :meth:`ConsumerMembership.on_heartbeat_response` (its error, or
  None with the response's fields). The driver sends one heartbeat at a time, every
  :attr:`ConsumerMembership.heartbeat_interval` (the broker's), and at once after a
  :class:`HeartbeatNow`.
* Event methods return a tuple of actions, carried out in order:

  ==========================  ===============================================================
  Action                      What the driver does
  ==========================  ===============================================================
  :class:`Revoke`             Stop the workers of ``partitions``. ``lost``: cancel them at
                              once, commit nothing. Otherwise let each finish its message,
                              commit their offsets with ``epoch`` (if
                              :meth:`~ConsumerMembership.may_commit` still allows it). Then
                              call :meth:`~ConsumerMembership.revoked`.
  :class:`Assign`             Start workers for ``partitions`` (their committed offsets read
                              first), then call :meth:`~ConsumerMembership.assigned`.
  :class:`HeartbeatNow`       Send the next heartbeat without waiting for the interval.
  :class:`Left`               The member has left: nothing more will happen.
  :class:`Fatal`              Stop, and raise ``error`` (every partition was lost first).
  ==========================  ===============================================================

States and transitions
----------------------

==========================  ==============================================================
Event                       Outcome
==========================  ==============================================================
start                       JOINING: heartbeat with epoch 0 and the full subscription
response ok                 epoch := the response's; an assignment in it becomes the target;
                            reconcile: Revoke(owned - target, with a commit), then
                            Assign(target - owned), then HeartbeatNow to acknowledge
                            (RECONCILING while it runs, STABLE once owned == target)
a newer target while        kept; reconciled again once the running step is done
reconciling
FENCED_MEMBER_EPOCH,        FENCED: every partition (owned, being revoked, being assigned)
UNKNOWN_MEMBER_ID           lost (cancelled, no commit); once revoked: epoch 0, JOINING,
(heartbeat or commit)       HeartbeatNow (the same member id, as Java's consumer)
FENCED_INSTANCE_ID,         fatal (every partition lost, then Fatal)
UNRELEASED_INSTANCE_ID,
UNSUPPORTED_ASSIGNOR,
UNSUPPORTED_VERSION,
INVALID_REQUEST,
GROUP_AUTHORIZATION_F.,
GROUP_MAX_SIZE_REACHED,
INVALID_REGULAR_EXPR.,
other non-retriable
retriable errors            nothing: the next heartbeat (after the interval) tries again
commit: STALE_MEMBER_EPOCH  nothing but HeartbeatNow: the commit is not done; the member
                            learns its new epoch and commits again
leave                       Revoke(owned, with a commit); then a heartbeat with epoch -1
                            (-2 for a static member: it will come back, KIP-848's static
                            membership); its answer, whatever it is, ends in Left. A member
                            that never sent a heartbeat, or is fenced, leaves at once.
==========================  ==============================================================

:meth:`ConsumerMembership.may_commit` holds for the current epoch only, while the member is
in the group (not joining, fenced, leaving after its last revocation, or gone).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from trio_brod.protocol.errors import (
    FencedMemberEpochError,
    KafkaError,
    StaleMemberEpochError,
    UnknownMemberIdError,
)

__all__ = [
    "LEAVE_EPOCH",
    "STATIC_LEAVE_EPOCH",
    "Action",
    "Assign",
    "ConsumerMembership",
    "ConsumerState",
    "Fatal",
    "Heartbeat",
    "HeartbeatNow",
    "Left",
    "Revoke",
    "TopicPartition",
]

#: A partition of a topic: (topic, partition index).
TopicPartition = tuple[str, int]

#: The member epoch of a heartbeat that leaves the group, and of a static member's
#: (which keeps its assignment for its return, within the session timeout).
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2

#: Until the broker says otherwise (its ``group.consumer.heartbeat.interval.ms`` default).
DEFAULT_HEARTBEAT_INTERVAL = 5.0


class ConsumerState(enum.Enum):
    """Where the member is (a subset of Java's ``MemberState``)."""

    JOINING = "joining"
    RECONCILING = "reconciling"
    STABLE = "stable"
    FENCED = "fenced"
    LEAVING = "leaving"
    LEFT = "left"
    FAILED = "failed"


@dataclass(frozen=True)
class Heartbeat:
    """A ConsumerGroupHeartbeat to send: every field, every time.

    Java sends only what changed; a full request is as valid (the broker compares), and it
    keeps the member from having to remember what the broker last heard.
    ``subscribed_topic_names`` or ``subscribed_topic_regex`` is set, never both.
    """

    member_id: str
    member_epoch: int
    instance_id: str | None
    rebalance_timeout_ms: int
    subscribed_topic_names: tuple[str, ...] | None
    subscribed_topic_regex: str | None
    server_assignor: str | None
    owned: frozenset[TopicPartition]

    @property
    def leaving(self) -> bool:
        """True for the heartbeat that leaves the group."""
        return self.member_epoch < 0


@dataclass(frozen=True)
class Revoke:
    """Stop the workers of ``partitions`` (see the module docstring); then ``revoked``."""

    partitions: frozenset[TopicPartition]
    lost: bool
    epoch: int
    seq: int


@dataclass(frozen=True)
class Assign:
    """Start workers for ``partitions``, owned from ``epoch``; then ``assigned``."""

    partitions: frozenset[TopicPartition]
    epoch: int
    seq: int


@dataclass(frozen=True)
class HeartbeatNow:
    """Send a heartbeat now (to acknowledge a reconciliation, or to rejoin)."""

    reason: str


@dataclass(frozen=True)
class Left:
    """The member has left the group: nothing more will happen."""


@dataclass(frozen=True)
class Fatal:
    """The member cannot go on: stop, and raise ``error``."""

    error: KafkaError


Action = Revoke | Assign | HeartbeatNow | Left | Fatal
Actions = tuple[Action, ...]

#: Errors meaning the broker no longer counts this member in the group.
_FENCED = (FencedMemberEpochError, UnknownMemberIdError)


class ConsumerMembership:
    """The KIP-848 member's decisions (see the module docstring).

    Args:
        member_id: The member's id, made by the client (KIP-1082: a random id, kept for the
            member's lifetime; the broker's answer may replace it).
        topics: The subscribed topic names, or None with ``regex``.
        regex: A server-side regular expression (RE2/J syntax) instead of names.
        instance_id: The static member's ``group_instance_id``.
        server_assignor: ``"uniform"``, ``"range"`` or None (the broker's default).
        rebalance_timeout_ms: How long the broker waits for the member's revocations.
    """

    def __init__(
        self,
        member_id: str,
        *,
        topics: tuple[str, ...] | None,
        regex: str | None = None,
        instance_id: str | None = None,
        server_assignor: str | None = None,
        rebalance_timeout_ms: int = 300_000,
    ) -> None:
        if (topics is None) == (regex is None):
            raise ValueError("give topics or regex, not both")
        self._member_id = member_id
        self._topics = topics
        self._regex = regex
        self._instance_id = instance_id
        self._assignor = server_assignor
        self._rebalance_timeout_ms = rebalance_timeout_ms
        self._state = ConsumerState.JOINING
        self._epoch = 0
        self._interval = DEFAULT_HEARTBEAT_INTERVAL
        self._owned: frozenset[TopicPartition] = frozenset()
        self._target: frozenset[TopicPartition] | None = None
        self._step: Revoke | Assign | None = None
        self._seq = 0
        self._sent_any = False
        self._leave_sent = False
        self._fatal: KafkaError | None = None

    def __repr__(self) -> str:
        return (
            f"<ConsumerMembership {self._state.value} member_id={self._member_id!r} "
            f"epoch={self._epoch} owned={sorted(self._owned)}>"
        )

    # -- what the driver reads ---------------------------------------------------------------

    @property
    def state(self) -> ConsumerState:
        """Where the member is."""
        return self._state

    @property
    def member_id(self) -> str:
        """The member id (the client's, or the one the broker gave back)."""
        return self._member_id

    @property
    def member_epoch(self) -> int:
        """The member epoch last heard from the broker (0 while joining)."""
        return self._epoch

    @property
    def instance_id(self) -> str | None:
        """The static member's instance id, or None."""
        return self._instance_id

    @property
    def owned(self) -> frozenset[TopicPartition]:
        """The partitions the member owns (reported in each heartbeat)."""
        return self._owned

    @property
    def target(self) -> frozenset[TopicPartition] | None:
        """The assignment the broker last gave, or None before the first."""
        return self._target

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between heartbeats: the broker's, from its last answer."""
        return self._interval

    @property
    def failed_with(self) -> KafkaError | None:
        """The fatal error the member failed with, or None."""
        return self._fatal

    def may_commit(self, epoch: int) -> bool:
        """True if offsets may be committed now with ``epoch``: the current one, in the group."""
        return (
            self._state in (ConsumerState.RECONCILING, ConsumerState.STABLE, ConsumerState.LEAVING)
            and not self._leave_sent
            and self._epoch > 0
            and epoch == self._epoch
        )

    # -- heartbeats ----------------------------------------------------------------------------

    def heartbeat(self) -> Heartbeat | None:
        """The heartbeat to send now, or None (fenced and not yet revoked, leaving with a
        revocation still running, or gone)."""
        state = self._state
        if state in (ConsumerState.FENCED, ConsumerState.LEFT, ConsumerState.FAILED):
            return None
        epoch = self._epoch
        if state is ConsumerState.LEAVING:
            if self._leave_sent:
                return None
            if self._step is None and not self._owned:
                self._leave_sent = True
                epoch = LEAVE_EPOCH if self._instance_id is None else STATIC_LEAVE_EPOCH
            # else: still revoking before the leave: heartbeats go on as before
        self._sent_any = True
        return Heartbeat(
            member_id=self._member_id,
            member_epoch=epoch,
            instance_id=self._instance_id,
            rebalance_timeout_ms=self._rebalance_timeout_ms,
            subscribed_topic_names=self._topics,
            subscribed_topic_regex=self._regex,
            server_assignor=self._assignor,
            owned=self._owned,
        )

    def on_heartbeat_response(
        self,
        error: KafkaError | None,
        sent: Heartbeat,
        *,
        member_id: str | None = None,
        member_epoch: int = 0,
        heartbeat_interval_ms: int = 0,
        assignment: frozenset[TopicPartition] | None = None,
    ) -> Actions:
        """The answer to ``sent``: its error, or None and the response's fields
        (``assignment`` None when the response carries none)."""
        if self._state in (ConsumerState.LEFT, ConsumerState.FAILED):
            return ()
        if sent.leaving:
            self._state = ConsumerState.LEFT
            self._epoch = sent.member_epoch
            return (Left(),)
        if error is not None:
            return self._heartbeat_error(error, sent)
        if self._state is ConsumerState.FENCED or sent.member_epoch != self._epoch:
            return ()  # an answer to a request from before the fencing
        if heartbeat_interval_ms > 0:
            self._interval = heartbeat_interval_ms / 1000
        if member_id:
            self._member_id = member_id
        self._epoch = member_epoch
        if self._state is ConsumerState.JOINING:
            self._state = ConsumerState.STABLE
        if assignment is not None:
            self._target = assignment
        if self._state is ConsumerState.LEAVING:
            return ()
        return self._reconcile()

    def _heartbeat_error(self, error: KafkaError, sent: Heartbeat) -> Actions:
        if isinstance(error, _FENCED):
            if sent.member_epoch != self._epoch or self._state is ConsumerState.FENCED:
                return ()  # about an epoch already left behind
            if self._leave_sent:
                return ()
            return self._fence()
        if error.retriable:
            return ()
        return self._fail(error)

    def on_commit_response(self, error: KafkaError | None, epoch: int) -> Actions:
        """The group-level error of an OffsetCommit sent with ``epoch`` (or None)."""
        if error is None or self._state in (ConsumerState.LEFT, ConsumerState.FAILED):
            return ()
        if epoch != self._epoch:
            return ()
        if isinstance(error, _FENCED):
            if self._state is ConsumerState.FENCED:
                return ()
            return self._fence()
        if isinstance(error, StaleMemberEpochError):
            return (HeartbeatNow("a commit carried a stale member epoch"),)
        return ()

    # -- reconciliation --------------------------------------------------------------------

    def revoked(self, action: Revoke) -> Actions:
        """The driver has carried out ``action``: go on."""
        if self._step is None or self._step.seq != action.seq:
            return ()
        self._step = None
        self._owned -= action.partitions
        if self._state is ConsumerState.FENCED:
            self._epoch = 0
            self._target = None
            self._state = ConsumerState.JOINING
            return (HeartbeatNow("fenced: rejoining with epoch 0"),)
        if self._state is ConsumerState.FAILED:
            assert self._fatal is not None
            return (Fatal(self._fatal),)
        if self._state is ConsumerState.LEAVING:
            return self._leave_step()
        return self._reconcile()

    def assigned(self, action: Assign) -> Actions:
        """The driver has started the workers of ``action``: go on."""
        if self._step is None or self._step.seq != action.seq:
            return ()
        self._step = None
        self._owned |= action.partitions
        if self._state is ConsumerState.LEAVING:
            return self._leave_step()
        return self._reconcile()

    def _reconcile(self) -> Actions:
        if self._step is not None or self._target is None:
            return ()
        revoke = self._owned - self._target
        if revoke:
            self._state = ConsumerState.RECONCILING
            return (self._revoke(revoke, lost=False),)
        add = self._target - self._owned
        if add:
            self._state = ConsumerState.RECONCILING
            self._seq += 1
            self._step = Assign(add, self._epoch, self._seq)
            return (self._step,)
        if self._state is ConsumerState.RECONCILING:
            self._state = ConsumerState.STABLE
            return (HeartbeatNow("acknowledging the assignment"),)
        return ()

    def _revoke(self, partitions: frozenset[TopicPartition], *, lost: bool) -> Revoke:
        self._seq += 1
        step = Revoke(partitions, lost, self._epoch, self._seq)
        self._step = step
        return step

    def _all_partitions(self) -> frozenset[TopicPartition]:
        step = self._step.partitions if self._step is not None else frozenset()
        return self._owned | step

    def _fence(self) -> Actions:
        if self._state is ConsumerState.LEAVING:
            self._leave_sent = True  # dropped already: no leaving heartbeat
        else:
            self._state = ConsumerState.FENCED
        return (self._revoke(self._all_partitions(), lost=True),)

    def _fail(self, error: KafkaError) -> Actions:
        self._state = ConsumerState.FAILED
        self._fatal = error
        lost = self._all_partitions()
        if lost:
            return (self._revoke(lost, lost=True),)
        return (Fatal(error),)

    # -- leaving -------------------------------------------------------------------------------

    def leave(self) -> Actions:
        """Leave: revoke (with a commit) what is owned, then the leaving heartbeat."""
        if self._state in (ConsumerState.LEFT, ConsumerState.FAILED, ConsumerState.LEAVING):
            return ()
        fenced = self._state is ConsumerState.FENCED
        self._state = ConsumerState.LEAVING
        if fenced or not self._sent_any:
            # Fenced: the broker has dropped us already (the lost revocation still runs;
            # ``revoked`` finishes the leave).
            self._leave_sent = True
            if self._step is None:
                self._state = ConsumerState.LEFT
                return (Left(),)
            return ()
        if self._step is not None:
            return ()  # the running step ends in revoked/assigned, then _leave_step
        return self._leave_step()

    def _leave_step(self) -> Actions:
        if self._owned:
            return (self._revoke(self._owned, lost=False),)
        if self._leave_sent:
            self._state = ConsumerState.LEFT
            return (Left(),)
        return (HeartbeatNow("leaving the group"),)
