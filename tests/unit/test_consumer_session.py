"""The fetch session core (KIP-227) against a model of a broker's session cache, and the
per-broker fetch plan."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from trio_brod.consumer._session import (
    FINAL_EPOCH,
    INITIAL_EPOCH,
    FetchSession,
    PartitionState,
    SessionRequest,
    TopicPartition,
    plan,
    session_request,
    side_request,
)
from trio_brod.protocol import FetchRequest

NOT_FOUND = "FETCH_SESSION_ID_NOT_FOUND"
BAD_EPOCH = "INVALID_FETCH_SESSION_EPOCH"


class BrokerSessions:
    """What a broker does with session fields (Kafka's FetchManager, in miniature)."""

    def __init__(self) -> None:
        self.sessions: dict[int, tuple[int, dict[TopicPartition, PartitionState]]] = {}
        self.next_id = 1

    def handle(
        self, request: SessionRequest, *, create: bool
    ) -> tuple[str | None, int, dict[TopicPartition, PartitionState]]:
        """(error, session id, the partitions the request fetches for)."""
        if request.epoch == FINAL_EPOCH:
            self.sessions.pop(request.session_id, None)
            return None, 0, dict(request.send)
        if request.epoch == INITIAL_EPOCH:
            self.sessions.pop(request.session_id, None)
            if not create:
                return None, 0, dict(request.send)
            session_id = self.next_id
            self.next_id += 1
            self.sessions[session_id] = (1, dict(request.send))
            return None, session_id, dict(request.send)
        found = self.sessions.get(request.session_id)
        if found is None:
            return NOT_FOUND, 0, {}
        epoch, cached = found
        if epoch != request.epoch:
            return BAD_EPOCH, 0, {}
        cached.update(request.send)
        for tp in request.forget:
            cached.pop(tp, None)
        self.sessions[request.session_id] = (epoch + 1, cached)
        return None, request.session_id, dict(cached)

    def evict(self) -> None:
        self.sessions.clear()


TPS = [("a", 0), ("a", 1), ("b", 0), ("b", 7)]
states = st.builds(
    PartitionState,
    fetch_offset=st.integers(0, 3),
    max_bytes=st.sampled_from([100, 200]),
    leader_epoch=st.integers(-1, 1),
)
wanted_maps = st.dictionaries(st.sampled_from(TPS), states, max_size=len(TPS))
steps = st.lists(
    st.tuples(wanted_maps, st.sampled_from(["ok", "ok", "ok", "evict", "no_session", "lost"])),
    min_size=1,
    max_size=30,
)


@given(steps)
def test_the_broker_always_fetches_what_the_client_wants(script: list[Any]) -> None:
    broker = BrokerSessions()
    session = FetchSession()
    for wanted, event in script:
        before = dict(session.sent)
        incremental = session.epoch > 0
        request = session.next_request(wanted)
        assert request.wanted == wanted
        if incremental:
            # Rule 1: only what changed is written; rule 2: what is no longer wanted goes.
            assert request.send == {tp: s for tp, s in wanted.items() if before.get(tp) != s}
            assert set(request.forget) == set(before) - set(wanted)
        else:
            assert request.send == wanted
            assert request.session_id == 0 or request.epoch == INITIAL_EPOCH
        if event == "lost":
            session.failed()
            assert (session.session_id, session.epoch, session.sent) == (0, INITIAL_EPOCH, {})
            continue
        if event == "evict":
            broker.evict()
        error, session_id, fetched = broker.handle(request, create=event != "no_session")
        if error is not None:
            assert incremental  # a full request never fails for session reasons
            session.failed()  # rule 3
            assert (session.session_id, session.epoch, session.sent) == (0, INITIAL_EPOCH, {})
            continue
        assert fetched == wanted
        session.answered(session_id)
        if session.session_id:
            assert broker.sessions[session.session_id][1] == session.sent == wanted
            assert broker.sessions[session.session_id][0] == session.epoch


def test_incremental_requests_leave_out_unchanged_partitions() -> None:
    session = FetchSession()
    one, two = PartitionState(5, 100), PartitionState(9, 100)
    first = session.next_request({("t", 0): one, ("t", 1): two})
    assert first.full
    assert len(first.send) == 2
    session.answered(42)
    assert (session.session_id, session.epoch) == (42, 1)
    moved = PartitionState(6, 100)
    second = session.next_request({("t", 0): moved, ("t", 1): two})
    assert not second.full
    assert (second.session_id, second.epoch) == (42, 1)
    assert second.send == {("t", 0): moved}
    session.answered(42)
    third = session.next_request({("t", 0): moved})
    assert third.send == {}
    assert third.forget == [("t", 1)]
    assert third.epoch == 2


def test_a_broker_without_sessions_gets_full_requests() -> None:
    session = FetchSession(enabled=False)
    for _ in range(3):
        request = session.next_request({("t", 0): PartitionState(1, 10)})
        assert (request.session_id, request.epoch, len(request.send)) == (0, FINAL_EPOCH, 1)
        session.answered(0)
    session = FetchSession()
    session.next_request({("t", 0): PartitionState(1, 10)})
    session.answered(0)  # no session given: ask again with the next (full) request
    assert session.next_request({("t", 0): PartitionState(1, 10)}).epoch == INITIAL_EPOCH


def test_the_epoch_wraps_to_one() -> None:
    session = FetchSession()
    session.next_request({})
    session.answered(3)
    session.epoch = 2**31 - 1
    session.next_request({})
    session.answered(3)
    assert session.epoch == 1


@given(
    st.dictionaries(st.sampled_from(TPS), st.none() | states),
    st.sets(st.sampled_from(TPS)),
)
def test_plan_takes_partitions_with_room_that_are_not_in_flight(
    partitions: dict[TopicPartition, PartitionState | None], busy: set[TopicPartition]
) -> None:
    chosen = plan(partitions, 0.5, busy)
    assert chosen.max_wait == 0.5
    assert chosen.wanted == {
        tp: s for tp, s in partitions.items() if s is not None and tp not in busy
    }


def test_session_request_encodes_sends_and_forgets() -> None:
    topic_id = uuid.uuid4()
    request = SessionRequest(
        7,
        3,
        {},
        {("a", 1): PartitionState(10, 100, 4, 2)},
        [("a", 2), ("b", 0)],
    )
    message = session_request(
        request,
        {"a": topic_id, "b": None},
        version=17,
        max_wait=0.5,
        min_bytes=1,
        max_bytes=1000,
        isolation=1,
        rack="r1",
    )
    assert (message.session_id, message.session_epoch, message.max_wait_ms) == (7, 3, 500)
    assert message.rack_id == "r1"
    [fetch_topic] = message.topics
    assert (fetch_topic.topic, fetch_topic.topic_id) == ("a", topic_id)
    assert fetch_topic.partitions == [
        FetchRequest.FetchPartition(
            partition=1,
            current_leader_epoch=4,
            fetch_offset=10,
            last_fetched_epoch=2,
            partition_max_bytes=100,
        )
    ]
    forgotten = {(f.topic, tuple(f.partitions)) for f in message.forgotten_topics_data}
    assert forgotten == {("a", (2,)), ("b", (0,))}
    side = side_request({("a", 1): PartitionState(10, 100)})
    assert (side.session_id, side.epoch, side.full) == (0, FINAL_EPOCH, True)


def test_before_v12_the_last_fetched_epoch_is_left_out() -> None:
    request = SessionRequest(0, 0, {}, {("a", 1): PartitionState(10, 100, 4, 2)}, [])
    common: dict[str, Any] = {"max_wait": 0.5, "min_bytes": 1, "max_bytes": 1000, "isolation": 0}
    old = session_request(request, {"a": None}, version=11, **common)
    assert old.topics[0].partitions[0].last_fetched_epoch == -1
    assert old.topics[0].partitions[0].current_leader_epoch == 4
    old.encode(11)  # raises EncodeError for a field v11 does not have
    new = session_request(request, {"a": None}, version=12, **common)
    assert new.topics[0].partitions[0].last_fetched_epoch == 2
    new.encode(12)
