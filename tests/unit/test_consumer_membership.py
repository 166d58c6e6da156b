"""The KIP-848 member's state machine (trio_brod.groups._consumer_membership), pure.

Examples for each rule of the module docstring, then a hypothesis state machine that plays
a broker (random epochs, assignments, errors) against the member and a driver that carries
its actions out, checking after every step what the protocol promises: revoke before
assign, nothing committed after a fencing until the member has rejoined, every worker of a
fenced member stopped before anything else, the heartbeat always carrying the epoch heard
last and what is owned, and a leave that ends with epoch -1 (-2 when static).
"""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from trio_brod.groups._consumer_membership import (
    LEAVE_EPOCH,
    STATIC_LEAVE_EPOCH,
    Action,
    Assign,
    ConsumerMembership,
    ConsumerState,
    Fatal,
    Heartbeat,
    HeartbeatNow,
    Left,
    Revoke,
)
from trio_brod.protocol.errors import (
    CoordinatorNotAvailableError,
    FencedMemberEpochError,
    GroupAuthorizationFailedError,
    KafkaError,
    StaleMemberEpochError,
    UnknownMemberIdError,
    UnreleasedInstanceIdError,
)

P = [("t", i) for i in range(4)]


def member(**options: object) -> ConsumerMembership:
    return ConsumerMembership("m1", topics=("t",), **options)  # type: ignore[arg-type]


def beat(m: ConsumerMembership) -> Heartbeat:
    hb = m.heartbeat()
    assert hb is not None
    return hb


def test_joins_with_epoch_zero_and_the_full_subscription() -> None:
    m = member(server_assignor="range", rebalance_timeout_ms=1000)
    hb = beat(m)
    assert (hb.member_id, hb.member_epoch, hb.subscribed_topic_names) == ("m1", 0, ("t",))
    assert (hb.server_assignor, hb.rebalance_timeout_ms, hb.owned) == ("range", 1000, frozenset())
    assert hb.subscribed_topic_regex is None


def test_regex_subscription() -> None:
    m = ConsumerMembership("m1", topics=None, regex="orders-.*")
    hb = beat(m)
    assert (hb.subscribed_topic_names, hb.subscribed_topic_regex) == (None, "orders-.*")
    with pytest.raises(ValueError, match="topics or regex"):
        ConsumerMembership("m1", topics=("t",), regex="x")


def test_assignment_is_reconciled_revoke_first_then_assign_then_acknowledged() -> None:
    m = member()
    a = m.on_heartbeat_response(
        None, beat(m), member_epoch=1, heartbeat_interval_ms=2500, assignment=frozenset(P[:2])
    )
    assert m.heartbeat_interval == 2.5
    assert a == (Assign(frozenset(P[:2]), 1, 1),)
    assert isinstance(a[0], Assign)
    assert m.state is ConsumerState.RECONCILING
    assert beat(m).owned == frozenset()  # not acknowledged before the workers started
    assert m.assigned(a[0]) == (HeartbeatNow("acknowledging the assignment"),)
    assert beat(m).owned == frozenset(P[:2])
    assert m.state is ConsumerState.STABLE
    # The broker moves P[0] away and gives P[2]: P[0] is revoked first, with a commit.
    a = m.on_heartbeat_response(None, beat(m), member_epoch=2, assignment=frozenset({P[1], P[2]}))
    assert a == (Revoke(frozenset({P[0]}), False, 2, 2),)
    assert m.may_commit(2)
    assert not m.may_commit(1)
    assert isinstance(a[0], Revoke)
    a = m.revoked(a[0])
    assert a == (Assign(frozenset({P[2]}), 2, 3),)
    assert isinstance(a[0], Assign)
    assert isinstance(m.assigned(a[0])[0], HeartbeatNow)
    assert beat(m).owned == frozenset({P[1], P[2]})


def test_a_new_target_during_a_reconciliation_waits_for_it() -> None:
    m = member()
    (a,) = m.on_heartbeat_response(None, beat(m), member_epoch=1, assignment=frozenset(P[:2]))
    assert (
        m.on_heartbeat_response(None, beat(m), member_epoch=2, assignment=frozenset(P[1:3])) == ()
    )
    assert isinstance(a, Assign)
    (r,) = m.assigned(a)
    assert r == Revoke(frozenset({P[0]}), False, 2, 2)


def test_fencing_loses_everything_at_once_then_rejoins_with_epoch_zero() -> None:
    m = member()
    (a,) = m.on_heartbeat_response(None, beat(m), member_epoch=3, assignment=frozenset(P[:2]))
    assert isinstance(a, Assign)
    m.assigned(a)
    actions = m.on_heartbeat_response(FencedMemberEpochError(), beat(m))
    assert actions == (Revoke(frozenset(P[:2]), True, 3, 2),)
    assert not m.may_commit(3)
    assert m.heartbeat() is None
    assert isinstance(actions[0], Revoke)
    assert m.revoked(actions[0]) == (HeartbeatNow("fenced: rejoining with epoch 0"),)
    hb = beat(m)
    assert (hb.member_epoch, hb.owned, hb.member_id) == (0, frozenset(), "m1")


def test_a_commit_answered_unknown_member_fences_and_stale_epoch_asks_for_a_heartbeat() -> None:
    m = member()
    m.on_heartbeat_response(None, beat(m), member_epoch=5, assignment=frozenset())
    assert m.on_commit_response(StaleMemberEpochError(), 5) == (
        HeartbeatNow("a commit carried a stale member epoch"),
    )
    assert m.on_commit_response(UnknownMemberIdError(), 4) == ()  # an older epoch's
    (r,) = m.on_commit_response(UnknownMemberIdError(), 5)
    assert isinstance(r, Revoke)
    assert r.lost
    assert m.state is ConsumerState.FENCED


@pytest.mark.parametrize("error", [UnreleasedInstanceIdError(), GroupAuthorizationFailedError()])
def test_fatal_errors_lose_the_partitions_then_fail(error: KafkaError) -> None:
    m = member(instance_id="i1")
    (a,) = m.on_heartbeat_response(None, beat(m), member_epoch=1, assignment=frozenset(P[:1]))
    assert isinstance(a, Assign)
    m.assigned(a)
    (r,) = m.on_heartbeat_response(error, beat(m))
    assert isinstance(r, Revoke)
    assert r.lost
    assert m.revoked(r) == (Fatal(error),)


def test_retriable_errors_change_nothing() -> None:
    m = member()
    m.on_heartbeat_response(None, beat(m), member_epoch=1, assignment=frozenset())
    assert m.on_heartbeat_response(CoordinatorNotAvailableError(), beat(m)) == ()
    assert m.member_epoch == 1
    assert m.may_commit(1)


@pytest.mark.parametrize(
    ("instance_id", "epoch"), [(None, LEAVE_EPOCH), ("i1", STATIC_LEAVE_EPOCH)]
)
def test_leaving_revokes_with_a_commit_then_sends_the_leave_epoch(
    instance_id: str | None, epoch: int
) -> None:
    m = member(instance_id=instance_id)
    (a,) = m.on_heartbeat_response(None, beat(m), member_epoch=1, assignment=frozenset(P[:1]))
    assert isinstance(a, Assign)
    m.assigned(a)
    (r,) = m.leave()
    assert r == Revoke(frozenset(P[:1]), False, 1, 2)
    assert m.may_commit(1)
    assert beat(m).member_epoch == 1  # heartbeats go on while revoking
    assert isinstance(r, Revoke)
    assert m.revoked(r) == (HeartbeatNow("leaving the group"),)
    hb = beat(m)
    assert hb.member_epoch == epoch
    assert hb.leaving
    assert not m.may_commit(1)
    assert m.on_heartbeat_response(None, hb, member_epoch=epoch) == (Left(),)


def test_a_member_that_never_heartbeated_leaves_at_once() -> None:
    assert member().leave() == (Left(),)


class ConsumerMembershipMachine(RuleBasedStateMachine):
    """A random broker against the member and a driver that carries its actions out."""

    def __init__(self) -> None:
        super().__init__()
        self.static = False
        self.m = member()
        self.queue: deque[Action] = deque()
        self.running: set[tuple[str, int]] = set()
        self.broker_epoch = 0
        self.fenced = False  # between a fencing and the next successful join
        self.left = False
        self.failed = False
        self.leaving = False
        self.commits: list[int] = []

    @initialize(static=st.booleans())
    def start(self, static: bool) -> None:
        self.static = static
        self.m = member(instance_id="i1" if static else None)

    def take(self, actions: tuple[Action, ...]) -> None:
        for action in actions:
            if isinstance(action, Revoke) and action.lost:
                # The driver cancels lost workers as soon as it hears of them.
                assert self.running <= action.partitions | self.m.owned
                self.running -= action.partitions
            if isinstance(action, Assign):
                target = self.m.target
                assert target is not None
                assert action.partitions <= target
                assert not (self.m.owned - target)  # everything to revoke was revoked first
                assert not (action.partitions & self.m.owned)
            if isinstance(action, Left):
                self.left = True
            if isinstance(action, Fatal):
                self.failed = True
            self.queue.append(action)

    @rule(
        data=st.data(),
        outcome=st.sampled_from(["ok", "ok", "ok", "fenced", "unknown", "retriable", "fatal"]),
    )
    def heartbeat(self, data: st.DataObject, outcome: str) -> None:
        hb = self.m.heartbeat()
        if hb is None:
            return
        if hb.leaving:
            assert hb.member_epoch == (STATIC_LEAVE_EPOCH if self.static else LEAVE_EPOCH)
            assert not self.running
            assert self.m.owned == frozenset()
            self.take(self.m.on_heartbeat_response(None, hb, member_epoch=hb.member_epoch))
            assert self.left
            return
        assert hb.member_epoch == self.m.member_epoch
        assert hb.owned == self.m.owned
        error: KafkaError | None = {
            "ok": None,
            "fenced": FencedMemberEpochError(),
            "unknown": UnknownMemberIdError(),
            "retriable": CoordinatorNotAvailableError(),
            "fatal": GroupAuthorizationFailedError(),
        }[outcome]
        if error is None:
            self.broker_epoch = max(self.broker_epoch + data.draw(st.integers(0, 2)), 1)
            assignment = data.draw(st.none() | st.frozensets(st.sampled_from(P)))
            before = self.m.state
            self.take(
                self.m.on_heartbeat_response(
                    None, hb, member_epoch=self.broker_epoch, assignment=assignment
                )
            )
            if before is not ConsumerState.FENCED:
                self.fenced = False
            return
        was_fenced = self.m.state is ConsumerState.FENCED
        running_before = set(self.running)
        actions = self.m.on_heartbeat_response(error, hb)
        if isinstance(error, (FencedMemberEpochError, UnknownMemberIdError)) and not was_fenced:
            self.fenced = True
            self.broker_epoch = 0
            # Every worker is cancelled before anything else happens.
            first = actions[0]
            assert isinstance(first, Revoke)
            assert first.lost
            assert running_before <= first.partitions
        self.take(actions)

    @rule(error=st.sampled_from([None, StaleMemberEpochError(), FencedMemberEpochError()]))
    def commit(self, error: KafkaError | None) -> None:
        epoch = self.m.member_epoch
        if not self.m.may_commit(epoch):
            return
        assert not self.fenced
        assert not self.left
        assert not self.failed
        self.commits.append(epoch)
        running_before = set(self.running)
        actions = self.m.on_commit_response(error, epoch)
        if isinstance(error, FencedMemberEpochError):
            self.fenced = True
            self.broker_epoch = 0
            if actions:
                first = actions[0]
                assert isinstance(first, Revoke)
                assert first.lost
                assert running_before <= first.partitions
        self.take(actions)

    @rule()
    @precondition(lambda self: bool(self.queue))
    def carry_out(self) -> None:
        action = self.queue.popleft()
        if isinstance(action, Revoke):
            if not action.lost:
                # Revoke first: nothing is assigned while a revoked partition still runs.
                assert not any(isinstance(a, Assign) for a in self.queue)
            self.running -= action.partitions
            self.take(self.m.revoked(action))
        elif isinstance(action, Assign):
            self.running |= action.partitions
            self.take(self.m.assigned(action))

    @rule()
    def leave(self) -> None:
        self.leaving = True
        self.take(self.m.leave())

    @invariant()
    def workers_only_for_what_is_owned_or_being_started(self) -> None:
        pending = set()
        for a in self.queue:
            if isinstance(a, Assign):
                pending |= a.partitions
        assert self.m.owned <= self.running | pending or self.m.state in (
            ConsumerState.FENCED,
            ConsumerState.FAILED,
            ConsumerState.LEAVING,
        )
        if self.m.state is ConsumerState.FENCED or self.fenced:
            assert not self.m.may_commit(self.m.member_epoch)

    @invariant()
    def converges_when_left_alone(self) -> None:
        if self.left or self.failed or self.queue or self.m.state is not ConsumerState.STABLE:
            return
        target = self.m.target
        assert target is None or self.m.owned == target


TestConsumerMembershipMachine = ConsumerMembershipMachine.TestCase
TestConsumerMembershipMachine.settings = settings(max_examples=300, stateful_step_count=40)
