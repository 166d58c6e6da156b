"""A connection's request deadlines: one timer for every request (``_net/deadlines.py``)."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.broker import FakeBroker, Request
from tests.unit.test_connection import connect
from trio_brod._exceptions import ConnectionLost, RequestTimedOut
from trio_brod._net import Connection
from trio_brod._net.deadlines import RequestDeadlines
from trio_brod._net.pending import PendingResponse
from trio_brod.protocol import MetadataRequest, MetadataResponse

#: add(timeout index), finish(request index), abandon(request index), advance(seconds).
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 2)),
        st.tuples(st.just("finish"), st.integers(0, 40)),
        st.tuples(st.just("abandon"), st.integers(0, 40)),
        st.tuples(st.just("advance"), st.floats(0, 20)),
    ),
    max_size=60,
)
TIMEOUTS = (1.0, 5.0, 30.0)


@settings(max_examples=300, deadline=None)
@given(STEPS)
def test_the_next_deadline_is_the_earliest_of_the_requests_still_waiting(
    steps: list[tuple[str, float]],
) -> None:
    """Against a model that keeps every request: the next deadline, what is overdue, and
    that only finished requests are forgotten. Requests finish in any order here, not only
    in the order they were sent."""
    deadlines = RequestDeadlines()
    requests: list[tuple[float, float, PendingResponse]] = []  # deadline, timeout, request
    now = 0.0
    for step, arg in steps:
        if step == "add":
            timeout = TIMEOUTS[int(arg)]
            pending = PendingResponse(MetadataResponse, 1, None)
            deadlines.add(pending, timeout, now)
            requests.append((now + timeout, timeout, pending))
        elif step == "advance":
            now += arg
        elif requests:
            pending = requests[int(arg) % len(requests)][2]
            if step == "finish":
                pending.done.set()
            else:
                pending.abandoned = True
        waiting = [(d, t, p) for d, t, p in requests if not (p.done.is_set() or p.abandoned)]
        assert deadlines.next_deadline() == min((d for d, _, _ in waiting), default=math.inf)
        found = deadlines.overdue(now)
        if found is None:
            assert all(d > now for d, _, _ in waiting)
        else:
            pending, timeout = found
            assert any(p is pending and t == timeout and d <= now for d, t, p in waiting)
        assert len(waiting) <= len(deadlines) <= len(requests)


def test_answered_requests_are_forgotten_as_new_ones_come() -> None:
    """Answered in order, as a broker answers: what is kept stays one request long."""
    deadlines = RequestDeadlines()
    for n in range(1000):
        pending = PendingResponse(MetadataResponse, 1, None)
        deadlines.add(pending, 30.0, float(n))
        pending.done.set()
        assert len(deadlines) <= 1


async def unanswering(nursery: trio.Nursery, broker: FakeBroker) -> Connection:
    """A connection to a broker that never answers a Metadata request."""

    async def never(stream: trio.SocketStream, request: Request) -> None:
        pass

    broker.handlers[MetadataRequest.API_KEY] = never
    return await connect(nursery, broker)


async def test_a_shorter_timeout_wakes_the_timer_sooner(
    nursery: trio.Nursery, broker: FakeBroker, autojump_clock: trio.testing.MockClock
) -> None:
    """A request sent after a longer one still times out at its own deadline."""

    connection = await unanswering(nursery, broker)
    longer = connection.send(MetadataRequest(topics=[]))

    async def ask_patiently() -> None:
        with pytest.raises(ConnectionLost, match=r"no response within 0.5s"):
            await connection.request(MetadataRequest(topics=[]), timeout=100)

    nursery.start_soon(ask_patiently)
    await trio.testing.wait_all_tasks_blocked()
    started = trio.current_time()
    with pytest.raises(RequestTimedOut, match=r"no response within 0.5s"):
        await connection.request(MetadataRequest(topics=None), timeout=0.5)
    assert trio.current_time() - started == pytest.approx(0.5)
    assert connection.closed
    await longer.done.wait()
    with pytest.raises(ConnectionLost, match=r"no response within 0.5s"):
        longer.result()


async def test_a_cancelled_request_is_not_timed(
    nursery: trio.Nursery, broker: FakeBroker, autojump_clock: trio.testing.MockClock
) -> None:
    """A caller that stopped waiting abandoned its request: its deadline closes nothing."""

    connection = await unanswering(nursery, broker)
    with trio.move_on_after(0.1):
        await connection.request(MetadataRequest(topics=None), timeout=0.5)
    await trio.sleep(2)
    assert not connection.closed
