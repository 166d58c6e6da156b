"""OpenTelemetry's SDK for tests: in-memory readers behind the global providers.

The global providers can be set once per process (OpenTelemetry's rule, and its proxy
tracer keeps the first real tracer), so the first test that asks sets them for the rest of
the run; each test then reads only what it made, by its own topic or group names (metric
data is cumulative) and by clearing the span exporter first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@dataclass
class Otel:
    reader: InMemoryMetricReader
    exporter: InMemorySpanExporter

    def points(self, name: str, **attributes: Any) -> list[Any]:
        """Data points of metric ``name`` whose attributes include ``attributes``."""
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        if all(point.attributes.get(k) == v for k, v in attributes.items()):
                            found.append(point)
        return found

    def total(self, name: str, **attributes: Any) -> int:
        """The sum of a counter's points matching ``attributes``."""
        return sum(int(p.value) for p in self.points(name, **attributes))

    def count(self, name: str, **attributes: Any) -> int:
        """How many values a histogram recorded, over points matching ``attributes``."""
        return sum(int(p.count) for p in self.points(name, **attributes))

    def spans(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.exporter.get_finished_spans() if span.name == name]


_otel: Otel | None = None


def install() -> Otel:
    """Set the SDK behind the global providers (once per process) and return it."""
    global _otel
    if _otel is None:
        reader = InMemoryMetricReader()
        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        # The whole suite produces to tens of thousands of partitions in one process; at the
        # SDK's default of 2,000 series per metric, the later tests' series would all go to
        # the overflow series and read 0 (as an application with more partitions than that
        # would need a View too: docs/operations.rst).
        every = View(instrument_name="*", aggregation_cardinality_limit=1_000_000)
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader], views=[every]))
        trace.set_tracer_provider(tracer_provider)
        _otel = Otel(reader, exporter)
    return _otel


@pytest.fixture
def otel() -> Iterator[Otel]:
    installed = install()
    installed.exporter.clear()
    yield installed
    installed.exporter.clear()
