"""Private connections handed back to the pool (ConnectionPool.give_back / take_spare), and
the group member's coordinator connection that the client's next member takes over."""

from __future__ import annotations

import trio
import trio.testing

from tests.unit.test_fake_kafka_groups import ignore, owned, wait_until
from trio_brod import ConsumerConfig, GroupConfig, open_client, open_group_subscriber
from trio_brod.protocol import ApiVersionsRequest, MetadataRequest
from trio_brod.testing import fake_kafka
from trio_brod.testing.fake import Hang, Pass

TOPIC = "orders"


async def test_an_idle_connection_handed_back_is_the_next_spare() -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        host, port = fake.bootstrap_servers[0].rsplit(":", 1)
        pool = client.pool
        assert pool.take_spare(host, int(port)) is None
        connection = await pool.open_private(host, int(port), pool.nursery)
        await connection.request(MetadataRequest(topics=None))
        assert connection.idle
        pool.give_back(connection)
        assert pool.take_spare(host, int(port)) is connection  # open, and taken once
        assert pool.take_spare(host, int(port)) is None
        assert not connection.closed
        pool.give_back(connection)
    assert connection.closed  # the client's close closes its spares


async def test_a_connection_with_an_answer_to_come_is_closed_not_kept() -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        host, port = fake.bootstrap_servers[0].rsplit(":", 1)
        pool = client.pool
        connection = await pool.open_private(host, int(port), pool.nursery)
        fake.control(MetadataRequest, Hang())
        with trio.move_on_after(0.5):
            await connection.request(MetadataRequest(topics=None))
        # Abandoned, but its answer could still come: the next owner would read it first.
        assert not connection.idle
        pool.give_back(connection)
        assert connection.closed
        assert pool.take_spare(host, int(port)) is None


async def test_the_next_member_takes_over_the_coordinator_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = GroupConfig(partition_assignment_strategy="range", heartbeat_rate=0.05)
    shared = ConsumerConfig(fetch_connection="shared")  # no fetch connections of their own
    async with fake_kafka() as fake:
        fake.create_topic(TOPIC, partitions=2)
        handshakes = fake.control(ApiVersionsRequest, Pass(), times=None)
        async with open_client(fake.bootstrap_servers) as client:
            opened = []
            for g in ("g1", "g2", "g3"):
                async with open_group_subscriber(
                    client, g, [TOPIC], ignore, config=config, consumer_config=shared
                ) as s:
                    await wait_until(lambda s=s: owned(s) == {0, 1})
                opened.append(len(handshakes.seen))
            # The client's shared connection, and the first member's to the coordinator,
            # which the next ones took over.
            assert opened == [2, 2, 2]
            host, port = fake.bootstrap_servers[0].rsplit(":", 1)
            spare = client.pool.take_spare(host, int(port))  # the last member handed it back
            assert spare is not None
            assert spare.idle
