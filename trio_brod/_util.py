"""Small helpers shared across the package."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from trio_brod._exceptions import ConfigError

__all__ = [
    "ack_timeout_ms",
    "describe",
    "parse_bootstrap",
    "single_exception",
    "unwrap_single_exception",
]


def single_exception(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The only leaf exception in a (possibly nested) group, or None if there are several."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        else:
            leaves.append(exc)
        if len(leaves) > 1:
            return None
    return leaves[0] if leaves else None


@contextmanager
def unwrap_single_exception() -> Iterator[None]:
    """Re-raise an exception group holding a single exception as that exception.

    Nurseries wrap whatever escapes them in a group, including the exception a user's own
    ``async with`` block raised. Where exactly one thing went wrong, the honest answer is that
    one exception; where several did, the group stays. A single KeyboardInterrupt or
    SystemExit comes out alone, without the errors it caused.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        exc = single_exception(group)
        if exc is None:
            # Ctrl-C (or sys.exit) and the errors it caused on its way out, such as
            # producers failing their pending messages: the interrupt is the whole story.
            interrupts = group.subgroup(lambda e: isinstance(e, (KeyboardInterrupt, SystemExit)))
            exc = None if interrupts is None else single_exception(interrupts)
        if exc is None:
            raise
        raise exc from exc.__cause__


def describe(exc: BaseException) -> str:
    """An exception as ``Type: message`` (or just ``Type``), for the reason a connection
    closed or failed: ``str()`` of an OSError or a trio error alone often says too little."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def parse_bootstrap(servers: str | Iterable[str | tuple[str, int]]) -> list[tuple[str, int]]:
    """Turn ``"h1:9092,h2:9092"``, ``["h1:9092"]`` or ``[("h1", 9092)]`` into (host, port)s.

    Raises:
        ConfigError: An entry has no port, a bad port, or the list is empty.
    """
    if isinstance(servers, str):
        servers = [s for s in servers.split(",") if s.strip()]
    result = []
    for entry in servers:
        if isinstance(entry, tuple):
            host, port = entry
        else:
            host, sep, port_text = entry.strip().rpartition(":")
            if not sep or not host:
                raise ConfigError(f"bootstrap server {entry!r}: expected 'host:port'")
            try:
                port = int(port_text)
            except ValueError:
                raise ConfigError(f"bootstrap server {entry!r}: port is not a number") from None
        host = host.strip("[]")  # "[::1]:9092"
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"bootstrap server {entry!r}: port out of range")
        result.append((host, port))
    if not result:
        raise ConfigError("bootstrap_servers is empty")
    return result


def ms_up(seconds: float) -> int:
    """Seconds as whole milliseconds for a request's ``*_ms`` field, rounded up, so that a
    short positive time is never 0 (which would mean "do not wait"); but not past a whole
    millisecond that the float product misses by a hair (2.007 * 1000 = 2007.0000000000002).
    """
    return math.ceil(round(seconds * 1000, 6))


def ack_timeout_ms(seconds: float) -> int:
    """``ack_timeout`` in seconds as the Produce request's ``timeout_ms``.

    The nearest millisecond, and at least 1, as the setting is positive. (Truncating made
    1.001 s 1000 ms, through the float, and 0.0004 s 0 ms: no wait for the replicas at all.)
    """
    return max(1, round(seconds * 1000))


def topic_list(topics: Sequence[str] | None) -> list[str] | None:
    """``topics`` as a list (None stays None); a TypeError for one str, which is a sequence
    too: "orders" is not 6 topics."""
    if isinstance(topics, str):
        raise TypeError("topics must be a sequence of names, not a str")
    return None if topics is None else list(topics)


def check_topic(topic: object) -> None:
    """A TypeError for a topic that is not a str (bytes, say), before it reaches a request."""
    if not isinstance(topic, str):
        raise TypeError(f"topic must be a str, not {type(topic).__name__}: {topic!r:.100}")
