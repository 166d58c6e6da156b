"""What trio-brod logs: a dead broker (once, then a count), a retry, a leader move.

The logger names and levels are part of what operators configure, so they are checked as
they are documented in trio_brod._log.
"""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

import trio_brod._net.handshake as handshake_module
from tests.fakes.metadata import cache_with, metadata_answer
from trio_brod import ClientConfig, ConnectionFailed, ProducerConfig, open_client
from trio_brod._cluster import ConnectionPool
from trio_brod._log import Repeats
from trio_brod.protocol import MetadataRequest
from trio_brod.testing.fake import fake_kafka

TOPIC = "orders"


def records(caplog: pytest.LogCaptureFixture, name: str) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == name]


async def test_repeats_logs_once_then_a_count_then_the_recovery(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trio_brod.test")
    log = logging.getLogger("trio_brod.test")
    repeats = Repeats(interval=60.0)
    for _ in range(5):
        repeats.warning(log, "k", "broken: %s", ValueError("boom"))
        await trio.sleep(1.0)
    assert records(caplog, "trio_brod.test") == [(logging.WARNING, "broken: boom")]
    await trio.sleep(60.0)
    repeats.warning(log, "k", "broken: %s", "still")
    repeats.recovered(log, "k", "working")
    repeats.recovered(log, "k", "working")  # nothing: already recovered
    repeats.recovered(log, "other", "working")  # nothing: never failed
    assert records(caplog, "trio_brod.test")[1:] == [
        (logging.WARNING, "broken: still (and 4 more times in the last 60 s)"),
        (logging.INFO, "working (after 6 failures)"),
    ]


def test_the_library_prints_nothing_unless_asked() -> None:
    handlers = logging.getLogger("trio_brod").handlers
    assert any(isinstance(handler, logging.NullHandler) for handler in handlers)


async def test_a_dead_broker_is_logged_once_then_counted(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refuse(host: str, port: int) -> trio.SocketStream:
        await trio.lowlevel.checkpoint()
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(handshake_module, "open_tcp_stream", refuse)
    caplog.set_level(logging.INFO, "trio_brod")
    async with trio.open_nursery() as nursery:
        pool = ConnectionPool([("127.0.0.1", 1)], ClientConfig(reconnect_cool_down=1.0), nursery)
        for _ in range(30):  # 30 real attempts in 45 s
            with pytest.raises(ConnectionFailed):
                await pool.get("127.0.0.1", 1)
            await trio.sleep(1.5)
        pool.close()
    logged = records(caplog, "trio_brod.connection")
    assert len(logged) == 1
    level, message = logged[0]
    assert level == logging.WARNING
    assert message.startswith("cannot connect to 127.0.0.1:1: ")


async def test_a_retry_is_a_warning_naming_the_partition_and_the_recovery_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "trio_brod")
    quick = ProducerConfig(retry_backoff=0.01, retry_backoff_max=0.05)
    async with fake_kafka(brokers=2) as fake, open_client(fake.bootstrap_servers[:1]) as client:
        fake.create_topic(TOPIC, replication_factor=2)
        assert fake.model.partition(TOPIC, 0).leader == 1
        await client.start_producer(TOPIC, quick)
        assert await client.produce_sync(TOPIC, b"a", partition=0) == 0
        fake.move_leader(TOPIC, 0, 2)  # broker 1 now answers NOT_LEADER_OR_FOLLOWER
        assert await client.produce_sync(TOPIC, b"b", partition=0) == 1
    produced = records(caplog, "trio_brod.producer")
    assert produced[0][0] == logging.WARNING
    assert produced[0][1].startswith(f"{TOPIC}[0]: NOT_LEADER_OR_FOLLOWER (6) for {TOPIC}[0]")
    assert "trying again in" in produced[0][1]
    assert produced[-1] == (logging.INFO, f"{TOPIC}[0]: producing again (after 1 failures)")
    # The leader move itself, as the metadata cache saw it.
    moves = records(caplog, "trio_brod.metadata")
    assert (logging.INFO, f"leader of {TOPIC}[0] moved from broker 1 to 2 (epoch 1)") in moves


async def test_a_leader_move_is_info(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trio_brod")
    leaders = iter([1, 1, 2])
    cache, _ = cache_with({MetadataRequest: lambda: metadata_answer(next(leaders))})
    await cache.leader("orders", 0)
    await cache.leader("orders", 0, refresh=True)  # the same leader: nothing to say
    assert records(caplog, "trio_brod.metadata") == []
    await cache.leader("orders", 0, refresh=True)
    assert records(caplog, "trio_brod.metadata") == [
        (logging.INFO, "leader of orders[0] moved from broker 1 to 2 (epoch 1)")
    ]
