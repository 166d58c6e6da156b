"""Observing trio-brod: event hooks, and OpenTelemetry metrics and traces built on them.

Three layers, each costing nothing unless used:

* **Hooks** (:class:`Hook`, :func:`add_hook`): typed events for connections, requests,
  produce batches, message sets delivered, handlers, commits, rebalances and retries --
  brod's telemetry events in Python form. Workers emit them per request, batch or message
  set, never per message, and only when a hook is registered.
* **OpenTelemetry**: with ``opentelemetry-api`` installed (``pip install
  trio-brod[opentelemetry]``), importing trio-brod registers an
  :class:`~trio_brod.observe._otel.OpenTelemetryHook`, which records through the global
  meter and tracer providers. No setup call: set your providers as usual.
* **Trace context** in message headers (:mod:`trio_brod.observe.traceparent`), only when
  ``ProducerConfig(trace_context=True)`` / ``ConsumerConfig(trace_context=True)`` ask.

See the operations guide (``docs/operations.rst``) for the events, the metrics and a
Prometheus example.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import nullcontext
from typing import Any

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
    "Produced",
    "Rebalanced",
    "RequestAnswered",
    "Retried",
    "add_hook",
    "observed_handler",
    "remove_hook",
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


def observed_handler(
    handle: Callable[..., Awaitable[Any]],
    topic: str,
    partition: int,
    group: str | None,
    message_type: str,
    trace_context: bool,
) -> Callable[..., Awaitable[Any]]:
    """A subscriber's handler, timed (``Handled`` events) and traced when observed.

    The handler takes the message or message set as its last argument. Unless some hook
    observes handlers (:meth:`Hook.observes_handlers`) when the subscription starts, this
    returns ``handle`` itself: nothing is added per message.
    """
    if not state.hooks or not _hooks.observes_handlers():
        return handle
    is_set = message_type == "message_set"
    otel = _otel_hook if _otel_hook is not None and _otel.tracing() else None

    async def observed(*args: Any) -> Any:
        message = args[-1]
        count = len(message) if is_set else 1
        span: Any = nullcontext()
        if otel is not None:
            messages = message if is_set else (message,)
            span = otel.handler_span(topic, partition, group, messages, count, trace_context)
        started = time.perf_counter()
        try:
            with span:
                result = await handle(*args)
        except Exception as exc:
            _hooks.handled(topic, partition, group, count, started, exc)
            raise
        _hooks.handled(topic, partition, group, count, started, None)
        return result

    return observed
