"""Observing trio-brod: event hooks, and OpenTelemetry metrics and traces built on them.

Three layers, each costing nothing unless used:

* **Hooks** (:class:`Hook`): typed events for connections, requests, produce batches,
  message sets delivered, handlers, commits, rebalances and retries -- brod's telemetry
  events in Python form. Workers emit them per request, batch or message set, never per
  message, and only when a hook is registered: for every client in the process
  (:func:`add_hook`), or for one client (``open_client(..., hooks=[...])``,
  ``client.hooks.add(hook)``, a :class:`Hooks`).
* **OpenTelemetry**: with ``opentelemetry-api`` installed (``pip install
  trio-brod[opentelemetry]``), importing trio-brod registers an
  ``OpenTelemetryHook`` (``trio_brod/observe/_otel.py``), which records through the global
  meter and tracer providers. No setup call: set your providers as usual.
* **Trace context** in message headers (:mod:`trio_brod.observe.traceparent`), only when
  ``ProducerConfig(trace_context=True)`` / ``ConsumerConfig(trace_context=True)`` ask.

See the operations guide (``docs/operations.rst``) for the events, the metrics and a
Prometheus example.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from trio_brod.observe import _hooks
from trio_brod.observe._hooks import (
    Committed,
    ConnectionClosed,
    ConnectionFailed,
    ConnectionOpened,
    Delivered,
    Handled,
    HasHooks,
    Hook,
    Hooks,
    Produced,
    Rebalanced,
    RequestAnswered,
    RequestSent,
    Retried,
    add_hook,
    remove_hook,
    state,
)
from trio_brod.observe.traceparent import add_header

__all__ = [
    "Committed",
    "ConnectionClosed",
    "ConnectionFailed",
    "ConnectionOpened",
    "Delivered",
    "Handled",
    "Hook",
    "Hooks",
    "Produced",
    "Rebalanced",
    "RequestAnswered",
    "RequestSent",
    "Retried",
    "add_hook",
    "remove_hook",
    "traced_handler",
    "with_traceparent",
]

try:
    from trio_brod.observe import _otel
except ImportError:  # opentelemetry-api is not installed
    _otel_hook: Any = None
    _current_traceparent: Callable[[], str | None] = lambda: None  # noqa: E731
else:
    _otel_hook = _otel.OpenTelemetryHook()
    add_hook(_otel_hook)
    _current_traceparent = _otel.format_current_traceparent


def with_traceparent(headers: Sequence[tuple[str, bytes | None]]) -> Sequence[Any]:
    """``headers`` plus the current span's ``traceparent`` (unchanged without one)."""
    value = _current_traceparent()
    return headers if value is None else add_header(headers, value)


def messages_with_traceparent(messages: Iterable[Any]) -> Iterable[Any]:
    """``produce_batch``'s messages, each with the current span's ``traceparent``."""
    value = _current_traceparent()
    if value is None:
        return messages
    # Here, not at the top: the producer imports this module.
    from trio_brod.producer.message import Message

    marked = []
    for message in messages:
        if isinstance(message, Message):
            marked.append(message._replace(headers=add_header(message.headers or (), value)))
        elif isinstance(message, tuple) and len(message) == 2:
            key, value_ = message
            marked.append(Message(value_, key, add_header((), value)))
        else:
            marked.append(message)  # produce_batch names what is wrong with it
    return marked


def handler_timer(
    topic: str, partition: int, group: str | None, source: HasHooks = state
) -> HandlerTimer | None:
    """A timer of a partition's message sets, or None when nobody observes handlers.

    Asked when a subscription starts: unless some hook of ``source`` (the client's
    :class:`Hooks`) observes handlers (:meth:`Hook.observes_handlers`; OpenTelemetry's
    once a provider is set), the subscriber times nothing.
    """
    if not source.hooks or not _hooks.observes_handlers(source):
        return None
    return HandlerTimer(topic, partition, group, source)


class HandlerTimer:
    """Times the handling of each message set of one partition: one :class:`Handled` event
    per set, whether the handler takes messages or message sets.

    Per set, not per message: recording a metric costs microseconds with OpenTelemetry's
    SDK, and even timing each call of a per-message handler costs about as much as the
    rest of consuming a small message. The subscriber calls :meth:`start` when it has a
    message set and :meth:`finish` when the set is handled (or the handler raised).
    """

    __slots__ = ("_count", "_group", "_partition", "_source", "_started", "_topic")

    def __init__(
        self, topic: str, partition: int, group: str | None, source: HasHooks = state
    ) -> None:
        self._source = source
        self._topic = topic
        self._partition = partition
        self._group = group
        self._count = 0
        self._started = 0.0

    def start(self, count: int) -> None:
        """A message set of ``count`` messages is about to be handled."""
        self._count = count
        self._started = time.perf_counter()

    def finish(self, error: BaseException | None = None) -> None:
        """The set started last is handled (or failed with ``error``); nothing if none."""
        if self._count:
            count, self._count = self._count, 0
            duration = time.perf_counter() - self._started
            _hooks.handled(
                self._source, self._topic, self._partition, self._group, count, duration, error
            )


def traced_handler(
    handle: Callable[..., Awaitable[Any]],
    topic: str,
    partition: int,
    group: str | None,
    message_type: str,
    trace_context: bool,
) -> Callable[..., Awaitable[Any]]:
    """``handle``, each call in a span when a tracer provider is set; else ``handle`` itself.

    The span is a CONSUMER span ``process <topic>``, current while the handler runs, and
    with ``trace_context`` linked to the spans named by the messages' ``traceparent``
    headers. The handler takes the message or message set as its last argument.
    """
    if _otel_hook is None or not _otel.tracing():
        return handle
    otel = _otel_hook
    is_set = message_type == "message_set"

    async def traced(*args: Any) -> Any:
        message = args[-1]
        # A message set's messages, decoded once for the links and the handler (iterating a
        # set keeps no records: the handler's loop would decode the first batch again).
        messages = (message.messages if trace_context else message) if is_set else (message,)
        count = len(message) if is_set else 1
        with otel.handler_span(topic, partition, group, messages, count, trace_context):
            return await handle(*args)

    return traced
