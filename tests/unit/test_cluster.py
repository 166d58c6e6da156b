"""The connection pool, the metadata cache and the backoff helper, on Trio's mock clock.

Everything here runs under ``MockClock(autojump_threshold=0)`` (pytest-trio's
``autojump_clock`` fixture): the retries and cool-downs under test wait tens of seconds of
Trio time and no wall time. The broker side is an in-memory stand-in with no sockets, since
the clock jumps whenever every task waits, and a real socket wait would let it jump over a
request's timeout.
"""

from __future__ import annotations

import itertools
import math
import random
import uuid

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

import trio_brod._net.handshake as handshake_module
from tests.fakes.metadata import cache_with, metadata_answer
from trio_brod import ClientConfig, ConnectionFailed, NoLeader
from trio_brod._backoff import Backoff, Retry
from trio_brod._cluster import ConnectionPool, CoordinatorType
from trio_brod.protocol import (
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    MetadataRequest,
)
from trio_brod.protocol.errors import (
    CoordinatorLoadInProgressError,
    GroupAuthorizationFailedError,
)

# ------------------------------------------------------------------ Backoff and Retry


@given(
    base=st.floats(0.001, 5.0),
    cap=st.floats(0.001, 60.0),
    jitter=st.floats(0.0, 0.99),
    failures=st.integers(0, 200),
    seed=st.integers(0, 2**32),
)
def test_backoff_doubles_within_jitter_and_never_exceeds_its_cap(
    base: float, cap: float, jitter: float, failures: int, seed: int
) -> None:
    backoff = Backoff(base, cap, jitter=jitter, rng=random.Random(seed))
    for n in range(failures + 1):
        delay = backoff.next_delay()
        nominal = min(cap, base * 2.0**n)
        assert 0 <= delay <= cap
        assert nominal * (1 - jitter) - 1e-9 <= delay <= nominal * (1 + jitter) + 1e-9
    assert backoff.failures == failures + 1
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.next_delay() <= min(cap, base) * (1 + jitter) + 1e-9


def test_backoff_jitter_spreads_workers_apart() -> None:
    delays = {Backoff(1.0, 10.0).next_delay() for _ in range(50)}
    assert len(delays) > 40  # the same failure at the same moment: different waits
    assert all(0.8 <= d <= 1.2 for d in delays)


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="jitter"):
        Backoff(1.0, 2.0, jitter=1.5)
    with pytest.raises(ValueError, match="base"):
        Backoff(-1.0, 2.0)


async def test_retry_never_sleeps_past_its_deadline(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    retry = Retry(10.0, base=3.0, cap=100.0, jitter=0.0)
    waits = 0
    while not retry.expired:
        await retry.wait()
        waits += 1
    # 3 + 6 would reach 9; the third wait is cut to the 1 s left, not 12.
    assert waits == 3
    assert trio.current_time() - start == pytest.approx(10.0)
    assert retry.remaining() == 0.0
    assert Retry(math.inf).remaining() == math.inf


async def test_leader_election_is_waited_out_with_backoff_on_trios_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    leaders = iter([-1] * 6 + [1])
    cache, connection = cache_with({MetadataRequest: lambda: metadata_answer(next(leaders))})
    start = trio.current_time()
    broker = await cache.leader("orders", 0)
    assert (broker.node_id, broker.host, broker.port) == (1, "b1", 9092)
    asked_at = [at - start for _, at in connection.requests]
    assert len(asked_at) == 7
    gaps = [b - a for a, b in itertools.pairwise(asked_at)]
    # 50 ms doubling, with jitter, capped at 1 s.
    assert gaps[0] == pytest.approx(0.05, rel=0.25)
    assert gaps[3] == pytest.approx(0.05 * 2**3, rel=0.25)
    # (Differences of clock readings: 1 s can come out an ulp over.)
    assert 0.8 <= gaps[-1] <= 1.0 + 1e-9
    # The cache now answers without asking.
    await cache.leader("orders", 0)
    assert len(connection.requests) == 7


async def test_no_leader_is_reported_after_get_metadata_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cache, connection = cache_with(
        {MetadataRequest: lambda: metadata_answer(-1)}, get_metadata_timeout=30.0
    )
    start = trio.current_time()
    with pytest.raises(NoLeader):
        await cache.leader("orders", 0)
    assert trio.current_time() - start == pytest.approx(30.0, abs=0.01)
    # Backoff caps at 1 s: about 30 requests over 30 s, not thousands, not one.
    assert 25 <= len(connection.requests) <= 45


async def test_refresh_asks_again_even_when_the_cache_is_fresh(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cache, connection = cache_with({MetadataRequest: lambda: metadata_answer(1)})
    await cache.leader("orders", 0)
    await cache.leader("orders", 0)
    assert len(connection.requests) == 1
    await cache.leader("orders", 0, refresh=True)
    assert len(connection.requests) == 2
    await trio.sleep(ClientConfig().metadata_max_age + 1)
    await cache.leader("orders", 0)
    assert len(connection.requests) == 3
    assert await cache.topic_id("orders") == uuid.UUID(int=7)


def coordinator_answer(error: type[Exception] | None) -> FindCoordinatorResponse:
    code = 0 if error is None else error.code  # type: ignore[attr-defined]
    found = FindCoordinatorResponse.Coordinator(
        key="billing", node_id=2, host="b2", port=9093, error_code=code, error_message=None
    )
    return FindCoordinatorResponse(throttle_time_ms=0, coordinators=[found])


async def test_coordinator_lookup_retries_a_loading_coordinator_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    errors = iter([CoordinatorLoadInProgressError] * 3 + [None])
    cache, connection = cache_with(
        {FindCoordinatorRequest: lambda: coordinator_answer(next(errors))}
    )
    found = await cache.find_coordinator("billing", CoordinatorType.GROUP)
    assert (found.node_id, found.host, found.port) == (2, "b2", 9093)
    assert len(connection.requests) == 4

    cache, connection = cache_with(
        {FindCoordinatorRequest: lambda: coordinator_answer(GroupAuthorizationFailedError)}
    )
    with pytest.raises(GroupAuthorizationFailedError):
        await cache.find_coordinator("billing", CoordinatorType.GROUP)
    assert len(connection.requests) == 1


# ------------------------------------------------------------------ the reconnect cool-down


async def test_waiting_until_retry_at_ends_the_cool_down_whatever_the_rounding(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A failure at 3.0534474937409795 with a 1 s cool-down, asked again at
    # 3.9528408053937536: waiting the seconds left (1 - age) lands one rounding error
    # short of the end, the pool refused again with a zero-length wait, and a producer
    # waiting out the cool-down spun forever on the mock clock. Waiting until retry_at,
    # the very number the pool compares against, always ends it.
    attempts: list[float] = []

    async def refuse(host: str, port: int) -> trio.SocketStream:
        attempts.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(handshake_module, "open_tcp_stream", refuse)
    autojump_clock.jump(3.0534474937409795 - trio.current_time())
    async with trio.open_nursery() as nursery:
        pool = ConnectionPool([("127.0.0.1", 1)], ClientConfig(reconnect_cool_down=1.0), nursery)
        with pytest.raises(ConnectionFailed, match="refused"):
            await pool.get("127.0.0.1", 1)
        autojump_clock.jump(3.9528408053937536 - trio.current_time())
        with pytest.raises(ConnectionFailed, match="no new attempt") as refused:
            await pool.get("127.0.0.1", 1)
        assert refused.value.retry_at is not None
        await trio.sleep_until(refused.value.retry_at)
        with pytest.raises(ConnectionFailed, match="refused"):
            await pool.get("127.0.0.1", 1)
        assert len(attempts) == 2
        pool.close()


async def test_reconnect_cool_down_runs_on_trios_clock(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[float] = []

    async def refuse(host: str, port: int) -> trio.SocketStream:
        attempts.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(handshake_module, "open_tcp_stream", refuse)
    config = ClientConfig(reconnect_cool_down=30.0)
    async with trio.open_nursery() as nursery:
        pool = ConnectionPool([("127.0.0.1", 1)], config, nursery)
        start = trio.current_time()
        with pytest.raises(ConnectionFailed, match="refused"):
            await pool.get("127.0.0.1", 1)
        assert len(attempts) == 1
        # Within the cool-down: the same error at once, no new attempt.
        await trio.sleep(29.0)
        with pytest.raises(ConnectionFailed, match="no new attempt within reconnect_cool_down"):
            await pool.get("127.0.0.1", 1)
        assert len(attempts) == 1
        await trio.sleep(1.5)
        with pytest.raises(ConnectionFailed, match="refused"):
            await pool.get("127.0.0.1", 1)
        assert len(attempts) == 2
        assert attempts[1] - start == pytest.approx(30.5)
        pool.close()
