"""The per-broker fetcher (``fetch_connection="broker"``, the default) against scripted
brokers: one request for every partition, the side connection during a long poll, leader
epochs (KIP-320) and truncation, UNKNOWN_LEADER_EPOCH.

The multi-partition tests and UNKNOWN_LEADER_EPOCH run against the fake Kafka (a ``Pass``
control records each Fetch request with the connection it came on). The log truncation
tests use the scripted FakeLog (tests/fakes/log.py): the fake Kafka keeps one copy of each
log, so it has no unclean leader election, no diverging epoch (KIP-320) and no
OffsetForLeaderEpoch.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import pytest
import trio

from tests.fakes.broker import FakeBroker, Request, answer, api_versions_body
from tests.fakes.log import FakeLog
from tests.unit.conftest import FAKE_TOPIC, Requests
from tests.unit.test_consumer_fetch_connections import (
    TOPIC,
    append,
    fetch_log,
    fetched,
    fetches,
)
from trio_brod import Client, LogTruncated, Subscription, open_client
from trio_brod.protocol import FetchRequest, MetadataRequest, OffsetForLeaderEpochResponse
from trio_brod.protocol.errors import UnknownLeaderEpochError
from trio_brod.testing.fake import Control, FakeKafka

METADATA = 3
FETCH = 1
API_VERSIONS = 18
OFFSET_FOR_LEADER_EPOCH = 23


async def take(subscription: Subscription, count: int) -> list[int]:
    offsets: list[int] = []
    with trio.fail_after(10):
        async for message_set in subscription:
            offsets += [message.offset for message in message_set]
            subscription.ack(message_set.high_offset)
            if len(offsets) >= count:
                break
    return offsets


async def test_one_request_fetches_for_every_partition(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with fetch_log(6) as (fake, logs):
        for partition in range(6):
            append(fake, partition, batches=4)
        await one_request_for_every_partition(fake, logs)


async def one_request_for_every_partition(fake: FakeKafka, logs: Control) -> None:
    async with open_client(fake.bootstrap_servers) as client, AsyncExitStack() as stack:
        subs = [
            await stack.enter_async_context(
                client.subscribe(TOPIC, p, begin_offset="earliest", max_bytes=300)
            )
            for p in range(6)
        ]
        for partition, sub in enumerate(subs):
            assert await take(sub, 20) == list(range(20)), partition
        # All caught up: one long poll, in the session, for all six at once.
        with trio.fail_after(10):
            while not any(  # noqa: ASYNC110 (the fake records fetches; no event to wait on)
                request.max_wait_ms > 0 and state == dict.fromkeys(range(6), 20)
                for request, state in session_states(logs)
            ):
                await trio.sleep(0.05)
        assert len({r.connection for r in logs.seen}) <= 2  # the fetcher's two
    # Each partition fetched from every offset once, in order: nothing fetched twice.
    for partition in range(6):
        offsets = [p.fetch_offset for _, p in fetched(logs, partition) if p.fetch_offset < 20]
        assert offsets == sorted(set(offsets)), _debug(logs)


async def test_a_window_freeing_room_during_a_long_poll_is_fetched_at_once(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with fetch_log(3) as (fake, logs):
        append(fake, 0, batches=3)  # partition 0: three batches of five; 1 and 2 idle
        await window_freeing_room(fake, logs)


async def window_freeing_room(fake: FakeKafka, logs: Control) -> None:
    # A long poll of 30 s for the idle partitions: partition 0 must not wait for it.
    # max_bytes=1: a batch per fetch; prefetch_count=5: a batch fills the window.
    async with (
        open_client(fake.bootstrap_servers) as client,
        client.subscribe(TOPIC, 1, begin_offset="earliest", max_wait_time=30),
        client.subscribe(TOPIC, 2, begin_offset="earliest", max_wait_time=30),
        client.subscribe(
            TOPIC, 0, begin_offset="earliest", max_wait_time=30, prefetch_count=5, max_bytes=1
        ) as sub,
    ):
        with trio.fail_after(10):  # far below the long poll: no waiting for it
            for first in (0, 5, 10):
                message_set = await sub.receive()
                assert [m.offset for m in message_set] == list(range(first, first + 5))
                # The window is full: partition 0 is left out of the requests meanwhile.
                await trio.sleep(0.2)
                sub.ack(message_set.high_offset)  # room: fetched at once
    side = [r for r, p in fetched(logs, 0) if p.fetch_offset in (5, 10)]
    assert len(side) == 2
    assert all(r.session_epoch == -1 for r in side)  # outside the session
    assert all(r.max_wait_ms == 0 for r in side)
    assert [r for r in fetches(logs) if r.max_wait_ms == 30_000]  # the long poll


async def test_leader_epochs_are_sent_and_a_truncated_log_is_reported(
    client: Client, log: FakeLog
) -> None:
    log.leader_epoch = 3
    log.append([b"a"], partition_leader_epoch=3)
    log.append([b"b"], partition_leader_epoch=3)
    async with client.subscribe(TOPIC_LOG, 0, begin_offset="earliest") as sub:
        assert await take(sub, 2) == [0, 1]
        # An unclean leader election: the new leader's log holds epoch 3 only up to
        # offset 1, then another record there.
        log.batches.pop()
        log.append([b"B"], partition_leader_epoch=4)
        log.diverging = (3, 1)
        with trio.fail_after(10), pytest.raises(LogTruncated) as caught:
            await sub.receive()
    assert (caught.value.offset, caught.value.epoch) == (1, 3)
    sent = [f.topics[0].partitions[0] for f in log.fetches]
    assert {p.current_leader_epoch for p in sent} == {3}
    assert sent[-1].fetch_offset == 2
    assert sent[-1].last_fetched_epoch == 3


async def test_with_a_reset_policy_a_truncated_log_goes_on_where_it_diverged(
    client: Client, log: FakeLog
) -> None:
    log.append([b"a"], partition_leader_epoch=3)
    log.append([b"b"], partition_leader_epoch=3)
    async with client.subscribe(
        TOPIC_LOG, 0, begin_offset="earliest", offset_reset_policy="reset_to_earliest"
    ) as sub:
        assert await take(sub, 2) == [0, 1]
        log.batches.pop()
        log.append([b"B"], partition_leader_epoch=4)
        log.diverging = (3, 1)
        with trio.fail_after(10):
            message_set = await sub.receive()
    assert [(m.offset, m.value) for m in message_set] == [(1, b"B")]


async def test_unknown_leader_epoch_refreshes_metadata(
    fake_client: Client, fake_kafka: FakeKafka, fake_requests: Requests
) -> None:
    fake_kafka.append(TOPIC_LOG, 0, [b"a", b"b"])
    fake_kafka.append(TOPIC_LOG, 0, [b"c", b"d"])
    async with fake_client.subscribe(TOPIC_LOG, 0, begin_offset="earliest", max_bytes=1) as sub:
        got = await take(sub, 2)
        metadata_before = len(fake_requests.of(MetadataRequest))
        # Our epoch is ahead of the broker's.
        unknown = fake_kafka.fail(FetchRequest, UnknownLeaderEpochError, topic=TOPIC_LOG)
        got += await take(sub, 2)
    assert got == [0, 1, 2, 3]
    assert len(unknown.seen) == 1
    assert len(fake_requests.of(MetadataRequest)) > metadata_before


TOPIC_LOG = FAKE_TOPIC  # FakeLog's topic, and fake_client's


def session_states(logs: Control) -> list[tuple[Any, dict[int, int]]]:
    """Each fetch in the fetch session, with every partition the session then holds and its
    fetch offset (KIP-227: an incremental fetch names only what changed)."""
    states: list[tuple[Any, dict[int, int]]] = []
    state: dict[int, int] = {}
    for request in fetches(logs):
        if request.session_epoch == -1:
            continue  # outside the session
        if request.session_epoch == 0:
            state = {}
        for topic in request.topics:
            for partition in topic.partitions:
                state[partition.partition] = partition.fetch_offset
        for forgotten in request.forgotten_topics_data:
            for index in forgotten.partitions:
                state.pop(index, None)
        states.append((request, dict(state)))
    return states


def _debug(logs: Control) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """Each fetch: its connection, session epoch and (partition, offset) pairs."""
    return [
        (
            r.connection,
            r.body.session_epoch,
            [(p.partition, p.fetch_offset) for t in r.body.topics for p in t.partitions],
        )
        for r in logs.seen
    ]


async def test_before_fetch_v12_a_leader_change_checks_the_position_with_offset_for_leader_epoch(
    broker: FakeBroker, log: FakeLog
) -> None:
    async def api_versions(stream: trio.SocketStream, request: Request) -> None:
        await answer(stream, request, api_versions_body({FETCH: (4, 11)}))

    asked: list[Any] = []

    async def offset_for_leader_epoch(stream: trio.SocketStream, request: Request) -> None:
        asked.append(request.body)
        api = OffsetForLeaderEpochResponse
        found = api.EpochEndOffset(partition=0, leader_epoch=3, end_offset=1)
        body = api(topics=[api.OffsetForLeaderTopicResult(topic=TOPIC_LOG, partitions=[found])])
        await answer(stream, request, body)

    broker.handlers[API_VERSIONS] = api_versions
    broker.handlers[OFFSET_FOR_LEADER_EPOCH] = offset_for_leader_epoch
    log.leader_epoch = 3
    log.append([b"a"], partition_leader_epoch=3)
    log.append([b"b"], partition_leader_epoch=3)
    async with (
        open_client([broker.address]) as client,
        client.subscribe(TOPIC_LOG, 0, begin_offset="earliest") as sub,
    ):
        assert await take(sub, 2) == [0, 1]
        log.fetch_errors.append(6)  # NOT_LEADER_OR_FOLLOWER: the leader changed
        log.append([b"c"], partition_leader_epoch=4)
        with trio.fail_after(10), pytest.raises(LogTruncated) as caught:
            await sub.receive()
    assert (caught.value.offset, caught.value.epoch) == (1, 3)
    [request] = asked
    wanted = request.topics[0].partitions[0]
    assert (wanted.current_leader_epoch, wanted.leader_epoch) == (3, 3)
