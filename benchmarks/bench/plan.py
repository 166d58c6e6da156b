"""What to run: the client rows, the sizes of each mode, and the cases of each workload."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

WORKLOADS = (
    "produce",
    "consume",
    "latency",
    "partitions",
    "group",
    "rebalance",
    "txn_produce",
    "txn_process",
)
#: The workloads every client row runs (the group ones: the rows that say so).
ALL = frozenset(("produce", "consume", "latency", "partitions"))
GROUPS = frozenset(("group", "rebalance"))
#: The transaction workloads (bench.transactions).
TXN = frozenset(("txn_produce", "txn_process"))


@dataclass(frozen=True)
class Row:
    """One row of the tables: a client library used one way."""

    name: str
    family: str
    variant: str
    workloads: frozenset[str]
    module: str | None  # what must be importable; None for Java
    how: str
    #: Entries added to the worker's spec, for a row that is a client with other settings.
    settings: tuple[tuple[str, Any], ...] = ()

    def available(self) -> str | None:
        """None if it can run here, else why not."""
        if self.module is not None and importlib.util.find_spec(self.module) is None:
            return f"{self.module} is not installed (pip install -e '.[bench]')"
        return None


ROWS: dict[str, Row] = {
    row.name: row
    for row in (
        Row(
            "trio-brod",
            "trio-brod",
            "single",
            ALL | GROUPS | TXN,
            "trio_brod",
            "client.produce() per message; group: a handler per message set, cooperative-sticky",
        ),
        Row(
            "trio-brod-message",
            "trio-brod",
            "single",
            frozenset({"group"}),
            "trio_brod",
            "open_group_subscriber(), a handler per message",
            (("group_message_type", "message"),),
        ),
        Row(
            "trio-brod-range",
            "trio-brod",
            "single",
            frozenset({"rebalance"}),
            "trio_brod",
            "open_group_subscriber(), range assignor (eager rebalancing)",
            (("assignor", "range"),),
        ),
        Row(
            "trio-brod-consumer",
            "trio-brod",
            "single",
            frozenset({"rebalance"}),
            "trio_brod",
            'open_group_subscriber(), GroupConfig(group_protocol="consumer") (KIP-848)',
            (("group_protocol", "consumer"),),
        ),
        Row(
            "trio-brod-batch",
            "trio-brod",
            "batch",
            frozenset({"produce"}),
            "trio_brod",
            "client.produce_batch(), 1,000 messages a call",
        ),
        Row(
            "trio-brod-partition",
            "trio-brod",
            "single",
            frozenset({"consume", "partitions"}),
            "trio_brod",
            'subscribe() per partition, ConsumerConfig(fetch_connection="partition") (brod\'s)',
            (("fetch_connection", "partition"),),
        ),
        Row(
            "trio-brod-otel",
            "trio-brod",
            "single",
            frozenset({"produce", "consume"}),
            "opentelemetry.sdk",
            "as trio-brod, with OpenTelemetry's SDK metrics on (a MeterProvider with a reader)",
            (("observe", "sdk"),),
        ),
        Row(
            "trio-brod-unobserved",
            "trio-brod",
            "single",
            frozenset({"produce", "consume"}),
            "trio_brod",
            "as trio-brod, no hook registered (as without opentelemetry-api)",
            (("observe", "off"),),
        ),
        Row(
            "aiokafka",
            "aiokafka",
            "single",
            ALL | GROUPS | TXN,
            "aiokafka",
            "send() per message; group: subscribe(), range (eager)",
        ),
        Row(
            "aiokafka-batch",
            "aiokafka",
            "batch",
            frozenset({"produce"}),
            "aiokafka",
            "create_batch() + send_batch()",
        ),
        Row("kafka-python", "kafka-python", "single", ALL, "kafka", "send() per message"),
        Row(
            "confluent-kafka",
            "confluent-kafka",
            "single",
            ALL | GROUPS | {"txn_produce"},
            "confluent_kafka",
            "produce() + poll(0) per message; group: subscribe(), rebalance: cooperative-sticky",
        ),
        Row(
            "confluent-kafka-consumer",
            "confluent-kafka",
            "single",
            frozenset({"rebalance"}),
            "confluent_kafka",
            "subscribe(), group.protocol=consumer (KIP-848)",
            (("group_protocol", "consumer"),),
        ),
        Row(
            "confluent-kafka-batch",
            "confluent-kafka",
            "batch",
            frozenset({"produce"}),
            "confluent_kafka",
            "produce_batch(), 1,000 messages a call",
        ),
        Row(
            "java",
            "java",
            "tool",
            frozenset({"produce", "consume", "latency"}),
            None,
            "Kafka's ProducerPerformance / ConsumerPerformance / EndToEndLatency",
        ),
    )
}

#: The peers trio-brod is compared with, and the issue's targets (trio-brod / peer).
TARGETS: dict[str, float | None] = {
    "aiokafka": 2.0,
    "kafka-python": 5.0,
    "confluent-kafka": 0.7,
    "java": None,  # the ceiling: shown, no target
}


@dataclass(frozen=True)
class Mode:
    """Sizes for one mode (full, --quick, --smoke)."""

    name: str
    messages: int
    produce_cases: tuple[tuple[int, int, str], ...]  # (partitions, acks, compression)
    consume_cases: tuple[tuple[int, str], ...]  # (partitions, compression)
    latency_warmup: float
    latency_duration: float
    partition_counts: tuple[int, ...]
    partition_messages: int
    settle: float = 1.0
    #: Seconds between runs, for the broker to settle (GC, log flushes).
    pause: float = 1.0
    #: Extra runs of a row whose runs were all disturbed by other processes.
    retries: int = 2
    #: The rebalance workload: messages/s produced meanwhile, and seconds to wait before
    #: each join (and after each recovery) so that the group is steady.
    rebalance_rate: int = 1200
    rebalance_settle: float = 2.0
    extra: dict[str, Any] = field(default_factory=dict)


_FULL_PRODUCE = tuple(
    (partitions, acks, compression)
    for partitions in (1, 8)
    for acks in (1, -1)
    for compression in ("none", "zstd")
)
#: A half fraction of the 2x2x2 design: every level of every factor appears twice.
_QUICK_PRODUCE = ((1, 1, "none"), (1, -1, "zstd"), (8, -1, "none"), (8, 1, "zstd"))

MODES = {
    "full": Mode(
        "full",
        messages=1_000_000,
        produce_cases=_FULL_PRODUCE,
        consume_cases=((1, "none"), (1, "zstd"), (8, "none"), (8, "zstd")),
        latency_warmup=3.0,
        latency_duration=15.0,
        partition_counts=(1, 100, 1000),
        partition_messages=100_000,
    ),
    "quick": Mode(
        "quick",
        messages=100_000,
        produce_cases=_QUICK_PRODUCE,
        consume_cases=((1, "none"), (8, "zstd")),
        latency_warmup=1.0,
        latency_duration=4.0,
        partition_counts=(1, 100, 1000),
        partition_messages=20_000,
        settle=0.5,
        pause=0.2,
        retries=0,  # the time limit matters more here; use --retries to change it
    ),
    "smoke": Mode(
        "smoke",
        messages=2_000,
        produce_cases=((1, 1, "none"), (8, -1, "zstd")),
        consume_cases=((8, "zstd"),),
        latency_warmup=0.3,
        latency_duration=1.0,
        partition_counts=(1, 10),
        partition_messages=1_000,
        settle=0.2,
        rebalance_rate=600,
        rebalance_settle=0.5,
        pause=0.0,
        retries=0,
    ),
}

#: Settings every client gets, as close as their knobs allow.
BATCH_BYTES = 128 * 1024
LINGER_MS = 5
CALL_SIZE = 1000
LATENCY_RATE = 5000
LATENCY_ACKS = 1
#: trio-brod's subscription window for the consume workloads (its defaults are 1,000
#: messages / 1 MiB; the peers prefetch tens of MiB by default).
TB_PREFETCH_COUNT = 20_000
TB_PREFETCH_BYTES = 8 * 1024 * 1024


def case_name(workload: str, partitions: int, acks: int | None, compression: str | None) -> str:
    parts = [workload, f"{partitions}p"]
    if acks is not None:
        parts.append(f"acks={acks}")
    if compression is not None:
        parts.append(compression)
    return " ".join(parts)


def select_rows(names: list[str] | None) -> list[Row]:
    if not names:
        return list(ROWS.values())
    rows = []
    for name in names:
        if name not in ROWS:
            raise SystemExit(f"unknown client {name!r}; choose from {', '.join(ROWS)}")
        rows.append(ROWS[name])
    return rows


def select_workloads(names: list[str] | None) -> list[str]:
    if not names:
        return list(WORKLOADS)
    for name in names:
        if name not in WORKLOADS:
            raise SystemExit(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")
    return [w for w in WORKLOADS if w in names]
