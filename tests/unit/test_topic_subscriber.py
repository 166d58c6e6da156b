"""The topic subscriber against a scripted broker (its behaviour with a real one is in
tests/integration/test_topic_subscriber.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

import pytest
import trio
import trio.testing

from tests.consumer_fakes import FakeLog
from tests.fakebroker import FakeBroker
from tests.heap import alive
from trio_brod import Client, open_client, open_topic_subscriber
from trio_brod.consumer import MessageSet
from trio_brod.protocol.records import Record, RecordBatch

TOPIC = "fake-topic"


@pytest.fixture
async def broker(nursery: trio.Nursery) -> FakeBroker:
    started: FakeBroker = await nursery.start(FakeBroker().serve)
    return started


@pytest.fixture
def log(broker: FakeBroker) -> FakeLog:
    fake = FakeLog(topic=TOPIC)
    fake.serve(broker)
    return fake


@pytest.fixture
async def client(broker: FakeBroker, log: FakeLog) -> AsyncIterator[Client]:
    async with open_client([broker.address], request_timeout=5.0) as opened:
        yield opened


@pytest.mark.parametrize("message_type", ["message", "message_set"])
async def test_a_caught_up_subscriber_keeps_no_old_message_set(
    client: Client, log: FakeLog, message_type: Literal["message", "message_set"]
) -> None:
    # Waiting for the next message set after handling the last one, a partition's task must
    # not keep that set (and the records and fetched bytes it holds) alive: a subscriber of
    # many quiet partitions would otherwise keep one of each.
    kinds = (MessageSet, RecordBatch)
    all_handled = trio.Event()

    async def handle(partition: int, item: Record | MessageSet) -> None:
        last = item.high_offset if isinstance(item, MessageSet) else item.offset
        if last == 9:
            all_handled.set()

    await client.start_consumer(TOPIC)
    async with open_topic_subscriber(client, TOPIC, handle, message_type=message_type) as sub:
        await sub.wait_subscribed()
        await trio.testing.wait_all_tasks_blocked()
        before = alive(*kinds)
        for start in (0, 5):
            log.append([b"m%d" % offset for offset in range(start, start + 5)])
        with trio.fail_after(5):
            await all_handled.wait()
            await log.wait_for_fetch(offset=10)  # the next long poll, waiting for data
        await trio.testing.wait_all_tasks_blocked()
        assert sub.handled_offsets() == {0: 9}
        assert alive(*kinds) == before
