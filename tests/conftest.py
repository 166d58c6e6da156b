"""The suite's layout rule: a test's directory says what it needs.

``tests/unit``: no broker, no JVM, no network beyond loopback fakes; ``tests/integration``:
a real Kafka started by ``trio_brod.testing`` (the ``integration`` marker, and ``cluster``
for the three-broker cluster). A test in the wrong place is a collection error, so that
``-m "not integration"`` and ``tests/unit`` always select the same tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import settings

TESTS = Path(__file__).parent

# No property is timed: an example that takes longer on a loaded machine (the integration
# tests' brokers share its cores) is not a failure. Speed is the benchmarks' business.
settings.register_profile("trio-brod", deadline=None)
settings.load_profile("trio-brod")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    misplaced = []
    for item in items:
        try:
            where = item.path.relative_to(TESTS).parts[0]
        except ValueError:
            continue
        marked = item.get_closest_marker("integration") is not None
        if where == "integration" and not marked:
            misplaced.append(f"{item.nodeid}: in tests/integration without the integration mark")
        elif where == "unit" and marked:
            misplaced.append(f"{item.nodeid}: marked integration, but in tests/unit")
    if misplaced:
        raise pytest.UsageError("tests in the wrong directory:\n" + "\n".join(misplaced))


# OpenTelemetry's SDK behind the global providers, for the tests that read metrics and spans.
from tests.otel import otel  # noqa: E402, F401


@pytest.fixture
def loopback_clock() -> trio.testing.MockClock:
    """A MockClock for tests whose clients talk over real loopback sockets (the fake Kafka).

    With ``autojump_threshold=0`` the clock jumps as soon as every task waits, and a task
    waiting for bytes the kernel has not delivered yet on loopback (it may defer that under
    load) counts as waiting: the jump then fires a connect or request timeout that no real
    broker would. A threshold of a few milliseconds of real time lets the kernel deliver
    first; timers still take no wall time beyond it.
    """
    return trio.testing.MockClock(autojump_threshold=0.005)
