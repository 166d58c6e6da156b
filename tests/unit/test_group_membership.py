"""The group member's state machine, one transition at a time (the model test is separate)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from trio_brod.groups._membership import (
    Action,
    Assign,
    Fatal,
    FindCoordinator,
    Generation,
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
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    FencedInstanceIdError,
    GroupAuthorizationFailedError,
    GroupMaxSizeReachedError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    InvalidSessionTimeoutError,
    KafkaError,
    MemberIdRequiredError,
    NotCoordinatorError,
    OffsetMetadataTooLargeError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)


@dataclass(frozen=True)
class FakeAssignor:
    name: str
    rebalance_protocols: tuple[str, ...]


RANGE = FakeAssignor("range", ("eager",))
COOP = FakeAssignor("cooperative-sticky", ("cooperative", "eager"))

P0: TopicPartition = ("t", 0)
P1: TopicPartition = ("t", 1)
P2: TopicPartition = ("t", 2)


def only(actions: tuple[Action, ...]) -> Action:
    assert len(actions) == 1, actions
    return actions[0]


def joined(
    m: Membership,
    assignment: frozenset[TopicPartition],
    *,
    generation_id: int = 1,
    member_id: str = "m1",
    leader_id: str = "m1",
) -> Generation:
    """Drive a fresh member to STABLE with ``assignment``; return its generation."""
    assert only(m.start()) == FindCoordinator("joining the group")
    assert isinstance(only(m.coordinator_found()), Rejoin)
    join = only(m.join())
    assert isinstance(join, SendJoin)
    sync = only(
        m.on_join_response(
            None,
            generation_id=generation_id,
            member_id=member_id,
            leader_id=leader_id,
            protocol_name=m.generation.protocol_name or join.protocols[0],
            protocol_type="consumer",
        )
    )
    assert isinstance(sync, SendSync)
    actions = m.on_sync_response(None, assignment=assignment)
    gen = m.generation
    assert actions[-1] == Stable(gen, assignment)
    assert m.state is MemberState.STABLE
    assert m.owned_partitions == assignment
    return gen


def test_rebalance_protocol_is_cooperative_only_if_every_assignor_supports_it() -> None:
    assert Membership([COOP]).rebalance_protocol == "cooperative"
    assert Membership([COOP, RANGE]).rebalance_protocol == "eager"
    assert Membership([RANGE]).rebalance_protocol == "eager"
    with pytest.raises(ValueError, match="assignor"):
        Membership([])


def test_first_join_member_id_required_then_rejoin_with_the_given_id() -> None:
    m = Membership([RANGE, COOP])
    assert isinstance(only(m.start()), FindCoordinator)
    assert m.start() == ()  # already looking
    assert only(m.coordinator_found()) == Rejoin(False, "joining the group")
    join = only(m.join())
    assert join == SendJoin("", None, ("range", "cooperative-sticky"), frozenset(), -1, join.reason)
    assert m.state is MemberState.PREPARING_REBALANCE
    rejoin = only(m.on_join_response(MemberIdRequiredError(), member_id="m-42"))
    assert rejoin == Rejoin(after_backoff=False, reason=rejoin.reason)
    assert m.generation == Generation(-1, "m-42")
    join = only(m.join())
    assert isinstance(join, SendJoin)
    assert join.member_id == "m-42"


@pytest.mark.parametrize(("leader", "as_leader"), [("m1", True), ("m2", False)])
def test_join_response_leads_to_sync_as_leader_or_follower(leader: str, as_leader: bool) -> None:
    m = Membership([RANGE])
    m.start()
    m.coordinator_found()
    m.join()
    sync = only(
        m.on_join_response(
            None, generation_id=7, member_id="m1", leader_id=leader, protocol_name="range"
        )
    )
    assert sync == SendSync(Generation(7, "m1", "range", leader), None, as_leader=as_leader)
    assert m.state is MemberState.COMPLETING_REBALANCE
    assert m.is_leader is as_leader
    assert m.heartbeat() == m.generation  # heartbeats go on while syncing
    assert not m.may_commit(7, "m1")  # but no commits before STABLE
    actions = m.on_sync_response(None, assignment=[P0, P1])
    assert actions == (
        Assign(frozenset({P0, P1}), m.generation),
        Stable(m.generation, frozenset({P0, P1})),
    )
    assert m.may_commit(7, "m1")
    assert not m.may_commit(6, "m1")
    assert not m.may_commit(7, "m2")


def test_eager_rebalance_in_progress_revokes_everything_with_a_commit_before_joining() -> None:
    m = Membership([RANGE])
    gen = joined(m, frozenset({P0, P1}))
    rejoin = only(m.on_heartbeat_response(RebalanceInProgressError(), gen))
    assert rejoin == Rejoin(False, rejoin.reason)
    assert m.may_commit(gen.generation_id, gen.member_id)
    revoke = only(m.join())
    assert revoke == Revoke(frozenset({P0, P1}), False, True, gen, revoke.seq)
    # The commit before JoinGroup happens now, still in the generation being left.
    assert m.may_commit(gen.generation_id, gen.member_id)
    assert m.heartbeat() == gen
    join = only(m.revoked(revoke))
    assert isinstance(join, SendJoin)
    assert join.owned_partitions == frozenset()
    assert join.member_id == "m1"
    assert join.generation_id == 1
    assert not m.may_commit(gen.generation_id, gen.member_id)


def test_cooperative_rebalance_keeps_partitions_and_revokes_only_what_moved() -> None:
    m = Membership([COOP])
    gen = joined(m, frozenset({P0, P1}))
    assert isinstance(only(m.on_heartbeat_response(RebalanceInProgressError(), gen)), Rejoin)
    join = only(m.join())
    assert isinstance(join, SendJoin)
    assert join.owned_partitions == frozenset({P0, P1})  # no revocation before joining
    assert join.generation_id == 1
    assert m.owned_partitions == frozenset({P0, P1})
    m.on_join_response(
        None, generation_id=2, member_id="m1", leader_id="m2", protocol_name="cooperative-sticky"
    )
    actions = m.on_sync_response(None, assignment=[P1, P2])
    gen2 = m.generation
    assert actions[:2] == (Assign(frozenset({P2}), gen2), Stable(gen2, frozenset({P1, P2})))
    revoke = actions[2]
    assert revoke == Revoke(frozenset({P0}), False, True, gen2, revoke.seq)
    assert len(actions) == 3
    assert m.may_commit(2, "m1")  # the revoked partition's offsets are committed in gen 2
    assert m.owned_partitions == frozenset({P1, P2})
    rejoin = only(m.revoked(revoke))
    assert rejoin == Rejoin(False, rejoin.reason)  # so that P0 can go to its new owner
    join = only(m.join())
    assert isinstance(join, SendJoin)
    assert join.owned_partitions == frozenset({P1, P2})


def test_cooperative_sync_that_moves_nothing_needs_no_rejoin() -> None:
    m = Membership([COOP])
    gen = joined(m, frozenset({P0}))
    m.on_heartbeat_response(RebalanceInProgressError(), gen)
    m.join()
    m.on_join_response(
        None, generation_id=2, member_id="m1", leader_id="m1", protocol_name="cooperative-sticky"
    )
    assert m.on_sync_response(None, assignment=[P0]) == (Stable(m.generation, frozenset({P0})),)


def test_rebalance_in_progress_on_heartbeat_while_syncing_is_ignored() -> None:
    m = Membership([RANGE])
    m.start()
    m.coordinator_found()
    m.join()
    m.on_join_response(None, generation_id=3, member_id="m1", leader_id="m1", protocol_name="range")
    assert m.on_heartbeat_response(RebalanceInProgressError(), m.generation) == ()
    assert m.state is MemberState.COMPLETING_REBALANCE


@pytest.mark.parametrize(
    ("error", "member_after"), [(IllegalGenerationError(), "m1"), (UnknownMemberIdError(), "")]
)
@pytest.mark.parametrize("api", ["heartbeat", "commit", "sync"])
def test_lost_partitions_are_cancelled_with_no_commit_then_rejoin(
    error: KafkaError, member_after: str, api: str
) -> None:
    m = Membership([COOP])
    gen = joined(m, frozenset({P0, P1}))
    if api == "heartbeat":
        actions = m.on_heartbeat_response(error, gen)
    elif api == "commit":
        actions = m.on_commit_response(error, gen)
    else:
        m.request_rejoin("topic grew")
        m.join()
        m.on_join_response(
            None,
            generation_id=2,
            member_id="m1",
            leader_id="m1",
            protocol_name="cooperative-sticky",
        )
        actions = m.on_sync_response(error)
    revoke = only(actions)
    assert isinstance(revoke, Revoke)
    assert revoke.partitions == frozenset({P0, P1})
    assert revoke.lost
    assert not revoke.commit_first
    # The generation the member was last in (a JoinGroup had moved it to 2 before SyncGroup).
    last = 2 if api == "sync" else 1
    assert revoke.generation.same(last, "m1")
    assert not m.may_commit(last, "m1")
    assert not m.may_commit(gen.generation_id, gen.member_id)
    assert m.generation == Generation(-1, member_after)
    assert m.state is MemberState.UNJOINED
    assert m.heartbeat() is None
    assert isinstance(only(m.revoked(revoke)), Rejoin)
    join = only(m.join())
    assert isinstance(join, SendJoin)
    assert join.member_id == member_after
    assert join.owned_partitions == frozenset()
    assert join.generation_id == -1
    assert not m.may_commit(gen.generation_id, gen.member_id)


def test_unknown_member_id_on_join_resets_the_member_id() -> None:
    m = Membership([RANGE])
    gen = joined(m, frozenset())
    m.request_rejoin("subscription changed")
    m.join()
    assert only(m.on_join_response(UnknownMemberIdError())) == Rejoin(
        False, "JoinGroup: UNKNOWN_MEMBER_ID"
    )
    assert m.generation == Generation(-1, "")
    assert not m.may_commit(gen.generation_id, gen.member_id)


@pytest.mark.parametrize("api", ["heartbeat", "commit", "join", "sync"])
def test_fenced_instance_id_is_fatal_and_its_partitions_lost(api: str) -> None:
    m = Membership([COOP], group_instance_id="host-1")
    gen = joined(m, frozenset({P0}))
    fenced = FencedInstanceIdError()
    if api == "heartbeat":
        actions = m.on_heartbeat_response(fenced, gen)
    elif api == "commit":
        actions = m.on_commit_response(fenced, gen)
    else:
        m.request_rejoin("test")
        m.join()
        if api == "join":
            actions = m.on_join_response(fenced)
        else:
            m.on_join_response(
                None, generation_id=2, member_id="m1", leader_id="m1", protocol_name=COOP.name
            )
            actions = m.on_sync_response(fenced)
    revoke = only(actions)
    assert isinstance(revoke, Revoke)
    assert revoke.lost
    assert revoke.partitions == frozenset({P0})
    assert m.state is MemberState.FAILED
    assert not m.may_commit(gen.generation_id, gen.member_id)
    assert only(m.revoked(revoke)) == Fatal(fenced)
    assert m.leave() == ()
    assert m.heartbeat() is None


@pytest.mark.parametrize(
    "error",
    [
        GroupAuthorizationFailedError(),
        InconsistentGroupProtocolError(),
        GroupMaxSizeReachedError(),
        InvalidSessionTimeoutError(),
    ],
)
def test_fatal_join_errors(error: KafkaError) -> None:
    m = Membership([RANGE])
    m.start()
    m.coordinator_found()
    m.join()
    assert m.on_join_response(error) == (Fatal(error),)
    assert m.state is MemberState.FAILED


def test_join_response_naming_a_protocol_we_did_not_offer_is_fatal() -> None:
    m = Membership([RANGE])
    m.start()
    m.coordinator_found()
    m.join()
    fatal = only(
        m.on_join_response(None, generation_id=1, member_id="a", leader_id="a", protocol_name="x")
    )
    assert isinstance(fatal, Fatal)
    assert isinstance(fatal.error, InconsistentGroupProtocolError)


@pytest.mark.parametrize("error", [NotCoordinatorError(), CoordinatorNotAvailableError()])
def test_coordinator_moved_during_stable_keeps_the_generation(error: KafkaError) -> None:
    m = Membership([RANGE])
    gen = joined(m, frozenset({P0}))
    assert isinstance(only(m.on_heartbeat_response(error, gen)), FindCoordinator)
    assert m.state is MemberState.STABLE
    assert m.generation == gen
    assert m.owned_partitions == frozenset({P0})
    assert m.heartbeat() is None  # no heartbeats until the coordinator is found again
    assert m.on_heartbeat_response(error, gen) == ()  # one lookup at a time
    assert m.coordinator_found() == ()
    assert m.heartbeat() == gen
    assert m.may_commit(gen.generation_id, gen.member_id)


@pytest.mark.parametrize("error", [NotCoordinatorError(), CoordinatorNotAvailableError()])
def test_coordinator_moved_during_join_rejoins_with_the_same_member_id(error: KafkaError) -> None:
    m = Membership([COOP])
    gen = joined(m, frozenset({P0}))
    m.request_rejoin("topic grew")
    m.join()
    assert isinstance(only(m.on_join_response(error)), FindCoordinator)
    assert m.state is MemberState.UNJOINED
    assert m.generation == gen
    assert m.owned_partitions == frozenset({P0})
    assert isinstance(only(m.coordinator_found()), Rejoin)
    join = only(m.join())
    assert isinstance(join, SendJoin)
    assert (join.member_id, join.generation_id) == ("m1", 1)
    assert join.owned_partitions == frozenset({P0})


def test_connection_to_coordinator_lost_during_sync_rejoins() -> None:
    m = Membership([RANGE])
    m.start()
    m.coordinator_found()
    m.join()
    m.on_join_response(None, generation_id=1, member_id="a", leader_id="a", protocol_name="range")
    assert isinstance(only(m.coordinator_lost()), FindCoordinator)
    assert m.on_sync_response(None, assignment=[P0]) == ()  # the late answer is dropped
    assert isinstance(only(m.coordinator_found()), Rejoin)
    assert isinstance(only(m.join()), SendJoin)


def test_coordinator_load_in_progress_retries_the_join_after_a_backoff() -> None:
    m = Membership([RANGE])
    m.start()
    m.coordinator_found()
    m.join()
    rejoin = only(m.on_join_response(CoordinatorLoadInProgressError()))
    assert rejoin == Rejoin(after_backoff=True, reason=rejoin.reason)
    assert m.join() == (
        SendJoin("", None, ("range",), frozenset(), -1, "JoinGroup: COORDINATOR_LOAD_IN_PROGRESS"),
    )


def test_rebalance_in_progress_on_join_or_sync_rejoins_at_once() -> None:
    m = Membership([COOP])
    joined(m, frozenset({P0}))
    m.request_rejoin("x")
    m.join()
    assert only(m.on_join_response(RebalanceInProgressError())) == Rejoin(
        False, "JoinGroup: rebalance in progress"
    )
    m.join()
    m.on_join_response(
        None, generation_id=2, member_id="m1", leader_id="m1", protocol_name=COOP.name
    )
    assert isinstance(only(m.on_sync_response(RebalanceInProgressError())), Rejoin)
    assert m.owned_partitions == frozenset({P0})  # cooperative: kept through the rebalance


def test_stale_heartbeat_and_commit_responses_are_ignored() -> None:
    m = Membership([RANGE])
    gen = joined(m, frozenset({P0}), generation_id=5)
    old = Generation(4, "m1")
    for error in (IllegalGenerationError(), UnknownMemberIdError(), RebalanceInProgressError()):
        assert m.on_heartbeat_response(error, old) == ()
        assert m.on_commit_response(error, old) == ()
    assert m.generation == gen
    assert m.may_commit(5, "m1")


def test_commit_rebalance_in_progress_rejoins_and_partition_errors_change_nothing() -> None:
    m = Membership([RANGE])
    gen = joined(m, frozenset({P0}))
    assert m.on_commit_response(OffsetMetadataTooLargeError(), gen) == ()
    assert m.on_commit_response(None, gen) == ()
    assert isinstance(only(m.on_commit_response(RebalanceInProgressError(), gen)), Rejoin)


def test_session_expired_loses_partitions_and_rediscovers_the_coordinator() -> None:
    m = Membership([COOP], group_instance_id="host-1")
    gen = joined(m, frozenset({P0, P1}))
    revoke = only(m.session_expired())
    assert isinstance(revoke, Revoke)
    assert revoke.lost
    assert not m.may_commit(gen.generation_id, gen.member_id)
    assert isinstance(only(m.revoked(revoke)), FindCoordinator)
    assert isinstance(only(m.coordinator_found()), Rejoin)
    join = only(m.join())
    assert isinstance(join, SendJoin)
    assert (join.member_id, join.group_instance_id) == ("", "host-1")


def test_loss_during_an_eager_revocation_supersedes_it() -> None:
    m = Membership([RANGE])
    gen = joined(m, frozenset({P0, P1}))
    m.on_heartbeat_response(RebalanceInProgressError(), gen)
    first = only(m.join())
    assert isinstance(first, Revoke)
    assert not first.lost
    lost = only(m.on_heartbeat_response(UnknownMemberIdError(), gen))
    assert isinstance(lost, Revoke)
    assert lost.lost
    assert lost.partitions == frozenset({P0, P1})  # the draining workers are cancelled too
    assert not m.may_commit(gen.generation_id, gen.member_id)
    assert m.revoked(first) == ()  # superseded
    assert isinstance(only(m.revoked(lost)), Rejoin)


def test_dynamic_member_leaves_after_committing() -> None:
    m = Membership([COOP])
    gen = joined(m, frozenset({P0}))
    revoke = only(m.leave())
    assert revoke == Revoke(frozenset({P0}), False, True, gen, revoke.seq)
    assert m.may_commit(gen.generation_id, gen.member_id)
    assert m.leave() == ()
    assert m.revoked(revoke) == (SendLeave("m1", None, "the member is closing"), Left())
    assert m.state is MemberState.LEFT
    assert not m.may_commit(gen.generation_id, gen.member_id)


def test_static_member_does_not_send_leave_group() -> None:
    m = Membership([COOP], group_instance_id="host-1")
    joined(m, frozenset({P0}))
    revoke = only(m.leave())
    assert isinstance(revoke, Revoke)
    assert m.revoked(revoke) == (Left(),)


def test_member_that_never_joined_leaves_without_leave_group() -> None:
    m = Membership([RANGE])
    m.start()
    assert m.leave() == (Left(),)


def test_static_leader_rejoining_a_stable_group_may_skip_the_assignment() -> None:
    m = Membership([RANGE], group_instance_id="host-1")
    m.start()
    m.coordinator_found()
    m.join()
    sync = only(
        m.on_join_response(
            None,
            generation_id=9,
            member_id="m9",
            leader_id="m9",
            protocol_name="range",
            skip_assignment=True,
        )
    )
    assert sync == SendSync(Generation(9, "m9", "range", "m9"), "host-1", True, True)


def test_join_and_sync_answers_after_leave_are_ignored() -> None:
    m = Membership([COOP])
    joined(m, frozenset({P0}))
    m.request_rejoin("x")
    m.join()
    m.on_join_response(
        None, generation_id=2, member_id="m1", leader_id="m1", protocol_name=COOP.name
    )
    revoke = only(m.leave())
    assert isinstance(revoke, Revoke)
    assert m.on_sync_response(None, assignment=[P0, P1]) == ()
    assert m.owned_partitions == frozenset()
    assert m.revoked(revoke) == (SendLeave("m1", None, "the member is closing"), Left())
