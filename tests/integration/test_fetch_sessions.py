"""The fetcher per broker against a real broker: one fetcher for every topic's partitions,
and an incremental fetch session (KIP-227) that the broker grants and keeps."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
import trio

from trio_brod import open_client
from trio_brod.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.integration


async def test_one_fetcher_serves_every_topic_in_one_session(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topics = [make_topic(partitions=3), make_topic(partitions=3)]
    async with open_client(bootstrap_servers) as client, AsyncExitStack() as stack:
        for topic in topics:
            await client.start_producer(topic)
            for partition in range(3):
                values = [(None, b"%s/%d/%d" % (topic.encode(), partition, i)) for i in range(5)]
                await client.produce_batch(topic, values, partition=partition)
        subs = [
            await stack.enter_async_context(client.subscribe(topic, p, begin_offset="earliest"))
            for topic in topics
            for p in range(3)
        ]
        for sub in subs:
            with trio.fail_after(30):
                message_set = await sub.receive()
            assert [m.value for m in message_set] == [
                b"%s/%d/%d" % (sub.topic.encode(), sub.partition, i) for i in range(5)
            ]
            sub.ack(message_set.high_offset)
        fetchers = client._fetchers.fetchers
        assert len(fetchers) == 1  # one broker, one fetcher, both topics
        [fetcher] = fetchers
        # Caught up: the broker keeps the session, and idle long polls are incremental.
        # A partition fetched on the side connection (its window freed by an ack while the
        # long poll was in flight) is out of the session until that poll is answered, so
        # all six are in it only once every side fetch has found nothing new.
        with trio.fail_after(30):
            while fetcher.session.epoch < 3 or len(fetcher.session.sent) < 6:  # noqa: ASYNC110
                await trio.sleep(0.1)
        assert fetcher.session.session_id != 0
        assert sorted(fetcher.session.sent) == sorted((s.topic, s.partition) for s in subs)
        # A new message to one partition comes through the session.
        await client.produce_sync(topics[1], b"late", partition=2)
        with trio.fail_after(30):
            late = await subs[5].receive()
        assert [(m.offset, m.value) for m in late] == [(5, b"late")]
