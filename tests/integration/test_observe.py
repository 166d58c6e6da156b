"""Metrics, spans and hooks against a real broker: counts match exactly what was produced
and consumed, handler spans link to the producing span, a group's commits and rebalance
are measured (trio_brod.observe, with OpenTelemetry's SDK in memory: tests/otel.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio
from opentelemetry import trace

from tests.otel import Otel
from trio_brod import (
    ConsumerConfig,
    GroupConfig,
    ProducerConfig,
    observe,
    open_client,
    open_group_subscriber,
    open_topic_subscriber,
)
from trio_brod.protocol.records import Record
from trio_brod.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.integration


class Recorder(observe.Hook):
    def __init__(self) -> None:
        self.commits: list[observe.Committed] = []
        self.rebalances: list[observe.Rebalanced] = []
        self.requests: list[observe.RequestAnswered] = []

    def committed(self, event: observe.Committed) -> None:
        self.commits.append(event)

    def rebalanced(self, event: observe.Rebalanced) -> None:
        self.rebalances.append(event)

    def request_answered(self, event: observe.RequestAnswered) -> None:
        self.requests.append(event)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    hook = Recorder()
    remove = observe.add_hook(hook)
    yield hook
    remove()


async def test_produced_and_consumed_counts_spans_and_links(
    make_topic: MakeTopic, bootstrap_servers: list[str], otel: Otel
) -> None:
    topic = make_topic(partitions=2)
    tracer = trace.get_tracer("test")
    per_partition = 8  # 7 one by one, then a batch of one
    seen: list[tuple[int, int]] = []
    done = trio.Event()

    async def handle(partition: int, message: Record) -> None:
        seen.append((partition, message.offset))
        if len(seen) == 2 * per_partition:
            done.set()

    async with open_client(bootstrap_servers) as client:
        await client.start_producer(topic, ProducerConfig(trace_context=True))
        with tracer.start_as_current_span("app") as app:
            receipts = [
                await client.produce(topic, b"%d" % i, partition=partition)
                for partition in range(2)
                for i in range(per_partition - 1)
            ]
            receipts += [
                await client.produce_batch(topic, [(None, b"last")], partition=partition)
                for partition in range(2)
            ]
            for receipt in receipts:
                await receipt
        config = ConsumerConfig(begin_offset="earliest", max_wait_time=0.5, trace_context=True)
        await client.start_consumer(topic)
        async with open_topic_subscriber(client, topic, handle, consumer_config=config) as sub:
            with trio.fail_after(60):
                await done.wait()
                # The last message is acknowledged after its handler returns.
                while sub.lag() != {0: 0, 1: 0}:  # noqa: ASYNC110 (no event for an ack)
                    await trio.sleep(0.01)
    assert sorted(seen) == [(p, o) for p in range(2) for o in range(per_partition)]
    for partition in range(2):
        attributes = {
            "messaging.destination.name": topic,
            "messaging.destination.partition.id": str(partition),
        }
        assert otel.total("messaging.client.sent.messages", **attributes) == per_partition
        assert otel.total("messaging.client.consumed.messages", **attributes) == per_partition
        assert otel.count("messaging.process.duration", **attributes) >= 1
        sends = otel.count(
            "messaging.client.operation.duration",
            **attributes,
            **{"messaging.operation.name": "send"},
        )
        spans = [
            span
            for span in otel.spans(f"send {topic}")
            if span.attributes["messaging.destination.partition.id"] == str(partition)
        ]
        assert sends == len(spans)  # one per produce request
        assert sum(span.attributes["messaging.batch.message_count"] for span in spans) == 8
    receive = {"messaging.operation.name": "receive"}
    # One per Fetch answered: the fetcher per broker may bring both partitions in one.
    assert otel.count("messaging.client.operation.duration", **receive) >= 1
    context = app.get_span_context()
    process = otel.spans(f"process {topic}")
    assert len(process) == 2 * per_partition  # a per-message handler: a span per message
    for span in process:
        links = [(link.context.trace_id, link.context.span_id) for link in span.links]
        assert links == [(context.trace_id, context.span_id)]
    sent = otel.spans(f"send {topic}")
    assert (
        sum(span.attributes["messaging.batch.message_count"] for span in sent) == 2 * per_partition
    )


async def test_group_commits_and_rebalances_are_measured(
    make_topic: MakeTopic, bootstrap_servers: list[str], otel: Otel, recorder: Recorder
) -> None:
    topic = make_topic(partitions=2)
    group = f"observe-{topic}"
    seen: list[int] = []
    done = trio.Event()

    async def handle(assigned: object, message: Record) -> None:
        seen.append(message.offset)
        if len(seen) == 4:
            done.set()

    config = GroupConfig(session_timeout=6.0, heartbeat_rate=1.0, offset_commit_interval=0.5)
    async with open_client(bootstrap_servers) as client:
        await client.start_producer(topic)
        for partition in range(2):
            await (
                await client.produce_batch(topic, [(None, b"a"), (None, b"b")], partition=partition)
            )
        async with open_group_subscriber(
            client,
            group,
            [topic],
            handle,  # type: ignore[arg-type]
            config=config,
            consumer_config=ConsumerConfig(begin_offset="earliest", max_wait_time=0.5),
        ) as subscriber:
            with trio.fail_after(60):
                await done.wait()
            await subscriber.commit()
    group_attributes = {"messaging.consumer.group.name": group}
    assert [e.assignment for e in recorder.rebalances if e.group == group][:1] == [
        frozenset({(topic, 0), (topic, 1)})
    ]
    assert all(e.duration > 0 for e in recorder.rebalances if e.group == group)
    assert otel.total("trio_brod.group.rebalances", **group_attributes) >= 1
    assert otel.count("trio_brod.group.rebalance.duration", **group_attributes) >= 1
    commits = [e for e in recorder.commits if e.group == group]
    assert commits
    assert all(e.error is None for e in commits)
    assert otel.count(
        "messaging.client.operation.duration",
        **group_attributes,
        **{"messaging.operation.name": "commit"},
    ) == len(commits)
    processed = sum(p.count for p in otel.points("messaging.process.duration", **group_attributes))
    assert processed >= 1
    assert any(e.api == "JoinGroup" for e in recorder.requests)


class Counter(observe.Hook):
    def __init__(self) -> None:
        self.acks: list[observe.Produced] = []
        self.sent: list[observe.RequestSent] = []
        self.answered: list[observe.RequestAnswered] = []

    def produced(self, event: observe.Produced) -> None:
        self.acks.append(event)

    def request_sent(self, event: observe.RequestSent) -> None:
        self.sent.append(event)

    def request_answered(self, event: observe.RequestAnswered) -> None:
        self.answered.append(event)


async def test_two_clients_each_hear_their_own_events(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    first, second = make_topic(partitions=1), make_topic(partitions=1)
    everyone, mine, theirs = Counter(), Counter(), Counter()
    remove = observe.add_hook(everyone)
    try:
        async with (
            open_client(bootstrap_servers, hooks=[mine]) as one,
            open_client(bootstrap_servers, hooks=[theirs]) as other,
        ):
            await one.start_producer(first)
            await other.start_producer(second)
            with trio.fail_after(60):
                await one.produce_sync(first, b"x", partition=0)
                await (await other.produce_batch(second, [(None, b"y")] * 3, partition=0))
                await one.get_metadata([first])
    finally:
        remove()
    assert [(e.topic, e.count, e.error) for e in mine.acks] == [(first, 1, None)]
    assert [(e.topic, e.count, e.error) for e in theirs.acks] == [(second, 3, None)]
    assert sorted(e.count for e in everyone.acks) == [1, 3]
    # Requests: each client's own, with their sizes; the process-wide hook hears both.
    assert [e.api for e in mine.sent].count("Produce") == 1
    assert [e.api for e in theirs.sent].count("Produce") == 1
    assert len(everyone.sent) == len(mine.sent) + len(theirs.sent)
    assert all(e.size > 0 for e in mine.sent + theirs.sent)
    assert any(e.api == "Metadata" and e.size > 0 for e in mine.answered)
