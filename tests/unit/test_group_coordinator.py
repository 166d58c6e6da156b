"""The group coordinator (trio_brod.groups._coordinator) and committed offsets
(trio_brod.groups.offsets), without a real broker.

Where the scenario is a coordinator's (it moves, answers NOT_COORDINATOR or
COORDINATOR_LOAD_IN_PROGRESS, hangs up, refuses the lookup), the tests run against the fake
Kafka (:func:`trio_brod.testing.fake_kafka`) on the loopback MockClock, with its levers:
``move_coordinator``, injected errors and dropped connections. The rest use an in-memory
cluster scripted per test (no sockets), for what the fake Kafka cannot be made to do: a
broker that speaks only older versions of OffsetCommit or OffsetFetch (the request shapes
per version, and UNSTABLE_OFFSET_COMMIT answered a set number of times in each version; the
fake's comes from a real open transaction, and test_fake_kafka_transactions.py runs
fetch_committed against it), a group-level error in an OffsetFetch v8+ batch (a Fail
control answers an empty batch), or every connection to the coordinator refused while its
lookups still succeed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from trio_brod import ClientConfig, ConnectionFailed, open_client
from trio_brod._metadata import BrokerMetadata
from trio_brod.groups._coordinator import GroupCoordinator, coordinator_error
from trio_brod.groups.offsets import (
    commit_offsets,
    fetch_committed,
    offset_commit_request,
    offset_fetch_partitions,
    offset_fetch_request,
)
from trio_brod.protocol import (
    FindCoordinatorRequest,
    HeartbeatRequest,
    HeartbeatResponse,
    Message,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
)
from trio_brod.protocol.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    GroupAuthorizationFailedError,
    IllegalGenerationError,
    NotCoordinatorError,
    UnknownMemberIdError,
    UnstableOffsetCommitError,
)
from trio_brod.testing import fake_kafka
from trio_brod.testing.fake import Action, Drop, Fail, FakeKafka, Intercepted

BROKERS = {n: BrokerMetadata(n, f"b{n}", 9092) for n in (1, 2, 3)}

# A broker's answer to a request: (node id, request, version) -> response, or raise.
Answer = Callable[[int, Any, int], Awaitable[Any]]


class FakeConnection:
    def __init__(self, node: int, cluster: FakeCluster) -> None:
        self.node = node
        self.cluster = cluster
        self.closed = False

    def version_for(self, api_key: int, max_version: int, min_version: int = 0) -> int:
        _low, high = self.cluster.versions.get(api_key, (0, 99))
        return min(high, max_version)

    async def request(self, message: Any, version: int, **_: Any) -> Any:
        await trio.sleep(0.001)
        self.cluster.sent.append((self.node, message, version))
        return await self.cluster.answer(self.node, message, version)


class FakeCluster:
    """What GroupCoordinator needs of a pool and a metadata cache, in memory."""

    def __init__(self, answer: Answer, coordinators: list[int], **config: Any) -> None:
        self.answer = answer
        self.coordinators = coordinators  # the answers to successive lookups (last repeats)
        self.config = ClientConfig(**config)
        self.lookups = 0
        self.sent: list[tuple[int, Any, int]] = []
        self.versions: dict[int, tuple[int, int]] = {}

    async def find_coordinator(self, key: str, key_type: int) -> BrokerMetadata:
        await trio.sleep(0.001)
        node = self.coordinators[min(self.lookups, len(self.coordinators) - 1)]
        self.lookups += 1
        return BROKERS[node]

    async def get(self, host: str, port: int) -> FakeConnection:
        await trio.lowlevel.checkpoint()
        return FakeConnection(int(host[1:]), self)

    def coordinator(self) -> GroupCoordinator:
        fake: Any = self
        return GroupCoordinator(fake, fake, "billing")


@asynccontextmanager
async def coordinated(
    brokers: int, **options: Any
) -> AsyncIterator[tuple[FakeKafka, GroupCoordinator]]:
    """A fake Kafka with a topic "orders", and the coordinator of group "billing" as a
    client of it sees it (``options``: the client's ClientConfig)."""
    async with fake_kafka(brokers=brokers) as fake:
        fake.create_topic("orders", partitions=4)
        async with open_client(fake.bootstrap_servers, **options) as client:
            yield fake, GroupCoordinator(client.pool, client.metadata, "billing")


def watch(fake: FakeKafka, api: type[Message]) -> list[Intercepted]:
    """Every request of *api* the fake receives from now on (broker, version, body)."""
    seen: list[Intercepted] = []
    fake.control(api, seen.append, times=None)  # append returns None: served as usual
    return seen


def committed(fake: FakeKafka) -> dict[tuple[str, int], int]:
    group = fake.group("billing")
    return {} if group is None else {tp: c.offset for tp, c in group.offsets.items()}


def commit_response(request: Any, error: type[Exception] | None = None) -> OffsetCommitResponse:
    code = error.code if error is not None else 0  # type: ignore[attr-defined]
    return OffsetCommitResponse(
        topics=[
            OffsetCommitResponse.OffsetCommitResponseTopic(
                name=t.name,
                partitions=[
                    OffsetCommitResponse.OffsetCommitResponsePartition(
                        partition_index=p.partition_index, error_code=code
                    )
                    for p in t.partitions
                ],
            )
            for t in request.topics
        ]
    )


async def test_not_coordinator_on_a_commit_finds_the_coordinator_again(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with coordinated(brokers=2) as (fake, coordinator):
        commits, lookups = watch(fake, OffsetCommitRequest), watch(fake, FindCoordinatorRequest)
        first = await coordinator.find()
        moved = fake.move_coordinator("billing")  # the old one answers NOT_COORDINATOR
        await commit_offsets(coordinator, "billing", {("orders", 0): 5, ("orders", 1): 7})
        assert [r.broker for r in commits] == [first.node_id, moved]
        assert len(lookups) == 2
        assert coordinator.broker is not None
        assert coordinator.broker.node_id == moved
        sent = commits[-1]
        assert isinstance(sent.body, OffsetCommitRequest)
        assert sent.version == OffsetCommitRequest.MAX_STABLE_VERSION
        assert sent.body.generation_id_or_member_epoch == -1
        assert sent.body.member_id == ""
        assert {
            (p.partition_index, p.committed_offset) for p in sent.body.topics[0].partitions
        } == {
            (0, 5),
            (1, 7),
        }
        assert committed(fake) == {("orders", 0): 5, ("orders", 1): 7}


async def test_coordinator_not_available_at_top_level_and_a_lost_connection_move_on(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with coordinated(brokers=3) as (fake, coordinator):
        heartbeats = watch(fake, HeartbeatRequest)
        answers: list[Action] = [Fail(CoordinatorNotAvailableError), Drop()]

        def move_away(request: Intercepted) -> Action | None:
            """The coordinator moves, and the one asked says so (or hangs up)."""
            fake.move_coordinator("billing")
            return answers.pop(0)

        fake.control(HeartbeatRequest, move_away, times=2)
        response = await coordinator.request(HeartbeatRequest(group_id="billing"))
        # Served by the third coordinator: no member, an answer for the caller.
        assert response.error_code == UnknownMemberIdError.code
        nodes = [r.broker for r in heartbeats]
        assert len(nodes) == len(set(nodes)) == 3
        assert coordinator.broker is not None
        assert coordinator.broker.node_id == nodes[-1] == fake.coordinator("billing")


async def test_a_loading_coordinator_is_asked_again_without_a_new_lookup(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with coordinated(brokers=2) as (fake, coordinator):
        heartbeats, lookups = watch(fake, HeartbeatRequest), watch(fake, FindCoordinatorRequest)
        fake.fail(HeartbeatRequest, CoordinatorLoadInProgressError, times=3)
        await coordinator.request(HeartbeatRequest(group_id="billing"))
        assert [r.broker for r in heartbeats] == [fake.coordinator("billing")] * 4
        assert len(lookups) == 1


async def test_retries_end_at_request_timeout_with_the_last_error(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with coordinated(brokers=2, request_timeout=20.0) as (fake, coordinator):
        commits, lookups = watch(fake, OffsetCommitRequest), watch(fake, FindCoordinatorRequest)
        fake.fail(OffsetCommitRequest, NotCoordinatorError, times=None)
        start = trio.current_time()
        with pytest.raises(NotCoordinatorError) as caught:
            await commit_offsets(coordinator, "billing", {("orders", 0): 1})
        elapsed = trio.current_time() - start
        assert 20.0 <= elapsed < 21.0
        assert caught.value.context == {"group_id": "billing"}
        # Backoff: far fewer attempts than a busy loop would make (50 ms doubling to 1 s).
        assert 10 < len(commits) < 40
        assert len(lookups) == len(commits)


async def test_a_lost_connection_that_persists_raises_after_request_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def answer(node: int, request: Any, version: int) -> Any:
        raise ConnectionFailed(f"b{node}:9092", "refused")

    cluster = FakeCluster(answer, coordinators=[1], request_timeout=5.0)
    with pytest.raises(ConnectionFailed):
        await cluster.coordinator().request(HeartbeatRequest(group_id="billing"))
    assert trio.current_time() == pytest.approx(5.0, abs=0.1)


async def test_other_errors_are_the_callers(autojump_clock: trio.testing.MockClock) -> None:
    async def answer(node: int, request: Any, version: int) -> Any:
        if isinstance(request, HeartbeatRequest):
            return HeartbeatResponse(error_code=IllegalGenerationError.code)
        return commit_response(request, UnknownMemberIdError)

    cluster = FakeCluster(answer, coordinators=[1])
    coordinator = cluster.coordinator()
    response = await coordinator.request(HeartbeatRequest(group_id="billing"))
    assert response.error_code == IllegalGenerationError.code
    with pytest.raises(UnknownMemberIdError) as caught:
        await commit_offsets(
            coordinator, "billing", {("orders", 3): 1}, generation_id=4, member_id="m-1"
        )
    assert caught.value.context == {"group_id": "billing", "topic": "orders", "partition": 3}
    assert len(cluster.sent) == 2  # neither was retried
    assert cluster.lookups == 1


async def test_a_failed_lookup_is_raised(loopback_clock: trio.testing.MockClock) -> None:
    async with coordinated(brokers=1) as (fake, coordinator):
        fake.fail(FindCoordinatorRequest, GroupAuthorizationFailedError)
        with pytest.raises(GroupAuthorizationFailedError):
            await coordinator.request(HeartbeatRequest(group_id="billing"))


async def test_concurrent_requests_share_one_lookup_and_keep_a_fresh_coordinator(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with coordinated(brokers=2) as (fake, coordinator):
        heartbeats, lookups = watch(fake, HeartbeatRequest), watch(fake, FindCoordinatorRequest)
        old = await coordinator.find()
        new = fake.move_coordinator("billing")
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(coordinator.request, HeartbeatRequest(group_id="billing"))
        # All five heard NOT_COORDINATOR from the old one; one lookup found the new one.
        assert len(lookups) == 2
        assert sorted(r.broker for r in heartbeats) == sorted([old.node_id] * 5 + [new] * 5)
        # A late report about the old one does not throw the new one away; a bare
        # mark_dead does.
        fresh = coordinator.broker
        assert fresh is not None
        assert fresh.node_id == new
        coordinator.mark_dead(old)
        assert coordinator.broker == fresh
        coordinator.mark_dead()
        assert coordinator.broker is None


# ------------------------------------------------------------------ request shapes per version


async def test_commit_versions_carry_instance_id_or_retention(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def answer(node: int, request: Any, version: int) -> Any:
        return commit_response(request)

    cluster = FakeCluster(answer, coordinators=[1])
    coordinator = cluster.coordinator()
    offsets = {("orders", 0): (10, "meta")}
    await commit_offsets(
        coordinator, "billing", offsets, generation_id=3, member_id="m", group_instance_id="i"
    )
    await commit_offsets(coordinator, "billing", offsets, retention=3600.0)
    cluster.versions[OffsetCommitRequest.API_KEY] = (2, 6)
    await commit_offsets(coordinator, "billing", offsets, group_instance_id="i")
    (_, newest, v1), (_, retained, v2), (_, older, v3) = cluster.sent
    assert (v1, newest.group_instance_id, newest.generation_id_or_member_epoch) == (9, "i", 3)
    assert newest.topics[0].partitions[0].committed_metadata == "meta"
    assert (v2, retained.retention_time_ms) == (4, 3_600_000)
    assert (v3, older.group_instance_id) == (6, None)
    for _, request, version in cluster.sent:
        request.encode(version)  # each is valid in its version


def test_bad_commit_arguments_are_refused() -> None:
    cluster = FakeCluster(answer=None, coordinators=[1])  # type: ignore[arg-type]

    async def commit(offsets: Any, **kwargs: Any) -> None:
        await commit_offsets(cluster.coordinator(), "g", offsets, **kwargs)

    with pytest.raises(TypeError, match="keys must be"):
        trio.run(commit, {"orders": 1})
    with pytest.raises(ValueError, match="bad offset -1"):
        trio.run(commit, {("orders", 0): -1})
    with pytest.raises(TypeError, match="bad offset"):
        trio.run(commit, {("orders", 0): 1.5})
    with pytest.raises(ValueError, match="retention"):
        trio.run(lambda: commit({("orders", 0): 1}, retention=0))


@given(
    offsets=st.dictionaries(
        st.tuples(st.sampled_from(["a", "b", "ü"]), st.integers(0, 2**31 - 1)),
        st.tuples(st.integers(0, 2**63 - 1), st.none() | st.text(max_size=5)),
        max_size=6,
    ),
    version=st.integers(2, OffsetCommitRequest.MAX_STABLE_VERSION),
    instance=st.none() | st.just("static-1"),
)
def test_commit_requests_round_trip_in_every_version(
    offsets: dict[tuple[str, int], tuple[int, str | None]], version: int, instance: str | None
) -> None:
    by_topic: dict[str, dict[int, tuple[int, str | None]]] = {}
    for (topic, partition), value in offsets.items():
        by_topic.setdefault(topic, {})[partition] = value
    request = offset_commit_request(
        "g", by_topic, version, generation_id=7, member_id="m", group_instance_id=instance
    )
    decoded = OffsetCommitRequest.decode(request.encode(version), version)
    assert {
        (t.name, p.partition_index): (p.committed_offset, p.committed_metadata)
        for t in decoded.topics
        for p in t.partitions
    } == dict(offsets.items())
    assert decoded.group_instance_id == (instance if version >= 7 else None)
    assert decoded.generation_id_or_member_epoch == 7


def fetch_answer(request: Any, version: int, offsets: dict[tuple[str, int], int], code: int = 0):  # type: ignore[no-untyped-def]
    """An OffsetFetch answer in the request's shape; partitions in ``offsets`` answer those
    offsets, the others -1; ``code`` goes on every partition."""
    api = OffsetFetchResponse
    topics = request.groups[0].topics if version >= 8 else request.topics
    if version >= 8:
        return api(
            groups=[
                api.OffsetFetchResponseGroup(
                    group_id=request.groups[0].group_id,
                    topics=[
                        api.OffsetFetchResponseTopics(
                            name=t.name,
                            partitions=[
                                api.OffsetFetchResponsePartitions(
                                    partition_index=p,
                                    committed_offset=offsets.get((t.name, p), -1),
                                    error_code=code,
                                )
                                for p in t.partition_indexes
                            ],
                        )
                        for t in topics
                    ],
                )
            ]
        )
    return api(
        topics=[
            api.OffsetFetchResponseTopic(
                name=t.name,
                partitions=[
                    api.OffsetFetchResponsePartition(
                        partition_index=p,
                        committed_offset=offsets.get((t.name, p), -1),
                        error_code=code,
                    )
                    for p in t.partition_indexes
                ],
            )
            for t in topics
        ]
    )


@pytest.mark.parametrize("highest", [9, 7, 6])
async def test_fetch_committed_waits_out_pending_transactions(
    autojump_clock: trio.testing.MockClock, highest: int
) -> None:
    unstable = iter([True, True, False])

    async def answer(node: int, request: Any, version: int) -> Any:
        code = UnstableOffsetCommitError.code if version >= 7 and next(unstable) else 0
        return fetch_answer(request, version, {("orders", 0): 42}, code)

    cluster = FakeCluster(answer, coordinators=[1])
    cluster.versions[OffsetFetchRequest.API_KEY] = (1, highest)
    found = await fetch_committed(cluster.coordinator(), "billing", [("orders", 0), ("orders", 1)])
    assert found == {("orders", 0): 42, ("orders", 1): None}
    versions = [version for _, _, version in cluster.sent]
    assert versions == ([highest] * 3 if highest >= 7 else [highest])
    for _, request, version in cluster.sent:
        assert request.require_stable is (version >= 7)
        request.encode(version)


async def test_fetch_committed_gives_up_on_a_transaction_that_stays_pending(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def answer(node: int, request: Any, version: int) -> Any:
        return fetch_answer(request, version, {}, UnstableOffsetCommitError.code)

    cluster = FakeCluster(answer, coordinators=[1])
    with pytest.raises(UnstableOffsetCommitError) as caught:
        await fetch_committed(cluster.coordinator(), "billing", [("orders", 0)], timeout=10.0)
    assert trio.current_time() == pytest.approx(10.0, abs=0.1)
    assert caught.value.context == {"group_id": "billing", "topic": "orders", "partition": 0}


async def test_fetch_committed_follows_the_coordinator_and_raises_refusals(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def answer(node: int, request: Any, version: int) -> Any:
        if node == 1:
            return OffsetFetchResponse(
                groups=[
                    OffsetFetchResponse.OffsetFetchResponseGroup(
                        group_id="billing", error_code=NotCoordinatorError.code
                    )
                ]
            )
        return OffsetFetchResponse(
            groups=[
                OffsetFetchResponse.OffsetFetchResponseGroup(
                    group_id="billing", error_code=GroupAuthorizationFailedError.code
                )
            ]
        )

    cluster = FakeCluster(answer, coordinators=[1, 2])
    with pytest.raises(GroupAuthorizationFailedError) as caught:
        await fetch_committed(cluster.coordinator(), "billing", [("orders", 0)])
    assert [node for node, _, _ in cluster.sent] == [1, 2]
    assert caught.value.context == {"group_id": "billing"}


def test_offset_fetch_shapes_and_coordinator_errors_are_read_in_every_version() -> None:
    for version in range(1, 10):
        request = offset_fetch_request("g", {"t": [0, 1]}, version, require_stable=True)
        request.encode(version)
        response = fetch_answer(request, version, {("t", 1): 5}, 0)
        decoded = OffsetFetchResponse.decode(response.encode(version), version)
        code, answers = offset_fetch_partitions(decoded)
        assert code == 0
        assert [(a.topic, a.partition, a.offset) for a in answers] == [("t", 0, -1), ("t", 1, 5)]
        moved = fetch_answer(request, version, {}, NotCoordinatorError.code)
        assert isinstance(coordinator_error(moved), NotCoordinatorError)
        assert coordinator_error(response) is None
    assert isinstance(
        coordinator_error(HeartbeatResponse(error_code=CoordinatorLoadInProgressError.code)),
        CoordinatorLoadInProgressError,
    )
    assert coordinator_error(HeartbeatResponse(error_code=UnknownMemberIdError.code)) is None


# ------------------------------------------------------------------ a real dropped connection


async def test_a_connection_dropped_mid_commit_is_replaced_by_the_new_coordinators(
    loopback_clock: trio.testing.MockClock,
) -> None:
    """Two brokers over real sockets: the coordinator hangs up on the commit, and has moved
    to the other broker when the client asks again."""
    async with coordinated(brokers=2, reconnect_cool_down=0.0) as (fake, coordinator):
        commits, lookups = watch(fake, OffsetCommitRequest), watch(fake, FindCoordinatorRequest)
        first = await coordinator.find()

        def hang_up(request: Intercepted) -> Drop:
            fake.move_coordinator("billing")
            return Drop()

        fake.control(OffsetCommitRequest, hang_up)
        with trio.fail_after(10):
            await commit_offsets(coordinator, "billing", {("orders", 0): 3})
        second = fake.coordinator("billing")
        assert second != first.node_id
        assert len(lookups) == 2
        assert [r.broker for r in commits] == [first.node_id, second]
        assert coordinator.broker is not None
        assert coordinator.broker.node_id == second
        assert committed(fake) == {("orders", 0): 3}
