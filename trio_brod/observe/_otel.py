"""OpenTelemetry, through the global providers: a :class:`~trio_brod.observe.Hook` that
turns the client's events into metrics and spans.

Imported only when ``opentelemetry-api`` is installed (``pip install
trio-brod[opentelemetry]``); :mod:`trio_brod.observe` then registers one instance at import.
There is no setup call: instruments and the tracer come from the global providers through
OpenTelemetry's proxies, so an application that sets its providers later (before or after
importing trio-brod) gets the data from then on. Until it does, the proxies drop everything,
and per-message work (timing handlers, reading ``traceparent`` headers) is not even started:
:meth:`OpenTelemetryHook.observes_handlers` says no while both providers are the no-op ones.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any, Final

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from trio_brod._version import __version__
from trio_brod.observe import _hooks
from trio_brod.observe._hooks import (
    Committed,
    ConnectionClosed,
    ConnectionFailed,
    ConnectionOpened,
    Delivered,
    Handled,
    Hook,
    Produced,
    Rebalanced,
    RequestAnswered,
    Retried,
)
from trio_brod.observe.traceparent import find_traceparent

__all__ = ["OpenTelemetryHook", "format_current_traceparent"]

#: The semantic conventions' advice for messaging durations, in seconds.
_DURATION_BUCKETS: Final = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
]  # fmt: skip
#: At most this many producers' spans are linked from one message set's span.
_MAX_LINKS: Final = 128
_NOOP_PROVIDERS: Final = frozenset(
    {"_ProxyMeterProvider", "NoOpMeterProvider", "ProxyTracerProvider", "NoOpTracerProvider"}
)
_KAFKA: Final = {"messaging.system": "kafka"}


def _set(provider: object) -> bool:
    """Whether a global provider was set to a real one (not the default proxy, no no-op)."""
    return type(provider).__name__ not in _NOOP_PROVIDERS


def tracing() -> bool:
    """Whether spans would be recorded anywhere."""
    return _set(trace.get_tracer_provider())


def _error_type(error: BaseException) -> str:
    cls = type(error)
    return f"{cls.__module__}.{cls.__qualname__}"


def _partition_attributes(topic: str, partition: int) -> dict[str, Any]:
    return {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": str(partition),
    }


def format_current_traceparent() -> str | None:
    """The ``traceparent`` of the current span, or None when there is no valid one."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


class OpenTelemetryHook(Hook):
    """Records trio-brod's events as OpenTelemetry metrics and spans.

    See the metrics table in the operations guide (``docs/operations.rst``) for every
    instrument, its unit and attributes.
    """

    def __init__(self) -> None:
        meter = metrics.get_meter("trio_brod", __version__)
        self._tracer = trace.get_tracer("trio_brod", __version__)
        # Message counts are summed here and read when metrics are collected (observable
        # counters): a dict update per batch, not a measurement through the SDK, which
        # costs microseconds each time.
        self._sent: dict[tuple[str, int, str | None], int] = {}
        self._consumed: dict[tuple[str, int], int] = {}
        meter.create_observable_counter(
            "messaging.client.sent.messages",
            [self._observe_sent],
            "{message}",
            "Messages sent to the broker (each attempt; error.type when it failed)",
        )
        meter.create_observable_counter(
            "messaging.client.consumed.messages",
            [self._observe_consumed],
            "{message}",
            "Messages handed to subscribers",
        )
        self._operation = meter.create_histogram(
            "messaging.client.operation.duration",
            "s",
            "Duration of produce requests, fetches and commits",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._process = meter.create_histogram(
            "messaging.process.duration",
            "s",
            "Duration of subscribers' handlers",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._connections = meter.create_up_down_counter(
            "trio_brod.connections", "{connection}", "Open connections to brokers"
        )
        self._connection_failures = meter.create_counter(
            "trio_brod.connection.failures",
            "{failure}",
            "Connections that could not be opened (refused, timed out, handshake failed)",
        )
        self._rebalances = meter.create_counter(
            "trio_brod.group.rebalances", "{rebalance}", "Rebalances completed by group members"
        )
        self._rebalance_duration = meter.create_histogram(
            "trio_brod.group.rebalance.duration",
            "s",
            "From deciding to (re)join a group to owning the new assignment",
        )
        self._retries = meter.create_counter(
            "trio_brod.retries", "{retry}", "Produce batches and fetches tried again"
        )
        # Lag as of the last message set delivered for each partition.
        self._lag: dict[tuple[str, int], int] = {}
        meter.create_observable_gauge(
            "trio_brod.consumer.lag",
            [self._observe_lag],
            "{message}",
            "Messages after the last delivered set up to the high watermark",
        )
        meter.create_observable_up_down_counter(
            "trio_brod.producer.records",
            [self._observe_producers],
            "{message}",
            "Records waiting in a partition producer: buffered, or on the wire",
        )

    # ---------------------------------------------------------------- gauges

    def _observe_lag(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(lag, _partition_attributes(topic, partition))
            for (topic, partition), lag in list(self._lag.items())
        ]

    def _observe_sent(self, options: CallbackOptions) -> Iterable[Observation]:
        observations = []
        for (topic, partition, error_type), count in list(self._sent.items()):
            attributes = _partition_attributes(topic, partition)
            attributes["messaging.operation.name"] = "send"
            if error_type is not None:
                attributes["error.type"] = error_type
            observations.append(Observation(count, attributes))
        return observations

    def _observe_consumed(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, _partition_attributes(topic, partition))
            for (topic, partition), count in list(self._consumed.items())
        ]

    def _observe_producers(self, options: CallbackOptions) -> Iterable[Observation]:
        observations = []
        for buffer, (topic, partition) in list(_hooks.state.producers.items()):
            buffered, on_wire = buffer.waiting_records()
            attributes = _partition_attributes(topic, partition)
            observations.append(
                Observation(buffered, {**attributes, "trio_brod.state": "buffered"})
            )
            observations.append(Observation(on_wire, {**attributes, "trio_brod.state": "on_wire"}))
        return observations

    # ---------------------------------------------------------------- events

    def connection_opened(self, event: ConnectionOpened) -> None:
        """One more open connection."""
        self._connections.add(1, _server(event.host, event.port))

    def connection_closed(self, event: ConnectionClosed) -> None:
        """One fewer open connection."""
        self._connections.add(-1, _server(event.host, event.port))

    def connection_failed(self, event: ConnectionFailed) -> None:
        """A connection that could not be opened."""
        attributes = _server(event.host, event.port)
        attributes["error.type"] = _error_type(event.error)
        self._connection_failures.add(1, attributes)

    def request_answered(self, event: RequestAnswered) -> None:
        """Fetch requests' durations (other requests are not messaging operations)."""
        if event.api != "Fetch":
            return
        attributes = {
            **_KAFKA,
            "messaging.operation.name": "receive",
            "messaging.operation.type": "receive",
            "server.address": event.address,
        }
        if event.error is not None:
            attributes["error.type"] = _error_type(event.error)
        self._operation.record(event.latency, attributes)

    def produced(self, event: Produced) -> None:
        """Messages sent and the produce request's duration; its span when tracing."""
        attributes = _partition_attributes(event.topic, event.partition)
        attributes["messaging.operation.name"] = "send"
        error_type = None
        if event.error is not None:
            error_type = attributes["error.type"] = _error_type(event.error)
        key = (event.topic, event.partition, error_type)
        self._sent[key] = self._sent.get(key, 0) + event.count
        attributes["messaging.operation.type"] = "send"
        self._operation.record(event.latency, attributes)
        if not tracing():
            return
        end = time.time_ns()
        attributes["messaging.batch.message_count"] = event.count
        if event.base_offset >= 0:
            attributes["messaging.kafka.offset"] = event.base_offset
        span = self._tracer.start_span(
            f"send {event.topic}",
            kind=SpanKind.PRODUCER,
            attributes=attributes,
            start_time=end - int(event.latency * 1e9),
        )
        if event.error is not None:
            span.set_status(Status(StatusCode.ERROR, str(event.error)))
        span.end(end_time=end)

    def delivered(self, event: Delivered) -> None:
        """Messages consumed, and the partition's lag."""
        key = (event.topic, event.partition)
        self._lag[key] = event.lag
        self._consumed[key] = self._consumed.get(key, 0) + event.count

    def handled(self, event: Handled) -> None:
        """The handler's duration."""
        attributes = _partition_attributes(event.topic, event.partition)
        attributes["messaging.operation.name"] = "process"
        if event.group is not None:
            attributes["messaging.consumer.group.name"] = event.group
        if event.error is not None:
            attributes["error.type"] = _error_type(event.error)
        self._process.record(event.duration, attributes)

    def committed(self, event: Committed) -> None:
        """The commit's duration."""
        attributes = {
            **_KAFKA,
            "messaging.operation.name": "commit",
            "messaging.operation.type": "settle",
            "messaging.consumer.group.name": event.group,
        }
        if event.error is not None:
            attributes["error.type"] = _error_type(event.error)
        self._operation.record(event.latency, attributes)

    def rebalanced(self, event: Rebalanced) -> None:
        """A rebalance and how long it took."""
        attributes = {**_KAFKA, "messaging.consumer.group.name": event.group}
        self._rebalances.add(1, attributes)
        self._rebalance_duration.record(event.duration, attributes)

    def retried(self, event: Retried) -> None:
        """A retry."""
        attributes = _partition_attributes(event.topic, event.partition)
        attributes["messaging.operation.name"] = event.operation
        if event.error is not None:
            attributes["error.type"] = _error_type(event.error)
        self._retries.add(1, attributes)

    # ---------------------------------------------------------------- handlers

    def observes_handlers(self) -> bool:
        """Only once the application set a meter or tracer provider."""
        return _set(metrics.get_meter_provider()) or tracing()

    def handler_span(
        self,
        topic: str,
        partition: int,
        group: str | None,
        messages: Iterable[Any],
        count: int,
        linked: bool,
    ) -> AbstractContextManager[Any]:
        """A span around one handler call, linked to the producers' spans (``linked``:
        from the messages' ``traceparent`` headers)."""
        links = []
        if linked:
            for message in itertools.islice(messages, _MAX_LINKS):
                parent = find_traceparent(message.headers or ())
                if parent is not None:
                    context = SpanContext(
                        parent.trace_id,
                        parent.span_id,
                        is_remote=True,
                        trace_flags=TraceFlags(parent.flags & 0xFF),
                    )
                    links.append(Link(context))
        attributes = _partition_attributes(topic, partition)
        attributes["messaging.operation.name"] = "process"
        attributes["messaging.operation.type"] = "process"
        if group is not None:
            attributes["messaging.consumer.group.name"] = group
        if count != 1:
            attributes["messaging.batch.message_count"] = count
        return self._tracer.start_as_current_span(
            f"process {topic}", kind=SpanKind.CONSUMER, links=links, attributes=attributes
        )


def _server(host: str, port: int) -> dict[str, Any]:
    return {**_KAFKA, "server.address": host, "server.port": port}
