"""trio_brod.observe without a broker: traceparent values, hook dispatch, the hooks and
OpenTelemetry data of the producer and the topic subscriber (both against the fake Kafka)."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

import trio_brod._net.handshake as handshake_module
from tests.fakes.batches import batch_bytes
from tests.otel import Otel, install
from tests.produced import NOT_ENOUGH_REPLICAS, TOPIC, Produced, quick, serving
from tests.unit.conftest import FAKE_TOPIC
from trio_brod import (
    Client,
    ClientConfig,
    ConnectionFailed,
    ConsumerConfig,
    Message,
    MessageSet,
    observe,
    open_client,
    open_topic_subscriber,
)
from trio_brod._cluster import ConnectionPool
from trio_brod.consumer._fetch import Run
from trio_brod.observe import _hooks
from trio_brod.observe._otel import OpenTelemetryHook
from trio_brod.observe.traceparent import (
    find_traceparent,
    format_traceparent,
    parse_traceparent,
)
from trio_brod.protocol.errors import NotEnoughReplicasError
from trio_brod.protocol.records import Compression, Record, decode_batches
from trio_brod.testing.fake import FakeKafka, fake_kafka

# ------------------------------------------------------------------------- traceparent

trace_ids = st.integers(1, (1 << 128) - 1)
span_ids = st.integers(1, (1 << 64) - 1)
flags = st.integers(0, 255)


@given(trace_ids, span_ids, flags)
def test_traceparent_round_trip(trace_id: int, span_id: int, flag: int) -> None:
    text = format_traceparent(trace_id, span_id, flag)
    assert len(text) == 55
    assert text == text.lower()
    assert parse_traceparent(text) == (trace_id, span_id, flag)
    assert parse_traceparent(text.encode()) == (trace_id, span_id, flag)


@given(st.one_of(st.text(), st.binary()))
def test_parsing_anything_never_raises(value: str | bytes) -> None:
    parsed = parse_traceparent(value)
    if parsed is not None:
        text = value.decode() if isinstance(value, bytes) else value
        # What parsed is exactly its fields again, in the version it came with.
        assert text[:55] == text[:3] + format_traceparent(*parsed)[3:]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", True),
        # A later version may add fields after a dash.
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", True),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", False),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", False),
        ("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", False),
    ],
)
def test_traceparent_validity(value: str, expected: bool) -> None:
    assert (parse_traceparent(value) is not None) is expected


def test_format_refuses_zero_ids() -> None:
    with pytest.raises(ValueError, match="non-zero"):
        format_traceparent(0, 1, 1)
    with pytest.raises(ValueError, match="non-zero"):
        format_traceparent(1, 0, 1)


header_values = st.one_of(st.none(), st.binary(max_size=80), st.text(max_size=80))


@given(st.lists(st.tuples(st.sampled_from(["traceparent", "x", ""]), header_values)))
def test_finding_a_traceparent_in_any_headers_never_raises(headers: list[Any]) -> None:
    found = find_traceparent(headers)
    if found is not None:
        assert any(k == "traceparent" and parse_traceparent(v) == found for k, v in headers)


# ------------------------------------------------------------------------------ hooks


class Recorder(observe.Hook):
    """Records every event, by kind."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def produced(self, event: observe.Produced) -> None:
        self.events.append(event)

    def retried(self, event: observe.Retried) -> None:
        self.events.append(event)

    def delivered(self, event: observe.Delivered) -> None:
        self.events.append(event)

    def handled(self, event: observe.Handled) -> None:
        self.events.append(event)

    def request_answered(self, event: observe.RequestAnswered) -> None:
        self.events.append(event)

    def request_sent(self, event: observe.RequestSent) -> None:
        self.events.append(event)

    def connection_opened(self, event: observe.ConnectionOpened) -> None:
        self.events.append(event)

    def connection_closed(self, event: observe.ConnectionClosed) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    hook = Recorder()
    remove = observe.add_hook(hook)
    yield hook
    remove()


def test_a_failing_hook_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(observe.Hook):
        def retried(self, event: observe.Retried) -> None:
            raise RuntimeError("hook bug")

    after = Recorder()
    remove_broken = observe.add_hook(Broken())
    remove_after = observe.add_hook(after)
    try:
        with caplog.at_level(logging.ERROR, "trio_brod.observe"):
            _hooks.retried(_hooks.state, "send", "t", 0, None)
    finally:
        remove_broken()
        remove_after()
    assert "hook bug" in caplog.text
    assert after.of(observe.Retried) == [observe.Retried("send", "t", 0, None)]


async def test_handlers_are_timed_only_when_observed(
    monkeypatch: pytest.MonkeyPatch, recorder: Recorder
) -> None:
    monkeypatch.setattr(_hooks.state, "hooks", ())
    assert observe.handler_timer("t", 0, None) is None
    # A hook that does not override `handled` does not ask for handlers to be timed.
    monkeypatch.setattr(_hooks.state, "hooks", (observe.Hook(),))
    assert observe.handler_timer("t", 0, None) is None

    monkeypatch.setattr(_hooks.state, "hooks", (recorder,))
    timer = observe.handler_timer("t", 3, "g")
    assert timer is not None
    timer.finish()  # nothing started: nothing to report
    timer.start(5)
    timer.finish()
    timer.start(2)
    timer.finish(ValueError("bad message"))
    handled = recorder.of(observe.Handled)
    assert [(e.topic, e.partition, e.group, e.count) for e in handled] == [
        ("t", 3, "g", 5),
        ("t", 3, "g", 2),
    ]
    assert handled[0].error is None
    assert isinstance(handled[1].error, ValueError)
    assert all(e.duration >= 0 for e in handled)


# -------------------------------------------------------------- producer (fake Kafka)


@pytest.fixture
async def cluster() -> AsyncIterator[Produced]:
    async with serving() as produced:
        yield produced


async def test_produce_batches_and_retries_reach_hooks(
    cluster: Produced, recorder: Recorder
) -> None:
    cluster.actions.extend([NOT_ENOUGH_REPLICAS] * 2)
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, quick(max_retries=3))
        assert await client.produce_sync(TOPIC, b"v", partition=0) == 0
        receipt = await client.produce_batch(TOPIC, [(None, b"a"), (None, b"b")], partition=0)
        assert await receipt == 1
    events = recorder.of(observe.Produced)
    produced = [(e.topic, e.partition, e.count, type(e.error)) for e in events]
    assert produced == [
        (TOPIC, 0, 1, NotEnoughReplicasError),
        (TOPIC, 0, 1, NotEnoughReplicasError),
        (TOPIC, 0, 1, type(None)),
        (TOPIC, 0, 2, type(None)),
    ]
    acknowledged = [e.base_offset for e in recorder.of(observe.Produced) if e.error is None]
    assert acknowledged == [0, 1]
    retried = recorder.of(observe.Retried)
    assert [(e.operation, e.topic, e.partition) for e in retried] == [("send", TOPIC, 0)] * 2
    assert all(isinstance(e.error, NotEnoughReplicasError) for e in retried)
    # Connections: every one opened was closed by the end.
    opened = recorder.of(observe.ConnectionOpened)
    assert opened
    assert len(recorder.of(observe.ConnectionClosed)) == len(opened)


async def test_a_clients_hooks_see_its_events_only() -> None:
    # Two clients side by side, each on its own fake Kafka (so their connections differ),
    # each with a hook of its own, and one hook for the whole process.
    everyone, mine, theirs = Recorder(), Recorder(), Recorder()
    remove_everyone = observe.add_hook(everyone)
    try:
        async with (
            serving() as first,
            serving() as second,
            open_client(first.bootstrap, hooks=[mine]) as one,
            open_client(second.bootstrap) as other,
        ):
            remove_theirs = other.hooks.add(theirs)
            assert one.hooks.own == (mine,)
            assert other.hooks.own == (theirs,)
            await one.start_producer(TOPIC, quick())
            await other.start_producer(TOPIC, quick())
            assert await one.produce_sync(TOPIC, b"1", partition=0) == 0
            await (await other.produce_batch(TOPIC, [(None, b"a"), (None, b"b")], partition=0))
            assert [e.count for e in mine.of(observe.Produced)] == [1]
            assert [e.count for e in theirs.of(observe.Produced)] == [2]
            assert sorted(e.count for e in everyone.of(observe.Produced)) == [1, 2]
            # Removed, a client's hook hears nothing more; the others still do.
            remove_theirs()
            one.hooks.remove(mine)
            assert one.hooks.own == ()
            before = len(mine.events), len(theirs.events)
            await (await one.produce_batch(TOPIC, [(None, b"c")] * 3, partition=0))
            await (await other.produce_batch(TOPIC, [(None, b"d")] * 4, partition=0))
            assert (len(mine.events), len(theirs.events)) == before
            assert sorted(e.count for e in everyone.of(observe.Produced)) == [1, 2, 3, 4]
    finally:
        remove_everyone()
    port = {1: first.bootstrap[0].rpartition(":")[2], 2: second.bootstrap[0].rpartition(":")[2]}
    assert {str(e.port) for e in mine.of(observe.ConnectionOpened)} == {port[1]}
    assert {str(e.port) for e in theirs.of(observe.ConnectionOpened)} == {port[2]}
    assert {str(e.port) for e in everyone.of(observe.ConnectionOpened)} == set(port.values())
    assert {e.address.rpartition(":")[2] for e in mine.of(observe.RequestSent)} == {port[1]}
    assert {e.address.rpartition(":")[2] for e in theirs.of(observe.RequestSent)} == {port[2]}


async def test_a_process_wide_hook_added_later_reaches_running_clients(
    cluster: Produced,
) -> None:
    recorder = Recorder()
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, quick())
        await client.produce_sync(TOPIC, b"before", partition=0)
        remove = observe.add_hook(recorder)
        assert recorder in client.hooks.hooks
        try:
            await client.produce_sync(TOPIC, b"after", partition=0)
        finally:
            remove()
        assert recorder not in client.hooks.hooks
        await client.produce_sync(TOPIC, b"removed", partition=0)
    assert [e.base_offset for e in recorder.of(observe.Produced)] == [1]


async def test_requests_sent_and_answered_carry_their_sizes(cluster: Produced) -> None:
    recorder = Recorder()
    async with open_client(cluster.bootstrap, hooks=[recorder]) as client:
        await client.get_metadata([TOPIC])
        await client.get_metadata([TOPIC + "-1234567890"])
        await client.start_producer(TOPIC, quick())
        await client.produce_sync(TOPIC, b"v", partition=0)
    sent = [e for e in recorder.of(observe.RequestSent) if e.api == "Metadata"]
    answered = [e for e in recorder.of(observe.RequestAnswered) if e.api == "Metadata"]
    assert len(sent) >= 2
    assert len(answered) == len(sent)
    # The same request with a topic name 11 characters longer: 11 bytes more on the wire.
    assert sent[-1].size - sent[-2].size == 11
    assert (sent[-1].version, sent[-1].address) == (sent[-2].version, sent[-2].address)
    assert all(e.size > 8 and e.error is None for e in answered)
    # Produce requests are sent too (answered: see Produced).
    produce = [e for e in recorder.of(observe.RequestSent) if e.api == "Produce"]
    assert len(produce) == 1
    assert produce[0].size > 0


async def test_with_no_hook_the_workers_do_not_call_the_emit_functions(
    monkeypatch: pytest.MonkeyPatch, cluster: Produced
) -> None:
    called: list[str] = []
    monkeypatch.setattr(_hooks.state, "hooks", ())  # not even OpenTelemetry's
    for name in (
        "connection_opened",
        "connection_closed",
        "connection_failed",
        "request_sent",
        "request_answered",
        "produced",
        "retried",
        "delivered",
        "handled",
    ):
        monkeypatch.setattr(_hooks, name, lambda *args, name=name: called.append(name))
    cluster.actions.append(NOT_ENOUGH_REPLICAS)  # a retry too
    async with open_client(cluster.bootstrap) as client:
        assert client.hooks.hooks == ()
        await client.start_producer(TOPIC, quick(max_retries=3))
        with trio.fail_after(30):
            assert await client.produce_sync(TOPIC, b"v", partition=0) == 0
    assert called == []
    # The same with a hook on the client: they are called (the test can fail).
    async with open_client(cluster.bootstrap, hooks=[Recorder()]) as client:
        await client.start_producer(TOPIC, quick())
        await client.produce_sync(TOPIC, b"w", partition=0)
    assert {"connection_opened", "request_sent", "produced"} <= set(called)


async def test_produce_metrics_and_spans(cluster: Produced, otel: Otel) -> None:
    attributes = {
        "messaging.system": "kafka",
        "messaging.destination.name": TOPIC,
        "messaging.destination.partition.id": "0",
        "messaging.operation.name": "send",
    }
    sent_before = otel.total("messaging.client.sent.messages", **attributes)
    timed_before = otel.count("messaging.client.operation.duration", **attributes)
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, quick())
        for value in (b"a", b"b", b"c"):
            await client.produce_sync(TOPIC, value, partition=0)
        await (await client.produce_batch(TOPIC, [(None, b"d"), (None, b"e")], partition=0))
    # Data is cumulative over the run: what this test added.
    assert otel.total("messaging.client.sent.messages", **attributes) - sent_before == 5
    assert otel.count("messaging.client.operation.duration", **attributes) - timed_before == 4
    spans = otel.spans(f"send {TOPIC}")
    assert sorted(s.attributes["messaging.batch.message_count"] for s in spans) == [1, 1, 1, 2]
    assert all(s.kind is trace.SpanKind.PRODUCER for s in spans)
    assert sorted(s.attributes["messaging.kafka.offset"] for s in spans) == [0, 1, 2, 3]


async def test_traceparent_headers_only_when_asked(cluster: Produced, otel: Otel) -> None:
    tracer = trace.get_tracer("test")
    async with open_client(cluster.bootstrap) as client:
        with tracer.start_as_current_span("app") as span:
            await client.start_producer(TOPIC, quick())
            await client.produce_sync(TOPIC, b"plain", partition=0)
            await client.stop_producer(TOPIC)
            await client.start_producer(TOPIC, quick(trace_context=True))
            await client.produce_sync(TOPIC, b"one", partition=0, headers=[("h", b"1")])
            batch = [(None, b"two"), Message(b"three", headers=[("h", b"3")])]
            await (await client.produce_batch(TOPIC, batch, partition=0))
        context = span.get_span_context()
        # Outside any span: nothing to propagate, so no header.
        await client.produce_sync(TOPIC, b"after", partition=0)
    value = format_traceparent(context.trace_id, context.span_id, int(context.trace_flags))
    traceparent = ("traceparent", value.encode())
    headers = {v: list(h) for s in cluster.sent for _, v, h in s.records}
    assert headers == {
        b"plain": [],
        b"one": [("h", b"1"), traceparent],
        b"two": [traceparent],
        b"three": [("h", b"3"), traceparent],
        b"after": [],
    }


# ------------------------------------------------------------ subscriber (fake Kafka)

SUBSCRIBED = FAKE_TOPIC
APP_TRACE = (0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, 1)
#: Headers a producer may have written: only the first is a traceparent to link to.
ODD_HEADERS: list[list[tuple[str, bytes | None]]] = [
    [("traceparent", format_traceparent(*APP_TRACE).encode())],
    [("traceparent", None)],
    [("traceparent", b"\xff\xfe not ascii")],
    [("traceparent", b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01")],
    [("traceparent", b"")],
    [],
]


def append_with_headers(fake: FakeKafka, headers: list[list[tuple[str, bytes | None]]]) -> None:
    values = [b"m%d" % i for i in range(len(headers))]
    fake.append(SUBSCRIBED, 0, values, headers=headers, timestamp=1_000)


@pytest.mark.parametrize("message_type", ["message", "message_set"])
async def test_subscriber_metrics_spans_and_links(
    fake_client: Client, fake_kafka: FakeKafka, otel: Otel, recorder: Recorder, message_type: Any
) -> None:
    handled: list[int] = []
    done = trio.Event()

    async def handle(partition: int, item: Any) -> None:
        handled.extend([item.offset] if isinstance(item, Record) else [m.offset for m in item])
        if len(handled) == len(ODD_HEADERS):
            done.set()

    partition_attributes = {
        "messaging.destination.name": SUBSCRIBED,
        "messaging.destination.partition.id": "0",
    }
    consumed_before = otel.total("messaging.client.consumed.messages", **partition_attributes)
    timed_before = otel.count("messaging.process.duration", **partition_attributes)
    append_with_headers(fake_kafka, ODD_HEADERS)
    config = ConsumerConfig(begin_offset="earliest", trace_context=True)
    await fake_client.start_consumer(SUBSCRIBED)
    async with open_topic_subscriber(
        fake_client, SUBSCRIBED, handle, message_type=message_type, consumer_config=config
    ) as subscriber:
        with trio.fail_after(10):
            await done.wait()
        assert subscriber.lag() == {0: 0}
        assert (await fake_client.get_consumer(SUBSCRIBED, 0)).lag == 0
    assert handled == list(range(len(ODD_HEADERS)))
    delivered = recorder.of(observe.Delivered)
    assert sum(e.count for e in delivered) == len(ODD_HEADERS)
    assert delivered[-1].high_watermark == len(ODD_HEADERS)
    assert delivered[-1].lag == 0
    consumed = otel.total("messaging.client.consumed.messages", **partition_attributes)
    assert consumed - consumed_before == len(ODD_HEADERS)
    # One duration per message set; one span per handler call.
    timed = otel.count("messaging.process.duration", **partition_attributes)
    assert timed - timed_before == len(delivered)
    assert sum(e.count for e in recorder.of(observe.Handled)) == len(ODD_HEADERS)
    calls = len(ODD_HEADERS) if message_type == "message" else len(delivered)
    spans = otel.spans(f"process {SUBSCRIBED}")
    assert len(spans) == calls
    assert all(span.kind is trace.SpanKind.CONSUMER for span in spans)
    links = [
        (link.context.trace_id, link.context.span_id, int(link.context.trace_flags))
        for span in spans
        for link in span.links
    ]
    assert links == [APP_TRACE]  # the one valid traceparent; the odd ones are skipped


async def test_no_links_unless_the_consumer_asks(
    fake_client: Client, fake_kafka: FakeKafka, otel: Otel
) -> None:
    done = trio.Event()

    async def handle(partition: int, message: Record) -> None:
        done.set()

    append_with_headers(fake_kafka, ODD_HEADERS[:1])
    await fake_client.start_consumer(SUBSCRIBED)
    config = ConsumerConfig(begin_offset="earliest")
    async with open_topic_subscriber(fake_client, SUBSCRIBED, handle, consumer_config=config):
        with trio.fail_after(10):
            await done.wait()
    spans = otel.spans(f"process {SUBSCRIBED}")
    assert len(spans) == 1
    assert not spans[0].links


class _Message:
    def __init__(self, headers: Any) -> None:
        self.headers = headers


@given(st.lists(st.lists(st.tuples(st.sampled_from(["traceparent", "x"]), header_values))))
def test_handler_spans_take_any_headers(messages: list[Any]) -> None:
    install()  # the SDK's tracer, so that the span records its links
    hook = observe._otel_hook
    assert isinstance(hook, OpenTelemetryHook)
    batch = [_Message(headers) for headers in messages]
    with hook.handler_span("t", 0, "g", batch, len(batch), linked=True):
        span = trace.get_current_span()
    valid = [find_traceparent(m.headers) for m in batch]
    assert isinstance(span, ReadableSpan)
    assert len(span.links) == len([v for v in valid if v is not None][:128])


async def test_lag_counts_from_the_first_unacknowledged_message(
    fake_client: Client, fake_kafka: FakeKafka
) -> None:
    fake_kafka.append(SUBSCRIBED, 0, [b"m%d" % i for i in range(10)])
    await fake_client.start_consumer(SUBSCRIBED)
    consumer = await fake_client.get_consumer(SUBSCRIBED, 0)
    assert consumer.lag is None  # nobody subscribed
    async with fake_client.subscribe(SUBSCRIBED, 0, begin_offset=2, prefetch_count=3) as sub:
        with trio.fail_after(10):
            first = await sub.receive()
        assert first.high_watermark == 10
        assert sub.lag == 8  # offsets 2..9: delivered or not, none acknowledged
        sub.ack(first.high_offset)
        assert sub.lag == 10 - (first.high_offset + 1)
        assert consumer.lag == sub.lag
        fake_kafka.append(SUBSCRIBED, 0, [b"m10", b"m11"])
        while True:  # the high watermark moves with the next fetch
            with trio.fail_after(10):
                message_set = await sub.receive()
            sub.ack(message_set.high_offset)
            if message_set.high_offset == 11:
                break
        assert sub.lag == 0


async def test_a_traced_message_set_handler_decodes_the_set_once(otel: Otel) -> None:
    # The span's links read the set's first messages, the handler all of them: the same
    # records, decoded once (iterating a set keeps none).
    (batch,) = decode_batches(batch_bytes(0, 3, compression=Compression.ZSTD)).batches
    message_set = MessageSet("t", 0, 3, [Run(batch, 0, 2)])
    seen: list[Record] = []

    async def handle(partition: int, message_set: MessageSet) -> None:
        seen.extend(message_set)

    traced = observe.traced_handler(handle, "t", 0, None, "message_set", True)
    assert traced is not handle
    await traced(0, message_set)
    assert [m.offset for m in seen] == [0, 1, 2]
    assert all(a is b for a, b in zip(seen, message_set.messages, strict=True))


async def test_without_providers_opentelemetry_adds_nothing_per_message(
    monkeypatch: pytest.MonkeyPatch, otel: Otel
) -> None:
    from opentelemetry import metrics

    from trio_brod.observe import _otel

    hook = observe._otel_hook
    assert isinstance(hook, OpenTelemetryHook)
    monkeypatch.setattr(_hooks.state, "hooks", (hook,))

    async def handle(partition: int, message: Any) -> None:
        pass

    # Providers set (as the otel fixture did): handlers timed and traced.
    assert observe.handler_timer("t", 0, None) is not None
    assert observe.traced_handler(handle, "t", 0, None, "message", False) is not handle
    # The API's defaults (no provider set): neither.
    monkeypatch.setattr(_otel.metrics, "get_meter_provider", metrics.NoOpMeterProvider)
    monkeypatch.setattr(_otel.trace, "get_tracer_provider", trace.NoOpTracerProvider)
    assert observe.handler_timer("t", 0, None) is None
    assert observe.traced_handler(handle, "t", 0, None, "message", False) is handle


def test_a_fresh_process_records_nothing_per_message_until_providers_are_set() -> None:
    # OpenTelemetry's default providers are proxies whose class names trio-brod recognises;
    # a fresh interpreter checks that against the installed API (this process has the SDK
    # set by now).
    code = (
        "from trio_brod import observe; from trio_brod.observe import _otel\n"
        "assert any(isinstance(h, _otel.OpenTelemetryHook) for h in observe.state.hooks)\n"
        "assert observe.handler_timer('t', 0, None) is None\n"
        "assert not _otel.tracing()\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "trace.set_tracer_provider(TracerProvider())\n"
        "assert _otel.tracing()\n"
        "assert observe.handler_timer('t', 0, None) is not None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_a_dead_broker_fails_connections_counted(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch, otel: Otel
) -> None:
    async def refuse(host: str, port: int) -> trio.SocketStream:
        await trio.lowlevel.checkpoint()
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(handshake_module, "open_tcp_stream", refuse)
    recorder = Recorder()
    remove = observe.add_hook(recorder)
    server = {"server.address": "127.0.0.1", "server.port": 2}
    before = otel.total("trio_brod.connection.failures", **server)
    try:
        async with trio.open_nursery() as nursery:
            pool = ConnectionPool(
                [("127.0.0.1", 2)], ClientConfig(reconnect_cool_down=1.0), nursery
            )
            for _ in range(3):
                with pytest.raises(ConnectionFailed):
                    await pool.get("127.0.0.1", 2)
                await trio.sleep(1.5)  # past the cool-down: a real attempt each time
            pool.close()
    finally:
        remove()
    assert otel.total("trio_brod.connection.failures", **server) - before == 3
    assert recorder.of(observe.ConnectionOpened) == []


async def test_records_waiting_in_and_on_the_wire(cluster: Produced, otel: Otel) -> None:
    def waiting(state: str) -> int:
        points = otel.points(
            "trio_brod.producer.records",
            **{"messaging.destination.name": TOPIC, "trio_brod.state": state},
        )
        return sum(int(point.value) for point in points)

    async with open_client(cluster.bootstrap) as client:
        # One request on the wire at a time (the default), the broker not answering yet.
        await client.start_producer(TOPIC, quick(max_batch_size=200))
        cluster.hold()
        receipts = [await client.produce(TOPIC, b"x" * 50, partition=0) for _ in range(6)]
        with trio.fail_after(10):
            await cluster.wait_sent()
        on_wire = cluster.sent[0].values
        assert waiting("on_wire") == len(on_wire)
        assert waiting("buffered") == 6 - len(on_wire)
        cluster.release()
        for receipt in receipts:
            await receipt
        assert (waiting("on_wire"), waiting("buffered")) == (0, 0)


fuzzed_headers = st.lists(
    st.lists(
        st.tuples(
            st.sampled_from(["traceparent", "x"]),
            st.one_of(
                st.none(),
                st.binary(max_size=60),
                st.builds(
                    lambda t: format_traceparent(*t).encode(), st.tuples(trace_ids, span_ids, flags)
                ),
            ),
        ),
        max_size=3,
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=15, deadline=None)
@given(fuzzed_headers)
def test_consuming_fuzzed_headers_never_fails(
    headers: list[list[tuple[str, bytes | None]]],
) -> None:
    installed = install()

    async def main() -> list[Any]:
        installed.exporter.clear()
        handled: list[int] = []
        done = trio.Event()

        async def handle(partition: int, message: Record) -> None:
            handled.append(message.offset)
            if len(handled) == len(headers):
                done.set()

        async with fake_kafka() as fake:
            fake.create_topic(SUBSCRIBED)
            append_with_headers(fake, headers)
            config = ConsumerConfig(begin_offset="earliest", trace_context=True)
            async with open_client(fake.bootstrap_servers) as client:
                await client.start_consumer(SUBSCRIBED)
                async with open_topic_subscriber(
                    client, SUBSCRIBED, handle, consumer_config=config
                ):
                    with trio.fail_after(10):
                        await done.wait()
        assert handled == list(range(len(headers)))
        return [span.links for span in installed.spans(f"process {SUBSCRIBED}")]

    links = trio.run(main)
    expected = [find_traceparent(h) for h in headers]
    got = [[(link.context.trace_id, link.context.span_id) for link in each] for each in links]
    assert got == [[] if p is None else [(p.trace_id, p.span_id)] for p in expected]


def test_without_opentelemetry_installed_nothing_is_registered() -> None:
    # As if opentelemetry-api were not installed: importing it fails.
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n"
        "import trio_brod\n"
        "from trio_brod import observe\n"
        "assert observe.state.hooks == ()\n"
        "assert observe.handler_timer('t', 0, None) is None\n"
        "headers = [('a', b'1')]\n"
        "assert observe.with_traceparent(headers) is headers\n"
        "async def handle(message): pass\n"
        "assert observe.traced_handler(handle, 't', 0, None, 'message', True) is handle\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
