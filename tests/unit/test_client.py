"""Client mechanics that need no real broker: bootstrap order, cool-down, task tree, config.

Most run against the fake Kafka. The task-tree tests and the cool-down one use the
scripted FakeBroker (tests/fakes/broker.py): they count the tasks of the whole run, which
the fake's own connection tasks would change, start a broker on a port of their choosing,
or hold every handshake at the broker to count how many are under way at once.
"""

from __future__ import annotations

import pytest
import trio

from tests.fakes.broker import FakeBroker, Request, answer, api_versions_body
from tests.task_tree import count_tasks
from trio_brod import (
    ClientClosed,
    ClientConfig,
    ConfigError,
    ConnectionFailed,
    NotFound,
    open_client,
)
from trio_brod.client import parse_bootstrap
from trio_brod.protocol import MetadataResponse
from trio_brod.testing import fake_kafka
from trio_brod.testing.fake import FakeKafka


async def free_port() -> int:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port: int = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()
    return port


def metadata_of(broker: FakeBroker) -> MetadataResponse:
    return MetadataResponse(
        cluster_id="fake",
        controller_id=1,
        brokers=[
            MetadataResponse.MetadataResponseBroker(node_id=1, host="127.0.0.1", port=broker.port)
        ],
    )


async def serve_metadata(broker: FakeBroker) -> None:
    async def handler(stream: trio.SocketStream, request: Request) -> None:
        await answer(stream, request, metadata_of(broker))

    broker.handlers[3] = handler


async def test_bootstrap_servers_are_tried_in_turn() -> None:
    dead = await free_port()
    async with fake_kafka() as fake:
        async with open_client([f"127.0.0.1:{dead}", *fake.bootstrap_servers]) as client:
            metadata = await client.get_metadata()
        assert metadata.cluster_id == "fake-kafka-cluster"
        assert f"127.0.0.1:{metadata.brokers[1].port}" == fake.bootstrap_servers[0]


async def test_no_bootstrap_server_reachable_names_them_all() -> None:
    first, second = await free_port(), await free_port()
    async with open_client([f"127.0.0.1:{first}", f"127.0.0.1:{second}"]) as client:
        with pytest.raises(ConnectionFailed) as info:
            await client.get_metadata()
    assert str(first) in str(info.value)
    assert str(second) in str(info.value)


async def test_dead_broker_cool_down_answers_at_once(autojump_clock: trio.abc.Clock) -> None:
    port = await free_port()
    async with open_client([f"127.0.0.1:{port}"], reconnect_cool_down=5.0) as client:
        with pytest.raises(ConnectionFailed) as first:
            await client.get_connection("127.0.0.1", port)
        assert "cool_down" not in str(first.value)
        with pytest.raises(ConnectionFailed, match=r"reconnect_cool_down=5.0s") as cached:
            await client.get_connection("127.0.0.1", port)
        assert cached.value is not first.value


async def test_after_the_cool_down_a_new_attempt_is_made(nursery: trio.Nursery) -> None:
    port = await free_port()
    async with open_client([f"127.0.0.1:{port}"], reconnect_cool_down=0.2) as client:
        with pytest.raises(ConnectionFailed):
            await client.get_connection("127.0.0.1", port)
        # Now start a broker on that port; after the cool-down the client reaches it.
        broker = FakeBroker()
        broker.port = port
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        nursery.start_soon(trio.serve_listeners, broker._handle, listeners)
        with pytest.raises(ConnectionFailed, match=r"reconnect_cool_down"):
            await client.get_connection("127.0.0.1", port)
        await trio.sleep(0.25)
        connection = await client.get_connection("127.0.0.1", port)
        assert not connection.closed


async def test_connections_are_shared() -> None:
    async with fake_kafka() as fake:
        host, port = fake.bootstrap_servers[0].rsplit(":", 1)
        async with open_client(fake.bootstrap_servers) as client:
            async with trio.open_nursery() as callers:
                for _ in range(5):
                    callers.start_soon(client.get_connection, host, int(port))
            first = await client.get_connection(host, int(port))
            assert first is await client.get_connection(host, int(port))
        assert fake.connections(1) == 1


async def test_leaving_the_block_stops_every_task(nursery: trio.Nursery) -> None:
    broker = await nursery.start(FakeBroker().serve)
    await serve_metadata(broker)
    before = count_tasks()
    async with open_client([broker.address]) as client:
        await client.get_metadata()
        await client.get_connection("127.0.0.1", broker.port)
        # A connection is a task with a reader and a writer child.
        assert count_tasks() >= before + 3
        connection = await client.get_connection("127.0.0.1", broker.port)
    assert count_tasks() == before
    assert connection.closed
    with pytest.raises(ClientClosed):
        await client.get_metadata()


async def test_block_exceptions_are_not_wrapped() -> None:
    async def fail_inside(fake: FakeKafka) -> None:
        async with open_client(fake.bootstrap_servers) as client:
            await client.get_metadata()
            raise KeyError("mine")

    async with fake_kafka() as fake:
        with pytest.raises(KeyError, match=r"mine"):
            await fail_inside(fake)


async def test_cancelled_block_leaks_no_task(nursery: trio.Nursery) -> None:
    broker = await nursery.start(FakeBroker().serve)
    before = count_tasks()
    with trio.move_on_after(0.2):
        async with open_client([broker.address]) as client:
            await client.get_connection("127.0.0.1", broker.port)
            await trio.sleep_forever()
    assert count_tasks() == before


async def test_producer_registry_needs_a_started_producer() -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        with pytest.raises(NotFound, match=r"start_producer"):
            await client.get_producer("orders", 0)
        with pytest.raises(NotFound, match=r"start_producer"):
            await client.produce("orders", b"v")
        with pytest.raises(NotFound, match=r"start_consumer"):
            await client.get_consumer("orders", 0)


@pytest.mark.parametrize(
    ("servers", "expected"),
    [
        ("a:1,b:2", [("a", 1), ("b", 2)]),
        (["a:1", " b:2 "], [("a", 1), ("b", 2)]),
        ([("a", 1)], [("a", 1)]),
        ("[::1]:9092", [("::1", 9092)]),
    ],
)
def test_parse_bootstrap(servers: object, expected: list[tuple[str, int]]) -> None:
    assert parse_bootstrap(servers) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("servers", ["", "nohost", "h:notaport", "h:70000", ":9092"])
def test_parse_bootstrap_rejects(servers: str) -> None:
    with pytest.raises(ConfigError, match=r"bootstrap"):
        parse_bootstrap(servers)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("request_timeout", 0, "request_timeout=0: expected a number > 0"),
        ("connect_timeout", -1.0, "connect_timeout=-1.0"),
        ("client_id", 5, "client_id=5: expected a str"),
        ("max_frame_size", 10, "max_frame_size=10"),
        ("allow_topic_auto_creation", "yes", "allow_topic_auto_creation='yes'"),
        ("reconnect_cool_down", float("nan"), "reconnect_cool_down=nan"),
        ("default_producer_config", {}, "default_producer_config"),
    ],
)
def test_client_config_names_the_bad_field(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        ClientConfig(**{field: value})  # type: ignore[arg-type]


async def test_config_and_options_are_exclusive() -> None:
    with pytest.raises(ConfigError, match=r"not both"):
        async with open_client("h:1", ClientConfig(), client_id="x"):
            pass


def test_an_interrupt_is_not_buried_under_its_consequences() -> None:
    from trio_brod._util import unwrap_single_exception

    group = BaseExceptionGroup("x", [ValueError("consequence"), KeyboardInterrupt()])
    with pytest.raises(KeyboardInterrupt), unwrap_single_exception():
        raise group
    two = ExceptionGroup("x", [ValueError("a"), KeyError("b")])
    with pytest.raises(ExceptionGroup), unwrap_single_exception():
        raise two


async def test_private_connections_open_a_few_at_a_time(nursery: trio.Nursery) -> None:
    # A topic's consumers each open a connection at once; a broker's listen backlog drops
    # what does not fit (and the kernel retries only a second later), so the client opens
    # a few to one broker at a time.
    broker = await nursery.start(FakeBroker().serve)
    release = trio.Event()
    handshaking = 0
    most = 0

    async def slow_api_versions(stream: trio.SocketStream, request: Request) -> None:
        nonlocal handshaking, most
        handshaking += 1
        most = max(most, handshaking)
        await release.wait()
        handshaking -= 1
        await answer(stream, request, api_versions_body())

    async with open_client([broker.address]) as client:
        await client.get_connection("127.0.0.1", broker.port)  # the shared one, first
        broker.handlers[18] = slow_api_versions
        opened = []

        async def open_one(connections: trio.Nursery) -> None:
            opened.append(await client.pool.open_private("127.0.0.1", broker.port, connections))

        async with trio.open_nursery() as connections:
            with trio.fail_after(10):
                async with trio.open_nursery() as openers:
                    for _ in range(30):
                        openers.start_soon(open_one, connections)
                    await trio.testing.wait_all_tasks_blocked()
                    assert handshaking == 8
                    release.set()
            assert (len(opened), most) == (30, 8)
            for connection in opened:
                connection.close()
    assert broker.connections == 31
