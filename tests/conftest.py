"""The suite's layout rule: a test's directory says what it needs.

``tests/unit``: no broker, no JVM, no network beyond loopback fakes; ``tests/integration``:
a real Kafka started by ``trio_brod.testing`` (the ``integration`` marker, and ``cluster``
for the three-broker cluster). A test in the wrong place is a collection error, so that
``-m "not integration"`` and ``tests/unit`` always select the same tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).parent


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
