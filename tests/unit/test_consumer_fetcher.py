"""The per-broker fetcher (``fetch_connection="broker"``, the default) against scripted
brokers: one request for every partition, the side connection during a long poll, leader
epochs (KIP-320) and truncation, UNKNOWN_LEADER_EPOCH."""

from __future__ import annotations

import pytest
import trio

from tests.fakes.broker import FakeBroker
from tests.fakes.log import FakeLog
from tests.unit.test_connection_merge import TOPIC, TopicLogs, consume_all
from trio_brod import Client, LogTruncated, Subscription, open_client

METADATA = 3


async def take(subscription: Subscription, count: int) -> list[int]:
    offsets: list[int] = []
    with trio.fail_after(10):
        async for message_set in subscription:
            offsets += [message.offset for message in message_set]
            subscription.ack(message_set.high_offset)
            if len(offsets) >= count:
                break
    return offsets


async def test_one_request_fetches_for_every_partition(broker: FakeBroker) -> None:
    logs = TopicLogs(broker, partitions=6)
    for partition in range(6):
        logs.append(partition, batches=4)
    async with open_client([broker.address]) as client:
        results = await consume_all(client, 6, 20, max_bytes=300)
        assert results == {p: [b"%d:%d" % (p, i) for i in range(20)] for p in range(6)}
    assert max(sum(len(t.partitions) for t in r.body.topics) for r in logs.fetches) == 6
    # Each partition fetched from every offset once, in order: nothing lost, nothing twice.
    for partition in range(6):
        offsets = [p.fetch_offset for _, p in logs.fetched(partition) if p.fetch_offset < 20]
        assert offsets == sorted(set(offsets))


async def test_a_window_freeing_room_during_a_long_poll_is_fetched_at_once(
    broker: FakeBroker,
) -> None:
    logs = TopicLogs(broker, partitions=3)
    logs.append(0, batches=2)  # partition 0: two batches of five; 1 and 2 idle
    # A long poll of 30 s: partition 0 must not wait for it to end.
    async with (
        open_client([broker.address]) as client,
        client.subscribe(TOPIC, 1, begin_offset="earliest", max_wait_time=30),
        client.subscribe(TOPIC, 2, begin_offset="earliest", max_wait_time=30),
        client.subscribe(
            TOPIC, 0, begin_offset="earliest", max_wait_time=30, prefetch_count=5
        ) as sub,
    ):
        with trio.fail_after(10):  # far below the long poll: no waiting for it
            first = await sub.receive()
            assert [m.offset for m in first] == [0, 1, 2, 3, 4]
            # The window is full: partition 0 is left out of the long poll that follows.
            await trio.sleep(0.2)
            sub.ack(first.high_offset)  # room for the five fetched already
            second = await sub.receive()
            assert [m.offset for m in second] == [5, 6, 7, 8, 9]
            sub.ack(second.high_offset)  # room: fetched at once, beside the long poll
            await trio.sleep(0.2)
            logs.append(0)
            third = await sub.receive()
            assert [m.offset for m in third] == [10, 11, 12, 13, 14]
    side = [r for r, p in logs.fetched(0) if p.fetch_offset == 10]
    assert side
    assert all(r.body.session_epoch == -1 for r in side)  # outside the session
    polls = [r for r in logs.fetches if r.body.max_wait_ms == 30_000]
    assert polls


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
    client: Client, broker: FakeBroker, log: FakeLog
) -> None:
    log.append([b"a", b"b"])
    log.append([b"c", b"d"])
    async with client.subscribe(TOPIC_LOG, 0, begin_offset="earliest", max_bytes=1) as sub:
        got = await take(sub, 2)
        metadata_before = sum(1 for r in broker.received if r.api_key == METADATA)
        log.fetch_errors.append(75)  # UNKNOWN_LEADER_EPOCH: our epoch is ahead of the broker's
        got += await take(sub, 2)
    assert got == [0, 1, 2, 3]
    assert sum(1 for r in broker.received if r.api_key == METADATA) > metadata_before


TOPIC_LOG = FakeLog.topic
