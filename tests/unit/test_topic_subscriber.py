"""The topic subscriber against the fake Kafka (its behaviour with a real one is in
tests/integration/test_topic_subscriber.py)."""

from __future__ import annotations

from typing import Literal

import pytest
import trio
import trio.testing

from tests.heap import alive
from tests.unit.conftest import FAKE_TOPIC as TOPIC
from tests.unit.conftest import fetch_at
from trio_brod import Client, MessageSet, open_topic_subscriber
from trio_brod.protocol import FetchRequest
from trio_brod.protocol.records import Record, RecordBatch
from trio_brod.testing.fake import FakeKafka


@pytest.mark.parametrize("message_type", ["message", "message_set"])
async def test_a_caught_up_subscriber_keeps_no_old_message_set(
    fake_client: Client, fake_kafka: FakeKafka, message_type: Literal["message", "message_set"]
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

    await fake_client.start_consumer(TOPIC)
    async with open_topic_subscriber(fake_client, TOPIC, handle, message_type=message_type) as sub:
        await sub.wait_subscribed()
        await trio.testing.wait_all_tasks_blocked()
        before = alive(*kinds)
        polling = fake_kafka.control(FetchRequest, fetch_at(10))
        for start in (0, 5):
            fake_kafka.append(TOPIC, 0, [b"m%d" % offset for offset in range(start, start + 5)])
        with trio.fail_after(5):
            await all_handled.wait()
            await polling.wait_seen()  # the next long poll, waiting for data
        await trio.testing.wait_all_tasks_blocked()
        assert sub.handled_offsets() == {0: 9}
        assert alive(*kinds) == before
