"""Partition consumer workers against the fake Kafka: subscriptions, errors, leader moves,
lost connections, unsubscribing with a fetch in flight, max_bytes, tasks.

A few run against the scripted FakeLog instead (tests/fakes/log.py), for what no Kafka the
fake stands for does: cut the first batch of a fetch at ``max_bytes`` (a broker without
KIP-74), answer a lone long poll at once with nothing, and for the order in which one
connection's requests reached the broker.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
import trio
import trio.testing

from tests.fakes.broker import FakeBroker
from tests.fakes.log import FakeLog
from tests.heap import alive
from tests.task_tree import count_tasks, tasks_named
from tests.unit.conftest import FAKE_TOPIC, Requests, fetch_at, fill
from trio_brod import (
    Client,
    ConsumerConfig,
    MessageSet,
    NotFound,
    Subscription,
    Timestamp,
    open_client,
)
from trio_brod._config import FetchConnection
from trio_brod._net import PendingResponse
from trio_brod.protocol import FetchRequest, FetchResponse, ListOffsetsRequest, MetadataRequest
from trio_brod.protocol.errors import (
    FencedLeaderEpochError,
    NotLeaderOrFollowerError,
    OffsetOutOfRangeError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
)
from trio_brod.testing.fake import Drop, FakeKafka, Hold, Intercepted

TOPIC = FAKE_TOPIC  # the topic of the fake Kafka's fake_client, and of the conftest's log
assert FakeLog.topic == TOPIC


def fill_log(log: FakeLog, batches: int, per_batch: int) -> None:
    for _ in range(batches):
        start = log.end
        log.append([b"m%d" % offset for offset in range(start, start + per_batch)])


async def take(subscription: Subscription, count: int, *, ack: bool = True) -> list[int]:
    """Receive ``count`` messages' offsets (acknowledging each set), within 10 s."""
    offsets: list[int] = []
    with trio.fail_after(10):
        async for message_set in subscription:
            offsets += [message.offset for message in message_set]
            if ack:
                subscription.ack(message_set.high_offset)
            if len(offsets) >= count:
                break
    return offsets


def offset_of(request: Intercepted) -> int | None:
    """The fetch offset of a Fetch request of partition 0, or None if it does not name it
    (an incremental fetch in a fetch session leaves out a partition whose offset is the
    same as in the session's last request)."""
    assert isinstance(request.body, FetchRequest)
    for topic in request.body.topics:
        for partition in topic.partitions:
            if partition.partition == 0:
                return partition.fetch_offset
    return None


async def nothing_more(subscription: Subscription, seconds: float = 0.3) -> bool:
    with trio.move_on_after(seconds):
        await subscription.receive()
        return False
    return True


# ------------------------------------------------------------------ starting points


async def test_begin_offsets(fake_client: Client, fake_kafka: FakeKafka) -> None:
    fill(fake_kafka, 3, 10)
    async with fake_client.subscribe(TOPIC, 0, begin_offset="earliest") as sub:
        assert await take(sub, 30) == list(range(30))
    async with fake_client.subscribe(TOPIC, 0, begin_offset=12) as sub:
        assert (await take(sub, 18))[:3] == [12, 13, 14]
    # Records are stamped 1_000_000 + i within each batch.
    async with fake_client.subscribe(TOPIC, 0, begin_offset=Timestamp(1_000_005)) as sub:
        assert (await take(sub, 1))[0] == 5
    async with fake_client.subscribe(TOPIC, 0, begin_offset="latest") as sub:
        assert await nothing_more(sub)
        fake_kafka.append(TOPIC, 0, [b"new"])
        assert await take(sub, 1) == [30]
    assert await fake_client.resolve_offset(TOPIC, 0, "earliest") == 0
    assert await fake_client.resolve_offset(TOPIC, 0, "latest") == 31
    assert await fake_client.resolve_offset(TOPIC, 0, Timestamp(1_000_007)) == 7
    # No message at or after that time: the end of the log.
    assert await fake_client.resolve_offset(TOPIC, 0, 9_999_999_999) == 31
    with pytest.raises(ValueError, match="timestamp must be >= 0"):
        await fake_client.resolve_offset(TOPIC, 0, -7)


async def test_a_datetime_begin_offset_starts_at_or_after_it(
    fake_client: Client, fake_kafka: FakeKafka
) -> None:
    fill(fake_kafka, 1, 10)  # offsets 0-9 stamped 1_000_000-1_000_009 ms
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    # 0.4 ms after the message at offset 4: the first at or after that is offset 5.
    moment = epoch + dt.timedelta(milliseconds=1_000_004, microseconds=400)
    async with fake_client.subscribe(TOPIC, 0, begin_offset=moment) as sub:
        assert (await take(sub, 1))[0] == 5
    assert await fake_client.resolve_offset(TOPIC, 0, moment) == 5
    assert await fake_client.resolve_offset(TOPIC, 0, epoch + dt.timedelta(seconds=1000.004)) == 4
    # Before 1970 is before every message (truncated, it was -1 ms: "latest").
    before_1970 = epoch - dt.timedelta(microseconds=1500)
    assert await fake_client.resolve_offset(TOPIC, 0, before_1970) == 0
    # -1 and -2 are "latest" and "earliest" as plain ints only, never as a Timestamp.
    for ms in (-1, -2, -3):
        with pytest.raises(ValueError, match="timestamp must be >= 0"):
            await fake_client.resolve_offset(TOPIC, 0, Timestamp(ms))


async def test_resubscribing_continues_after_the_last_ack(
    fake_client: Client, fake_kafka: FakeKafka
) -> None:
    fill(fake_kafka, 5, 10)
    async with fake_client.subscribe(TOPIC, 0, begin_offset="earliest", prefetch_count=10) as sub:
        first = await sub.receive()
        sub.ack(first.high_offset)
        await sub.receive()  # delivered, never acknowledged
    async with fake_client.subscribe(TOPIC, 0) as sub:
        assert (await take(sub, 1))[0] == first.high_offset + 1
    # A subscriber that acknowledged nothing leaves the position where it found it.
    async with fake_client.subscribe(TOPIC, 0, begin_offset=33) as sub:
        await sub.receive()
    async with fake_client.subscribe(TOPIC, 0) as sub:
        assert (await take(sub, 1))[0] == 33


async def first_offset(fake_client: Client, fake_kafka: FakeKafka, **options: object) -> int:
    """The offset of the first message a new subscription gets. A message is appended once
    it waits, so that a subscription that starts at the end of the log shows that too."""
    async with fake_client.subscribe(TOPIC, 0, **options) as sub:
        await trio.testing.wait_all_tasks_blocked()
        fake_kafka.append(TOPIC, 0, [b"new"])
        return (await take(sub, 1))[0]


@pytest.mark.parametrize(
    ("begin_offset", "expected"), [("earliest", 0), (12, 12), (Timestamp(1_000_005), 5)]
)
async def test_a_subscriber_that_leaves_before_its_start_is_resolved_hands_it_on(
    fake_client: Client, fake_kafka: FakeKafka, begin_offset: str | int | Timestamp, expected: int
) -> None:
    # The consumer config's begin_offset is "latest": the next subscriber must not fall back
    # to it, which would skip what the previous one asked for without a word.
    fill(fake_kafka, 3, 10)
    async with fake_client.subscribe(TOPIC, 0, begin_offset=begin_offset):
        pass  # left at once: the worker never resolved (nor even looked at) the start
    async with fake_client.subscribe(TOPIC, 0):
        pass  # acknowledged nothing either: the same start is handed on again
    assert await first_offset(fake_client, fake_kafka) == expected


async def test_a_subscriber_cancelled_while_its_start_is_looked_up_hands_it_on(
    fake_client: Client, fake_kafka: FakeKafka
) -> None:
    fill(fake_kafka, 3, 10)
    let_go = Hold()
    looked_up = fake_kafka.control(ListOffsetsRequest, let_go)
    async with fake_client.subscribe(TOPIC, 0, begin_offset="earliest"):
        with trio.fail_after(5):
            await looked_up.wait_seen()
    let_go.release()
    assert await first_offset(fake_client, fake_kafka) == 0


async def test_a_begin_offset_replaces_older_acks_even_unresolved(
    fake_client: Client, fake_kafka: FakeKafka
) -> None:
    fill(fake_kafka, 3, 10)
    async with fake_client.subscribe(TOPIC, 0, begin_offset="earliest") as sub:
        with trio.fail_after(5):
            await sub.receive()
        sub.ack(9)
    async with fake_client.subscribe(TOPIC, 0, begin_offset="latest"):
        pass  # left before resolving "latest" (30): the next one resolves it anew
    assert await first_offset(fake_client, fake_kafka) == 30
    # Resolved before leaving, "latest" is where that subscriber found the end (31): what
    # was written after it is delivered to the next one.
    async with fake_client.subscribe(TOPIC, 0, begin_offset="latest") as sub:
        assert await nothing_more(sub, 0.1)
    fake_kafka.append(TOPIC, 0, [b"after"])
    assert await first_offset(fake_client, fake_kafka) == 31


async def test_one_subscriber_at_a_time(fake_client: Client, fake_kafka: FakeKafka) -> None:
    async with fake_client.subscribe(TOPIC, 0):
        with pytest.raises(trio.BusyResourceError, match=r"fake-topic\[0\] already has"):
            async with fake_client.subscribe(TOPIC, 0):
                pass  # pragma: no cover
    async with fake_client.subscribe(TOPIC, 0):
        pass  # free again


# ------------------------------------------------------------------ errors


async def test_leader_moves_continue_at_the_exact_offset(
    fake_client: Client, fake_kafka: FakeKafka, fake_requests: Requests
) -> None:
    fill(fake_kafka, 6, 5)
    # max_bytes=1: a batch per fetch (brokers send the first batch whole anyway).
    async with fake_client.subscribe(
        TOPIC, 0, begin_offset="earliest", prefetch_count=7, max_bytes=1
    ) as sub:
        got = await take(sub, 7)
        metadata_before = len(fake_requests.of(MetadataRequest))
        # NOT_LEADER_OR_FOLLOWER, then FENCED_LEADER_EPOCH, then a time-out on the broker.
        errors = [NotLeaderOrFollowerError, FencedLeaderEpochError, RequestTimedOutError]
        controls = [fake_kafka.fail(FetchRequest, error, topic=TOPIC) for error in errors]
        got += await take(sub, 30 - len(got))
    assert got == list(range(30))  # no gap, no repeat
    fetches = fake_requests.of(FetchRequest)
    for control in controls:
        (failed,) = control.seen
        retry = fetches[fetches.index(failed) + 1]
        # Tried again at the same offset. In a fetch session (KIP-227) a client names a
        # partition again only when its fetch offset changed: an incremental fetch that
        # leaves it out asks at the offset of the failed one.
        assert offset_of(failed) is not None
        assert offset_of(retry) in (None, offset_of(failed))
    # The two leader errors made it ask where the leader is.
    assert len(fake_requests.of(MetadataRequest)) >= metadata_before + 2


async def test_lost_connection_mid_fetch_continues_at_the_exact_offset(
    fake_client: Client,
    fake_kafka: FakeKafka,
    fake_requests: Requests,
    loopback_clock: trio.testing.MockClock,
) -> None:
    fill(fake_kafka, 4, 5)
    async with fake_client.subscribe(
        TOPIC, 0, begin_offset="earliest", prefetch_count=5, max_bytes=1
    ) as sub:
        got = await take(sub, 5)
        hang_up = fake_kafka.control(FetchRequest, Drop(), times=2)
        got += await take(sub, 20 - len(got))
    assert got == list(range(20))
    assert len(hang_up.seen) == 2
    assert fake_requests.connections >= 4  # the private fetch connection opened again, twice


async def test_a_fatal_error_surfaces_and_the_client_lives_on(
    fake_client: Client, fake_kafka: FakeKafka
) -> None:
    fill(fake_kafka, 1, 3)
    fake_kafka.fail(FetchRequest, TopicAuthorizationFailedError, topic=TOPIC)  # fatal
    async with fake_client.subscribe(TOPIC, 0, begin_offset="earliest") as sub:
        with trio.fail_after(5), pytest.raises(TopicAuthorizationFailedError) as info:
            await sub.receive()
        assert info.value.context["partition"] == 0
        with pytest.raises(StopAsyncIteration):
            await sub.receive()  # the subscription is over, it does not hang
    assert await fake_client.resolve_offset(TOPIC, 0, "latest") == 3
    async with fake_client.subscribe(TOPIC, 0, begin_offset="earliest") as sub:
        assert await take(sub, 3) == [0, 1, 2]


async def test_corrupt_data_surfaces(fake_client: Client, fake_kafka: FakeKafka) -> None:
    # The stored batch's last byte flipped, as a damaged log segment would serve it.
    fake_kafka.append(TOPIC, 0, [b"a", b"b"])
    log = fake_kafka.log(TOPIC, 0)
    (batch,) = log.batches
    log.batches[0] = dataclasses.replace(batch, data=batch.data[:-1] + bytes([batch.data[-1] ^ 1]))
    async with fake_client.subscribe(TOPIC, 0, begin_offset="earliest") as sub:
        with trio.fail_after(5), pytest.raises(Exception, match=r"fake-topic\[0\]"):
            await sub.receive()


async def test_offset_reset_policies(fake_client: Client, fake_kafka: FakeKafka) -> None:
    fill(fake_kafka, 4, 5)
    fake_kafka.log(TOPIC, 0).delete_records(10)
    async with fake_client.subscribe(TOPIC, 0, begin_offset=3) as sub:
        with trio.fail_after(5), pytest.raises(OffsetOutOfRangeError):
            await sub.receive()
    async with fake_client.subscribe(
        TOPIC, 0, begin_offset=3, offset_reset_policy="reset_to_earliest"
    ) as sub:
        assert (await take(sub, 1))[0] == 10
    async with fake_client.subscribe(
        TOPIC, 0, begin_offset=500, offset_reset_policy="reset_to_latest"
    ) as sub:
        assert await nothing_more(sub)
        fake_kafka.append(TOPIC, 0, [b"after"])
        assert await take(sub, 1) == [20]


# ------------------------------------------------------------------ lifecycle


async def test_unsubscribing_cancels_the_fetch_in_flight(
    fake_client: Client, fake_kafka: FakeKafka, fake_requests: Requests
) -> None:
    fill(fake_kafka, 2, 5)
    private = {"fetch_connection": "partition"}  # brod's: a connection per worker
    async with fake_client.subscribe(
        TOPIC, 0, begin_offset="earliest", prefetch_count=5, **private
    ) as sub:
        sub.ack((await sub.receive()).high_offset)
        await sub.receive()
    await trio.testing.wait_all_tasks_blocked()
    before = count_tasks()  # the worker's connection closed with the subscription
    hold = Hold()
    held = fake_kafka.control(FetchRequest, hold, times=None)
    async with fake_client.subscribe(TOPIC, 0, **private) as sub:
        with trio.fail_after(5):
            await held.wait_seen()
        # A fetch is held by the broker; the worker's private connection adds its tasks:
        # its own, the reader, the writer and the timer.
        assert count_tasks() == before + 4
    # Leaving did not wait for the fetch, and the private connection is gone with its tasks.
    await trio.testing.wait_all_tasks_blocked()
    assert count_tasks() == before
    hold.release()
    async with fake_client.subscribe(TOPIC, 0, **private) as sub:
        assert await take(sub, 5) == list(range(5, 10))


async def test_stopping_the_consumer_ends_iteration(
    fake_client: Client, fake_kafka: FakeKafka
) -> None:
    fill(fake_kafka, 1, 3)
    await fake_client.start_consumer(TOPIC)
    consumer = await fake_client.get_consumer(TOPIC, 0)
    ended = trio.Event()
    got_one = trio.Event()

    async def subscriber() -> None:
        async with fake_client.subscribe(TOPIC, 0, begin_offset="earliest") as sub:
            async for message_set in sub:
                got_one.set()
                sub.ack(message_set.high_offset)
        ended.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(subscriber)
        with trio.fail_after(5):
            await got_one.wait()
        await fake_client.stop_consumer(TOPIC)
        with trio.fail_after(5):
            await ended.wait()
    with pytest.raises(NotFound, match="was stopped"):
        async with consumer.subscribe():
            pass  # pragma: no cover
    with pytest.raises(NotFound):
        await fake_client.get_consumer(TOPIC, 0)


async def test_leaving_the_client_stops_every_task(fake_kafka: FakeKafka) -> None:
    fake_kafka.create_topic(TOPIC)
    fill(fake_kafka, 2, 5)
    before = count_tasks()
    async with open_client(fake_kafka.bootstrap_servers) as client:
        async with client.subscribe(TOPIC, 0, begin_offset="earliest") as sub:
            await sub.receive()
        async with client.subscribe(TOPIC, 0, max_wait_time=5) as sub:
            with trio.move_on_after(0.1):
                await sub.receive()  # the worker is in a long poll when the client closes
    assert count_tasks() == before


async def test_a_partition_consumer_task_starts_with_its_first_subscriber(
    fake_kafka: FakeKafka,
) -> None:
    # A group member subscribes to the partitions assigned to it: the others cost no task.
    fake_kafka.create_topic("three", partitions=3)
    fake_kafka.append("three", 1, [b"a", b"b"])
    async with open_client(fake_kafka.bootstrap_servers) as client:
        await client.start_consumer("three")
        workers = [await client.get_consumer("three", p) for p in range(3)]
        assert [client.find_consumer("three", p) for p in range(3)] == workers
        assert tasks_named("trio_brod consumer ") == []
        async with client.subscribe("three", 1, begin_offset="earliest") as sub:
            message_set = await sub.receive()
            assert [m.value for m in message_set] == [b"a", b"b"]
            sub.ack(message_set.high_offset)
            [task] = tasks_named("trio_brod consumer ")
            assert task.name == "trio_brod consumer three[1]"
        assert tasks_named("trio_brod consumer ") == [task]  # idle, until the topic stops
        async with client.subscribe("three", 1) as sub:
            fake_kafka.append("three", 1, [b"c"])
            assert [m.value for m in await sub.receive()] == [b"c"]
            assert tasks_named("trio_brod consumer ") == [task]  # the same task serves
        await client.stop_consumer("three")
        assert tasks_named("trio_brod consumer ") == []
        for worker in workers:
            with pytest.raises(NotFound, match="was stopped"):
                async with worker.subscribe():
                    pass  # pragma: no cover


async def test_a_consumer_never_subscribed_to_is_stopped_with_the_client(
    fake_kafka: FakeKafka,
) -> None:
    # Its task never started, and must not start in the topic's nursery once that is gone.
    fake_kafka.create_topic(TOPIC)
    async with open_client(fake_kafka.bootstrap_servers) as client:
        await client.start_consumer(TOPIC)
        worker = await client.get_consumer(TOPIC, 0)
    with pytest.raises(NotFound, match="was stopped"):
        async with worker.subscribe():
            pass  # pragma: no cover


async def test_shared_leader_connection(
    fake_client: Client, fake_kafka: FakeKafka, fake_requests: Requests
) -> None:
    fill(fake_kafka, 2, 5)
    async with fake_client.subscribe(
        TOPIC, 0, begin_offset="earliest", share_leader_conn=True, max_wait_time=0.1
    ) as sub:
        assert await take(sub, 10) == list(range(10))
    assert fake_requests.connections == 1  # metadata, offsets and fetches on one connection


# ------------------------------------------------------------------ fetching


async def test_max_bytes_grows_for_a_large_batch_and_shrinks_back(
    client: Client, log: FakeLog
) -> None:
    log.strict_max_bytes = True  # no KIP-74: the broker cuts even the first batch
    log.append([b"x" * 3000])
    for _ in range(6):
        log.append([b"y" * 10])
    async with client.subscribe(
        TOPIC, 0, begin_offset="earliest", max_bytes=1000, size_stat_window=2, prefetch_count=1
    ) as sub:
        got = await take(sub, 7)
        with trio.fail_after(5):  # the next fetch, at the end of the log
            await log.wait_for_fetch(offset=7)
    assert got == list(range(7))
    sizes = [f.topics[0].partitions[0].partition_max_bytes for f in log.fetches]
    assert sizes[0] == 1000
    assert max(sizes) >= 3000
    assert sizes[-1] == 1000  # back once two small batches went by


async def test_sleep_timeout_spaces_empty_fetches(
    fake_client: Client, fake_kafka: FakeKafka, fake_requests: Requests
) -> None:
    # On the real clock: without sleep_timeout the fetches would come back to back, and on a
    # MockClock a loop that never sleeps stops the clock (the test would hang, not fail).
    async with fake_client.subscribe(
        TOPIC, 0, begin_offset="earliest", max_wait_time=0, sleep_timeout=0.2
    ) as sub:
        await trio.sleep(0.7)
        assert 2 <= len(fake_requests.of(FetchRequest)) <= 5
        fake_kafka.append(TOPIC, 0, [b"wake"])
        assert await take(sub, 1) == [0]


async def test_a_long_poll_answered_early_counts_as_a_whole_one(
    client: Client, log: FakeLog
) -> None:
    # With fetch_connection="shared", a partition's long poll is merged with others' and
    # ends as soon as one of them has data. An idle partition answered early with nothing
    # polls again only when its own long poll would have ended: no busy loop.
    log.early_answers = True
    wait = 0.2
    await client.start_consumer(
        TOPIC, ConsumerConfig(fetch_connection="shared", max_wait_time=wait)
    )
    async with client.subscribe(TOPIC, 0, begin_offset="earliest"):
        await trio.sleep(1.0)
    polls = [f for f in log.fetches if f.max_wait_ms > 0]
    assert 2 <= len(polls) <= 1.0 / wait + 2


@pytest.mark.parametrize("fetch_connection", ["partition", "broker", "shared"])
async def test_a_caught_up_worker_keeps_no_old_answer(
    fake_client: Client, fake_kafka: FakeKafka, fetch_connection: FetchConnection
) -> None:
    # Waiting in a long poll after everything was delivered and acknowledged, neither the
    # worker nor its connection's reader may keep the last answer (and its records) alive.
    kinds = (FetchResponse, FetchResponse.PartitionData, PendingResponse, MessageSet)
    await fake_client.start_consumer(TOPIC, ConsumerConfig(fetch_connection=fetch_connection))
    async with fake_client.subscribe(TOPIC, 0, begin_offset="earliest") as sub:
        await trio.testing.wait_all_tasks_blocked()
        before = alive(*kinds)
        polling = fake_kafka.control(FetchRequest, fetch_at(10))
        fill(fake_kafka, 2, 5)
        assert await take(sub, 10) == list(range(10))
        with trio.fail_after(5):
            await polling.wait_seen()  # the next long poll, waiting for data
        await trio.testing.wait_all_tasks_blocked()
        assert alive(*kinds) == before


@pytest.mark.parametrize("fetch_connection", ["shared"])
async def test_subscriptions_cancelled_in_a_long_poll_leave_no_pile_of_polls(
    client: Client, broker: FakeBroker, log: FakeLog, fetch_connection: FetchConnection
) -> None:
    # Each subscription left while caught up leaves its long poll at the broker. On a shared
    # connection, which the broker answers in order, later requests must wait behind at
    # most one of them, not behind one per subscription: the polls of the subscriptions
    # that left while it was in flight are never written.
    fill_log(log, 1, 3)
    end = log.end
    await client.start_consumer(
        TOPIC, ConsumerConfig(fetch_connection=fetch_connection, max_wait_time=5)
    )
    since = len(broker.received)
    for cycle in range(10):  # each cycle's fetches are marked by their max_bytes
        async with client.subscribe(TOPIC, 0, begin_offset=end, max_bytes=10_000 + cycle):
            await trio.testing.wait_all_tasks_blocked()  # in its long poll (or queued for it)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.resolve_offset, TOPIC, 0)
            await trio.testing.wait_all_tasks_blocked()
            log.append([b"new"])  # ends the long poll in flight, so nothing waits 5 s
    async with client.subscribe(TOPIC, 0, begin_offset=end, max_bytes=99_999) as sub:
        assert await take(sub, 1) == [end]
    await trio.testing.wait_all_tasks_blocked(cushion=0.05)  # the broker read everything
    polls = [
        f.topics[0].partitions[0].partition_max_bytes for f in log.fetches if f.max_wait_ms > 0
    ]
    assert polls[0] == 10_000
    assert set(polls) <= {10_000, 99_999}  # no other cycle's poll was ever written
    # The ListOffsets came right after the one long poll on its connection, if any.
    received = broker.received[since:]
    (offsets,) = [r for r in received if r.api_key == 2]
    before = received[: received.index(offsets)]
    assert sum(1 for r in before if r.api_key == 1 and r.connection == offsets.connection) <= 1


async def test_one_off_fetch(fake_client: Client, fake_kafka: FakeKafka) -> None:
    fill(fake_kafka, 3, 4)
    message_set = await fake_client.fetch(TOPIC, 0, 5, max_bytes=1)
    # The first batch comes whole although it is larger than max_bytes (KIP-74).
    assert [m.offset for m in message_set] == [5, 6, 7]
    assert message_set.high_watermark == 12
    assert message_set.next_offset == 8
    empty = await fake_client.fetch(TOPIC, 0, 12, max_wait_time=0)
    assert len(empty) == 0
    assert empty.next_offset == 12
    with pytest.raises(OffsetOutOfRangeError):
        await fake_client.fetch(TOPIC, 0, 13, max_wait_time=0)
    with pytest.raises(ValueError, match="offset"):
        await fake_client.fetch(TOPIC, 0, -1)


async def test_one_off_fetch_without_kip_74(client: Client, log: FakeLog) -> None:
    # A broker that cuts even the first batch at max_bytes (before KIP-74): the fetch grows
    # its max_bytes until a whole batch comes.
    fill_log(log, 3, 4)
    log.strict_max_bytes = True
    message_set = await client.fetch(TOPIC, 0, 8, max_bytes=10)
    assert [m.value for m in message_set] == [b"m8", b"m9", b"m10", b"m11"]
