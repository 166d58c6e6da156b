"""How a fake broker answers a request: handlers wait only through ``wait_for``, so a
connection made with ``fake.connect`` is answered from the client's own write, and only a
request that waits (a long poll, a JoinGroup) is finished by a task, in its turn."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest
import trio
import trio.testing

from tests.unit.test_fake_transport import delivering_connection, long_poll, running_tasks
from trio_brod import open_client
from trio_brod.protocol import (
    CreateTopicsRequest,
    HeartbeatRequest,
    JoinGroupRequest,
    MetadataRequest,
    SyncGroupRequest,
)
from trio_brod.protocol.errors import MemberIdRequiredError
from trio_brod.protocol.frames import encode_request
from trio_brod.testing import fake_kafka
from trio_brod.testing.fake._pipe import PipeStream
from trio_brod.testing.fake._runtime import run_handler, start_handler, wait_for


def broker_tasks() -> list[str]:
    """The fake broker's tasks that serve connections."""
    return [
        name
        for name in running_tasks()
        if name.endswith(("BrokerServer._serve", "InProcessConnection._finish"))
    ]


async def test_a_request_is_answered_from_the_clients_write() -> None:
    """No task reads an in-process connection: the answer is there when send returns."""
    async with delivering_connection() as (connection, _, _):
        pending = connection.send(MetadataRequest(topics=None))
        assert pending.done.is_set()
        assert [t.name for t in pending.result().topics] == ["t"]
        assert broker_tasks() == []


async def test_a_waiting_request_is_finished_by_a_task_and_holds_those_behind_it() -> None:
    """As on TCP, the broker answers a connection's requests in order: a Metadata request
    sent after a long poll waits for it, even though it could be answered at once."""
    async with delivering_connection() as (connection, _, fake):
        (topic,) = (await connection.request(MetadataRequest(topics=None))).topics
        answered: list[str] = []
        fetch = connection.send(
            long_poll(topic.topic_id, 60_000), on_done=lambda: answered.append("fetch")
        )
        behind = connection.send(
            MetadataRequest(topics=None), on_done=lambda: answered.append("metadata")
        )
        await trio.testing.wait_all_tasks_blocked()
        assert answered == []
        assert broker_tasks() == ["trio_brod.testing.fake._server.InProcessConnection._finish"]
        fake.append("t", 0, [b"v"])  # wakes the long poll
        await fetch.done.wait()
        await behind.done.wait()
        assert answered == ["fetch", "metadata"]
        (partition,) = fetch.result().responses[0].partitions
        assert partition.high_watermark == 1
        await trio.testing.wait_all_tasks_blocked()
        assert broker_tasks() == []  # the task ends with the backlog
        assert connection.send(MetadataRequest(topics=None)).done.is_set()


async def test_a_long_poll_is_answered_at_its_deadline_on_trios_clock(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with delivering_connection() as (connection, _, _):
        (topic,) = (await connection.request(MetadataRequest(topics=None))).topics
        start = trio.current_time()
        response = await connection.request(long_poll(topic.topic_id, 30_000), timeout=60)
        assert trio.current_time() - start == pytest.approx(30)
        assert response.responses[0].partitions[0].records in (None, b"")


async def test_a_malformed_frame_closes_the_in_process_connection_from_the_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with fake_kafka() as fake:
        host, port = fake.bootstrap_servers[0].rsplit(":", 1)
        stream = await fake.connect(host, int(port))
        with caplog.at_level(logging.WARNING, logger="trio_brod.testing.fake"):
            await stream.send_all(b"\x00\x00\x00\x04junk")  # too short for a header
        assert "malformed request" in caplog.text
        assert await stream.receive_some() == b""
        with pytest.raises(trio.BrokenResourceError):
            await stream.send_all(encode_request(MetadataRequest(topics=None), 12, 1, None))


async def test_nothing_is_served_after_an_answers_delivery_closes_the_connection() -> None:
    """Two requests in one write; the client closes as the first answer arrives: the
    second is never served (its topic is not created)."""
    async with fake_kafka() as fake:
        host, port = fake.bootstrap_servers[0].rsplit(":", 1)
        stream = await fake.connect(host, int(port))
        assert isinstance(stream, PipeStream)
        answers: list[bytes] = []

        def delivered(data: bytes) -> None:
            answers.append(data)
            if data:
                stream.close()

        stream.deliver_to(delivered)

        def create(name: str) -> CreateTopicsRequest:
            topic = CreateTopicsRequest.CreatableTopic(
                name=name, num_partitions=1, replication_factor=1
            )
            return CreateTopicsRequest(topics=[topic], timeout_ms=1000)

        await stream.send_all(
            encode_request(create("first"), 7, 1, None)
            + encode_request(create("second"), 7, 2, None)
        )
        assert len([a for a in answers if a]) == 1  # then b"": the broker's end closed too
        assert "first" in fake.cluster.model.topics
        assert "second" not in fake.cluster.model.topics


async def test_a_handler_answers_without_a_task_when_it_need_not_wait() -> None:
    async def handler() -> None:
        await wait_for(already)

    already = trio.Event()
    already.set()
    assert start_handler(handler()) == (None, None)


async def test_a_handler_that_awaits_trio_itself_is_refused() -> None:
    """Only wait_for may suspend a handler: Trio's own waits would park whichever task
    happens to run it, a client's among them."""

    async def handler() -> None:
        await trio.lowlevel.checkpoint()

    with pytest.raises(RuntimeError, match="handlers wait only through wait_for"):
        await run_handler(handler())


async def test_a_waiting_handler_sees_its_cancellation_where_it_waits() -> None:
    seen: list[str] = []

    async def handler() -> None:
        try:
            await wait_for(trio.Event())
        except trio.Cancelled:
            seen.append("cancelled")
            raise

    with trio.move_on_after(1) as scope:
        await run_handler(handler())
    assert scope.cancelled_caught
    assert seen == ["cancelled"]


async def test_wait_for_returns_when_the_event_is_set_or_at_the_deadline(
    autojump_clock: trio.abc.Clock,
) -> None:
    event = trio.Event()

    async def handler(deadline: float) -> float:
        await wait_for(event, deadline)
        return trio.current_time()

    start = trio.current_time()
    assert await run_handler(handler(start + 5)) == start + 5
    async with trio.open_nursery() as nursery:

        async def set_later() -> None:
            await trio.sleep(1)
            event.set()

        nursery.start_soon(set_later)
        assert await run_handler(handler(start + 100)) == start + 6


class StepCounter(trio.abc.Instrument):
    """Counts the task steps of every task, by name."""

    def __init__(self) -> None:
        self.steps: Counter[str] = Counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps[task.name] += 1


async def test_a_waiting_join_is_woken_by_its_answer_not_by_every_group_request() -> None:
    """A JoinGroup waiting for the rest of its group to rejoin takes no task step while
    other groups' requests change the coordinator's state; its answer wakes it."""
    async with (
        fake_kafka() as fake,
        open_client(fake.bootstrap_servers, connect=fake.connect) as leading,
        open_client(fake.bootstrap_servers, connect=fake.connect) as joining,
    ):
        host, port = fake.bootstrap_servers[0].rsplit(":", 1)
        first, second = [await c.get_connection(host, int(port)) for c in (leading, joining)]

        def join(member_id: str) -> JoinGroupRequest:
            return JoinGroupRequest(
                group_id="a",
                session_timeout_ms=30_000,
                rebalance_timeout_ms=30_000,
                member_id=member_id,
                protocol_type="consumer",
                protocols=[JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=b"")],
            )

        async def joined(connection: Any) -> str:
            required = await connection.request(join(""), 9)
            assert required.error_code == MemberIdRequiredError.code
            return str(required.member_id)

        leader = await joined(first)
        generation = (await first.request(join(leader), 9)).generation_id
        sync = SyncGroupRequest(
            group_id="a",
            generation_id=generation,
            member_id=leader,
            protocol_type="consumer",
            protocol_name="range",
            assignments=[SyncGroupRequest.SyncGroupRequestAssignment(member_id=leader)],
        )
        assert (await first.request(sync, 5)).error_code == 0
        waiting = second.send(join(await joined(second)), 9)  # until the leader rejoins
        await trio.testing.wait_all_tasks_blocked()
        assert not waiting.done.is_set()
        counter = StepCounter()
        trio.lowlevel.add_instrument(counter)
        try:
            for _ in range(5):
                heartbeat = HeartbeatRequest(group_id="b", generation_id=1, member_id="m")
                await first.request(heartbeat)
        finally:
            trio.lowlevel.remove_instrument(counter)
        assert not waiting.done.is_set()
        assert [name for name in counter.steps if name.endswith("_finish")] == []
        await first.request(join(leader), 9)  # the rebalance completes
        await waiting.done.wait()
        assert waiting.result().error_code == 0
