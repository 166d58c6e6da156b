"""The topic subscriber against a scripted broker (its behaviour with a real one is in
tests/integration/test_topic_subscriber.py)."""

from __future__ import annotations

from typing import Literal

import pytest
import trio
import trio.testing

from tests.fakes.log import FakeLog
from tests.heap import alive
from trio_brod import Client, MessageSet, open_topic_subscriber
from trio_brod.protocol.records import Record, RecordBatch

TOPIC = FakeLog.topic  # the topic of the log the conftest serves


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
