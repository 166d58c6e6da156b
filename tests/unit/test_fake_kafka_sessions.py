"""The fake Kafka's incremental fetch sessions (KIP-227), through a real connection."""

from __future__ import annotations

import uuid
from typing import Any

import trio
import trio.testing

from trio_brod import open_client
from trio_brod.protocol import FetchRequest, FetchResponse
from trio_brod.protocol.errors import FetchSessionIdNotFoundError, InvalidFetchSessionEpochError
from trio_brod.testing import fake_kafka

VERSION = 16  # topic ids (v13+) and sessions (v7+)


def fetch(
    topic_id: uuid.UUID,
    offsets: dict[int, int],
    *,
    session: int,
    epoch: int,
    forget: tuple[int, ...] = (),
    wait_ms: int = 0,
) -> FetchRequest:
    gone = FetchRequest.ForgottenTopic(topic_id=topic_id, partitions=list(forget))
    return FetchRequest(
        max_wait_ms=wait_ms,
        min_bytes=1,
        session_id=session,
        session_epoch=epoch,
        topics=[
            FetchRequest.FetchTopic(
                topic_id=topic_id,
                partitions=[
                    FetchRequest.FetchPartition(
                        partition=p, fetch_offset=o, partition_max_bytes=1 << 20
                    )
                    for p, o in offsets.items()
                ],
            )
        ]
        if offsets
        else [],
        forgotten_topics_data=[gone] if forget else [],
    )


def answered(response: FetchResponse) -> dict[int, tuple[int, bool]]:
    """Partition -> (high watermark, has records) of every partition in the response."""
    return {
        p.partition_index: (p.high_watermark, bool(p.records))
        for t in response.responses
        for p in t.partitions
    }


async def test_incremental_fetches(autojump_clock: trio.testing.MockClock) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        topic_id = fake.create_topic("t", partitions=3).topic_id
        await client.start_producer("t")
        await client.produce_sync("t", b"a", partition=0)
        async with open_client(fake.bootstrap_servers) as poller:
            connection = await poller.get_leader_connection("t", 0)

            async def request(message: FetchRequest) -> Any:
                return await connection.request(message, VERSION)

            # A full fetch opens a session and answers every partition.
            full = await request(fetch(topic_id, {0: 0, 1: 0, 2: 0}, session=0, epoch=0))
            assert full.session_id != 0
            assert answered(full) == {0: (1, True), 1: (0, False), 2: (0, False)}
            session = full.session_id
            # Incremental, nothing changed: an empty answer, after the long poll.
            start = trio.current_time()
            quiet = await request(fetch(topic_id, {0: 1}, session=session, epoch=1, wait_ms=500))
            assert answered(quiet) == {}
            assert trio.current_time() - start >= 0.5
            # New records on partition 2, which the request did not name: the session did.
            await client.produce_sync("t", b"b", partition=2)
            news = await request(fetch(topic_id, {}, session=session, epoch=2))
            assert answered(news) == {2: (1, True)}
            # Forget partition 2; records on 1 and 2: only 1 is answered.
            await client.produce_sync("t", b"c", partition=1)
            await client.produce_sync("t", b"d", partition=2)
            forgot = await request(fetch(topic_id, {}, session=session, epoch=3, forget=(2,)))
            assert answered(forgot) == {1: (1, True)}
            # Out of turn, or unknown: errors, as Kafka answers.
            stale = await request(fetch(topic_id, {}, session=session, epoch=3))
            assert stale.error_code == InvalidFetchSessionEpochError.code
            lost = await request(fetch(topic_id, {}, session=session + 99, epoch=1))
            assert lost.error_code == FetchSessionIdNotFoundError.code
            # Closing the session: a sessionless full fetch.
            closed = await request(fetch(topic_id, {0: 0}, session=session, epoch=-1))
            assert closed.session_id == 0
            assert answered(closed) == {0: (1, True)}
            again = await request(fetch(topic_id, {}, session=session, epoch=4))
            assert again.error_code == FetchSessionIdNotFoundError.code


async def test_sessions_end_with_their_broker(autojump_clock: trio.testing.MockClock) -> None:
    async with fake_kafka(brokers=2) as fake:
        topic_id = fake.create_topic("t", partitions=1, replication_factor=2).topic_id
        leader = fake.model.partition("t", 0).leader
        async with open_client(fake.bootstrap_servers) as poller:
            connection = await poller.get_leader_connection("t", 0)
            full = await connection.request(fetch(topic_id, {0: 0}, session=0, epoch=0), VERSION)
            assert full.session_id != 0
        await fake.stop_broker(leader)
        await fake.start_broker(leader)
        fake.move_leader("t", 0, leader)
        async with open_client(fake.bootstrap_servers) as poller:
            connection = await poller.get_leader_connection("t", 0)
            lost = await connection.request(
                fetch(topic_id, {}, session=full.session_id, epoch=1), VERSION
            )
            assert lost.error_code == FetchSessionIdNotFoundError.code
