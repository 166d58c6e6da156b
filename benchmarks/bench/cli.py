"""``python benchmarks/run.py [--quick | --smoke] [--clients ...] [--workloads ...]``."""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import groups, plan, report, transactions
from bench.broker import Broker, TopicSpec, open_broker
from bench.common import read_json, write_json, write_payload_file
from bench.plan import Mode, Row

BENCH_DIR = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = BENCH_DIR / "results"

Record = dict[str, Any]
#: A run during which other processes used more than this share of all cores is
#: "disturbed": it is run again (``--retries``), and a calm attempt is preferred.
DISTURBED_SHARE = 0.15


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="trio-brod against aiokafka, kafka-python, confluent-kafka and Kafka's "
        "Java tools, on one local broker, every run in its own subprocess.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="100k messages, fewer cases (<3 min)")
    size.add_argument("--smoke", action="store_true", help="a few thousand messages (CI check)")
    parser.add_argument("--messages", type=int, help="records per produce/consume run")
    parser.add_argument(
        "--partition-messages",
        type=int,
        help="records spread over the partitions workload's topics (default 100,000: mostly "
        "the cost of starting a subscription per partition; more shows the steady state)",
    )
    parser.add_argument("--bootstrap", help="use this broker (host:port) instead of starting one")
    parser.add_argument(
        "--clients",
        help="comma-separated rows to run (default all): " + ", ".join(plan.ROWS),
    )
    parser.add_argument(
        "--workloads",
        help="comma-separated workloads (default all): " + ", ".join(plan.WORKLOADS),
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="where <timestamp>.json, latest.json and latest.png go (default benchmarks/results)",
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument("--heap", default="1g", help="the broker's JVM heap (default 1g)")
    parser.add_argument(
        "--broker-data",
        default="auto",
        help="where the launched broker keeps its data (default auto: /dev/shm when it has "
        "6 GiB free, so that the disk is not measured; else the system temporary directory)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        help="runs of each produce/consume case per client, best kept (default: 1; "
        "other processes on the machine only ever slow a run down)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        help="extra runs of a row whose runs were all disturbed by other processes "
        "(default 2; 0 with --smoke)",
    )
    parser.add_argument(
        "--pause", type=float, help="seconds between runs for the broker to settle (default 1)"
    )
    return parser.parse_args(argv)


def _split(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


class Runner:
    """Runs every case, one subprocess per (case, row), and keeps the records."""

    def __init__(
        self,
        broker: Broker,
        mode: Mode,
        rows: list[Row],
        workdir: Path,
        *,
        repeat: int = 1,
        retries: int = 0,
        pause: float = 0.0,
    ) -> None:
        self.broker = broker
        self.repeat = repeat
        self.retries = retries
        self.pause = pause
        self._rotation = 0
        self.mode = mode
        self.rows = rows
        self.workdir = workdir
        self.run_id = uuid.uuid4().hex[:6]
        self.records: list[Record] = []
        self.payload_file = write_payload_file(workdir / "payloads.txt")
        self.fills: dict[str, Any] = {}
        self._seq = 0

    # ------------------------------------------------------------ plumbing

    def topic(self, *parts: object) -> str:
        text = "-".join(str(p) for p in parts).replace("=", "").replace(" ", "-")
        return f"bench-{self.run_id}-{text}"

    def base_spec(self, row: Row) -> dict[str, Any]:
        return {
            "bootstrap": self.broker.bootstrap,
            "family": row.family,
            "variant": row.variant,
            "batch_bytes": plan.BATCH_BYTES,
            "linger_ms": plan.LINGER_MS,
            "call_size": plan.CALL_SIZE,
            "tb_prefetch_count": plan.TB_PREFETCH_COUNT,
            "tb_prefetch_bytes": plan.TB_PREFETCH_BYTES,
            **dict(row.settings),
        }

    def run_worker(self, spec: dict[str, Any], timeout: float, label: str) -> dict[str, Any]:
        """Run one worker subprocess; its result dict (with ``ok``, maybe ``error``)."""
        self._seq += 1
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{self._seq:03d}-{label}")
        spec_path = self.workdir / f"{stem}.spec.json"
        result_path = self.workdir / f"{stem}.result.json"
        log_path = self.workdir / f"{stem}.log"
        spec = {**spec, "timeout": timeout}
        write_json(spec_path, spec)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(BENCH_DIR), env.get("PYTHONPATH", "")) if p
        )
        if self.pause:
            time.sleep(self.pause)  # let the broker settle after the previous run
        broker_cpu = self.broker.cpu_seconds()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy = _system_busy_seconds()
        started = time.perf_counter()
        with open(log_path, "wb") as log:
            try:
                completed = subprocess.run(
                    [sys.executable, "-m", "bench.worker", str(spec_path), str(result_path)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=timeout + 30,
                    check=False,
                )
                returncode: int | None = completed.returncode
            except subprocess.TimeoutExpired:
                returncode = None
        wall = time.perf_counter() - started
        broker_after = self.broker.cpu_seconds()
        busy_after = _system_busy_seconds()
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        worker_cpu = (children_after.ru_utime - children.ru_utime) + (
            children_after.ru_stime - children.ru_stime
        )
        result: dict[str, Any]
        if result_path.exists():
            result = dict(read_json(result_path))
        else:
            why = "timed out" if returncode is None else f"exited {returncode}"
            result = {"ok": False, "error": f"worker {why} without a result"}
        if not result.get("ok"):
            tail = log_path.read_text(errors="replace")[-1500:]
            result["log_tail"] = tail
        result["wall_s"] = wall
        result["worker_cpu_s"] = worker_cpu
        if broker_cpu is not None and broker_after is not None:
            result["broker_cpu_s"] = broker_after - broker_cpu
            # CPU that neither the worker nor the broker used: other processes on the
            # machine, which the numbers of this run may suffer from.
            result["other_cpu_s"] = max(
                0.0, (busy_after - busy) - worker_cpu - result["broker_cpu_s"]
            )
        return result

    def attempts(
        self,
        workload: str,
        case: str,
        rows: list[Row],
        make_spec: Callable[[Row], dict[str, Any]],
        timeout: float,
        *,
        check_log: bool = False,
    ) -> None:
        """Run each row ``repeat`` times, rows in a rotated order in each round, and record
        the best attempt (highest msgs/s, or the first that worked) with all of them."""
        runs: dict[str, list[dict[str, Any]]] = {row.name: [] for row in rows}
        self._rotation += 1

        def attempt(row: Row, label: str) -> None:
            spec = make_spec(row)
            before = self.broker.log_size(spec["topic"]) if check_log else 0
            result = self.run_worker(spec, timeout, f"{case}-{row.name}-{label}")
            if check_log and result.get("ok"):
                # Every record acknowledged must be in the log, and no more.
                written = spec["messages"] + int(result.get("warmup_messages", 0))
                expected = before + written
                in_log = self.broker.log_size(spec["topic"])
                if in_log != expected:
                    result["ok"] = False
                    result["error"] = f"the log holds {in_log} records, not {expected}"
            result["disturbed"] = self.disturbed(result)
            runs[row.name].append(result)

        for round_ in range(self.repeat):
            shift = (self._rotation + round_) % max(1, len(rows))
            for row in rows[shift:] + rows[:shift]:
                attempt(row, str(round_))
        # Runs that other processes ate into are run again, a few times at most.
        for retry in range(self.retries):
            for row in rows:
                results = runs[row.name]
                if all(r.get("disturbed") for r in results if r.get("ok")) and any(
                    r.get("ok") for r in results
                ):
                    attempt(row, f"retry{retry}")
        for row in rows:
            results = runs[row.name]
            good = [r for r in results if r.get("ok")]
            calm = [r for r in good if not r.get("disturbed")] or good
            best = max(calm, key=lambda r: r.get("msgs_per_s", 0)) if calm else results[0]
            entry = dict(best)
            if len(results) > 1:
                entry["attempts"] = [
                    {
                        k: r.get(k)
                        for k in (
                            "ok",
                            "error",
                            "msgs_per_s",
                            "cpu_s_per_m",
                            "other_cpu_s",
                            "broker_cpu_s",
                            "wall_s",
                            "disturbed",
                            "latency",
                        )
                    }
                    for r in results
                ]
            self.record(workload, case, row, entry)

    def disturbed(self, result: dict[str, Any]) -> bool:
        """Whether other processes used more than DISTURBED_SHARE of the machine meanwhile."""
        other, wall = result.get("other_cpu_s"), result.get("wall_s")
        if other is None or not wall:
            return False
        return bool(other > DISTURBED_SHARE * wall * (os.cpu_count() or 1))

    def record(self, workload: str, case: str, row: Row, result: dict[str, Any]) -> Record:
        entry = {"workload": workload, "case": case, "row": row.name, "family": row.family}
        entry.update(result)
        self.records.append(entry)
        status = "ok" if entry.get("ok") else f"FAILED: {entry.get('error')}"
        if entry.get("skipped"):
            status = f"skipped: {entry['skipped']}"
        rate = entry.get("msgs_per_s")
        shown = f"{rate:>12,.0f} msgs/s" if rate else ""
        print(f"  {case:<28} {row.name:<22} {shown} {status}", flush=True)
        return entry

    def skip(self, workload: str, case: str, row: Row, why: str) -> None:
        self.record(workload, case, row, {"ok": False, "skipped": why})

    def rows_for(self, workload: str) -> list[Row]:
        return [row for row in self.rows if workload in row.workloads]

    def usable(self, workload: str, case: str) -> list[Row]:
        usable = []
        for row in self.rows_for(workload):
            why = row.available()
            if why is None:
                usable.append(row)
            else:
                self.skip(workload, case, row, why)
        return usable

    def timeout_for(self, messages: int) -> float:
        return 120 + messages / 2000

    # ------------------------------------------------------------ workloads

    def warm_up_broker(self) -> None:
        """One untimed produce and consume, so the broker's JIT is warm for the first case."""
        row = plan.ROWS["trio-brod-batch"]
        if row.available() is not None:
            return
        topic = self.topic("warmup")
        self.broker.create_topics([TopicSpec(topic, 8)])
        spec = self.base_spec(row) | {
            "workload": "produce",
            "topic": topic,
            "partitions": 8,
            "messages": self.mode.messages,
            "acks": 1,
            "compression": "none",
            "linger_ms": 0,
        }
        self.run_worker(spec, self.timeout_for(self.mode.messages), "warmup-produce")
        spec = spec | {
            "workload": "consume",
            "variant": "single",
            "messages": self.broker.log_size(topic),
        }
        self.run_worker(spec, self.timeout_for(self.mode.messages), "warmup-consume")

    def produce(self) -> None:
        mode = self.mode
        rows = [r for r in self.rows_for("produce") if r.available() is None]
        cases = []
        for partitions, acks, compression in mode.produce_cases:
            case = plan.case_name("produce", partitions, acks, compression)
            names = {r.name: self.topic("p", partitions, acks, compression, r.name) for r in rows}
            cases.append((case, partitions, acks, compression, names))
        self.broker.create_topics([TopicSpec(t, c[1]) for c in cases for t in c[4].values()])
        for case, partitions, acks, compression, names in cases:
            print(case, flush=True)
            make_spec = functools.partial(
                self.produce_spec,
                names=names,
                partitions=partitions,
                acks=acks,
                compression=compression,
            )
            self.attempts(
                "produce",
                case,
                self.usable("produce", case),
                make_spec,
                self.timeout_for(mode.messages),
                check_log=True,
            )
            # Counted: the records need not stay (in memory, when the broker's data is).
            self.broker.delete_topics(list(names.values()))

    def produce_spec(
        self, row: Row, *, names: dict[str, str], partitions: int, acks: int, compression: str
    ) -> dict[str, Any]:
        spec = self.base_spec(row) | {
            "workload": "produce",
            "topic": names[row.name],
            "partitions": partitions,
            "messages": self.mode.messages,
            "acks": acks,
            "compression": compression,
        }
        if row.name == "trio-brod-batch":
            # Each call is a whole batch already: nothing to linger for (as with aiokafka's
            # send_batch, which has no linger either).
            spec["linger_ms"] = 0
        if row.family == "java":
            spec |= self.java_produce(names[row.name], acks, compression)
        return spec

    def java_produce(self, topic: str, acks: int, compression: str) -> dict[str, Any]:
        properties = [
            f"acks={'all' if acks == -1 else acks}",
            f"linger.ms={plan.LINGER_MS}",
            f"batch.size={plan.BATCH_BYTES}",
            f"compression.type={compression}",
            f"enable.idempotence={'true' if acks == -1 else 'false'}",
        ]
        command = self.broker.java_command(
            "org.apache.kafka.tools.ProducerPerformance",
            "--topic", topic,
            "--num-records", str(self.mode.messages),
            "--throughput", "-1",
            "--payload-file", str(self.payload_file),
            "--reporting-interval", "600000",
            "--command-property", *properties,
        )  # fmt: skip
        return {
            "command": command,
            "tool": "ProducerPerformance",
            "settings": " ".join(properties) + " (values from the same pool, no keys)",
        }

    def fill(self, case: str, topic: str, partitions: int, compression: str) -> None:
        """Write the mode's records to a topic created beforehand (confluent-kafka's
        producer, else trio-brod's), for the workloads that read."""
        fill_row = plan.ROWS["confluent-kafka"]
        if fill_row.available() is not None:
            fill_row = plan.ROWS["trio-brod-batch"]
        spec = self.base_spec(fill_row) | {
            "workload": "fill" if fill_row.family == "confluent-kafka" else "produce",
            "topic": topic,
            "partitions": partitions,
            "messages": self.mode.messages,
            "acks": 1,
            "compression": compression,
        }
        result = self.run_worker(spec, self.timeout_for(self.mode.messages), f"fill-{case}")
        if not result.get("ok"):
            raise SystemExit(
                f"filling {topic} failed: {result.get('error')}\n{result.get('log_tail', '')}"
            )
        self.fills[case] = {"row": fill_row.name, "settings": result.get("settings")}

    def consume(self) -> None:
        mode = self.mode
        cases = []
        for partitions, compression in mode.consume_cases:
            case = plan.case_name("consume", partitions, None, compression)
            cases.append((case, partitions, compression, self.topic("c", partitions, compression)))
        self.broker.create_topics([TopicSpec(t, p) for _c, p, _z, t in cases])
        print(f"filling {len(cases)} topics", flush=True)
        for case, partitions, compression, topic in cases:
            self.fill(case, topic, partitions, compression)
        for case, partitions, _compression, topic in cases:
            print(case, flush=True)
            expected = self.broker.log_size(topic)
            make_spec = functools.partial(
                self.consume_spec, topic=topic, partitions=partitions, expected=expected
            )
            self.attempts(
                "consume",
                case,
                self.usable("consume", case),
                make_spec,
                self.timeout_for(expected),
            )

    def consume_spec(
        self, row: Row, *, topic: str, partitions: int, expected: int
    ) -> dict[str, Any]:
        spec = self.base_spec(row) | {
            "workload": "consume",
            "topic": topic,
            "partitions": partitions,
            "messages": expected,
        }
        if row.family == "java":
            command = self.broker.java_command(
                "org.apache.kafka.tools.ConsumerPerformance",
                "--topic", topic,
                "--num-records", str(expected),
                "--timeout", "60000",
            )  # fmt: skip
            spec |= {
                "command": command,
                "tool": "ConsumerPerformance",
                "settings": "defaults (subscribe, fetch.max.bytes=50MiB, "
                "max.partition.fetch.bytes=1MiB); rate over fetch.time.ms",
            }
        return spec

    def latency(self) -> None:
        mode = self.mode
        case = f"latency 1p acks={plan.LATENCY_ACKS} @{plan.LATENCY_RATE}/s"
        rows = [r for r in self.rows_for("latency") if r.available() is None]
        names = {row.name: self.topic("l", row.name) for row in rows}
        self.broker.create_topics([TopicSpec(name, 1) for name in names.values()])
        print(case, flush=True)

        def make_spec(row: Row) -> dict[str, Any]:
            topic = names[row.name]
            spec = self.base_spec(row) | {
                "workload": "latency",
                "topic": topic,
                "partitions": 1,
                "acks": plan.LATENCY_ACKS,
                "compression": "none",
                "rate": plan.LATENCY_RATE,
                "warmup": mode.latency_warmup,
                "duration": mode.latency_duration,
            }
            if row.family == "java":
                count = max(500, int(mode.latency_duration * 1000))
                command = self.broker.java_command(
                    "org.apache.kafka.tools.EndToEndLatency",
                    self.broker.bootstrap,
                    topic,
                    str(count),
                    str(plan.LATENCY_ACKS),
                    "100",
                    bootstrap=False,
                )
                spec |= {
                    "messages": count,
                    "command": command,
                    "tool": "EndToEndLatency",
                    "settings": f"{count} messages one at a time, acks={plan.LATENCY_ACKS}",
                }
            return spec

        timeout = 90 + mode.latency_warmup + mode.latency_duration
        saved, self.repeat = self.repeat, 1  # one long run each; repeats would only pick luck
        try:
            self.attempts("latency", case, self.usable("latency", case), make_spec, timeout)
        finally:
            self.repeat = saved

    def partitions(self) -> None:
        mode = self.mode
        rows = [r for r in self.rows_for("partitions") if r.available() is None]
        layout = {
            (count, row.name): self.topic("m", count, row.name)
            for count in mode.partition_counts
            for row in rows
        }
        self.broker.create_topics([TopicSpec(t, count) for (count, _r), t in layout.items()])
        saved, self.repeat = self.repeat, 1
        try:
            for count in mode.partition_counts:
                case = f"partitions {count}p"
                print(case, flush=True)

                def make_spec(row: Row, count: int = count) -> dict[str, Any]:
                    return self.base_spec(row) | {
                        "workload": "partitions",
                        "topic": layout[(count, row.name)],
                        "partitions": count,
                        "messages": mode.partition_messages,
                        "acks": 1,
                        "compression": "none",
                        "settle": mode.settle,
                        "variant": "single",
                    }

                timeout = 240 + self.timeout_for(mode.partition_messages)
                self.attempts(
                    "partitions", case, self.usable("partitions", case), make_spec, timeout
                )
        finally:
            self.repeat = saved

    def group(self) -> None:
        """One group member over 8 partitions, from the earliest offset to the end."""
        case = plan.case_name("group", 8, None, None)
        topic = self.topic("g", 8)
        self.broker.create_topics([TopicSpec(topic, 8)])
        print(case, flush=True)
        self.fill(case, topic, 8, "none")
        expected = self.broker.log_size(topic)
        # The broker creates its offsets topic and loads the coordinator at the first group
        # request: an untimed group run first, so that no row pays for it.
        warm = plan.ROWS["trio-brod"]
        if warm.available() is None:
            spec = self.base_spec(warm) | {
                "workload": "group",
                "topic": topic,
                "partitions": 8,
                "messages": expected,
            }
            self.run_worker(spec, self.timeout_for(expected), "warmup-group")

        def make_spec(row: Row) -> dict[str, Any]:
            return self.base_spec(row) | {
                "workload": "group",
                "topic": topic,
                "partitions": 8,
                "messages": expected,
            }

        self.attempts(
            "group", case, self.usable("group", case), make_spec, self.timeout_for(expected)
        )

    def rebalance(self) -> None:
        """A second and then a third member join a consuming group over 12 partitions."""
        mode = self.mode
        case = f"rebalance {groups.REBALANCE_PARTITIONS}p 1->2->3 members"
        rows = [r for r in self.rows_for("rebalance") if r.available() is None]
        names = {row.name: self.topic("r", row.name) for row in rows}
        self.broker.create_topics(
            [TopicSpec(name, groups.REBALANCE_PARTITIONS) for name in names.values()]
        )
        print(case, flush=True)

        def make_spec(row: Row) -> dict[str, Any]:
            return self.base_spec(row) | {
                "workload": "rebalance",
                "topic": names[row.name],
                "partitions": groups.REBALANCE_PARTITIONS,
                "rate": mode.rebalance_rate,
                "settle": mode.rebalance_settle,
            }

        saved, self.repeat = self.repeat, 1  # one run each: it is timed by the rebalances
        try:
            self.attempts("rebalance", case, self.usable("rebalance", case), make_spec, 300)
        finally:
            self.repeat = saved

    def txn_produce(self) -> None:
        """Transactions of 1,000 records into an 8-partition topic (bench.transactions)."""
        partitions = transactions.PRODUCE_PARTITIONS
        case = f"txn_produce {partitions}p {transactions.TXN_SIZE} msgs/txn"
        rows = [r for r in self.rows_for("txn_produce") if r.available() is None]
        names = {row.name: self.topic("t", row.name) for row in rows}
        self.broker.create_topics([TopicSpec(name, partitions) for name in names.values()])
        print(case, flush=True)

        def make_spec(row: Row) -> dict[str, Any]:
            return self.base_spec(row) | {
                "workload": "txn_produce",
                "topic": names[row.name],
                "partitions": partitions,
                "messages": self.mode.messages,
                "acks": -1,
                "compression": "none",
            }

        timeout = self.timeout_for(self.mode.messages)
        self.attempts("txn_produce", case, self.usable("txn_produce", case), make_spec, timeout)

    def txn_process(self) -> None:
        """One exactly-once processor over a 6-partition topic (bench.transactions)."""
        partitions = transactions.PROCESS_PARTITIONS
        case = f"txn_process {partitions}p 1 member"
        source = self.topic("e", partitions)
        rows = [r for r in self.rows_for("txn_process") if r.available() is None]
        outputs = {row.name: self.topic("eo", row.name) for row in rows}
        self.broker.create_topics(
            [TopicSpec(source, partitions)] + [TopicSpec(t, partitions) for t in outputs.values()]
        )
        print(case, flush=True)
        self.fill(case, source, partitions, "none")
        expected = self.broker.log_size(source)

        def make_spec(row: Row) -> dict[str, Any]:
            return self.base_spec(row) | {
                "workload": "txn_process",
                "topic": source,
                "output": outputs[row.name],
                "partitions": partitions,
                "messages": expected,
            }

        saved, self.repeat = self.repeat, 1  # each run commits its group's offsets
        try:
            timeout = self.timeout_for(expected)
            self.attempts("txn_process", case, self.usable("txn_process", case), make_spec, timeout)
        finally:
            self.repeat = saved


def _system_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = plan.MODES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.messages:
        mode = Mode(**{**mode.__dict__, "messages": args.messages})
    if args.partition_messages:
        mode = Mode(**{**mode.__dict__, "partition_messages": args.partition_messages})
    rows = plan.select_rows(_split(args.clients))
    workloads = plan.select_workloads(_split(args.workloads))
    started = time.perf_counter()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"trio-brod benchmarks, mode {mode.name}: {mode.messages:,} messages per run", flush=True)
    with tempfile.TemporaryDirectory(prefix="trio-brod-bench-") as tmp:
        with open_broker(args.bootstrap, heap=args.heap, data_dir=args.broker_data) as broker:
            print(
                f"broker at {broker.bootstrap} (Kafka {broker.kafka_version}), "
                f"up after {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            runner = Runner(
                broker,
                mode,
                rows,
                Path(tmp),
                repeat=args.repeat or 1,
                retries=args.retries if args.retries is not None else mode.retries,
                pause=args.pause if args.pause is not None else mode.pause,
            )
            runner.warm_up_broker()
            for workload in workloads:
                getattr(runner, workload)()
            meta = report.machine_info(broker, mode, command, stamp)
            meta["fills"] = runner.fills
            meta["repeat"] = runner.repeat
            meta["retries"] = runner.retries
            meta["disturbed_share"] = DISTURBED_SHARE
            meta["pause_s"] = runner.pause
        meta["duration_s"] = time.perf_counter() - started
        data = report.build(meta, runner.records, [row.__dict__ for row in rows])
    print()
    print(report.render(data))
    paths = report.save(data, args.output_dir, stamp, plot=not args.no_plot)
    for path in paths:
        print(f"wrote {path}")
    failed = [r for r in runner.records if not r.get("ok") and not r.get("skipped")]
    if failed:
        print(f"{len(failed)} runs FAILED:", file=sys.stderr)
        for r in failed:
            print(f"  {r['case']} {r['row']}: {r.get('error')}", file=sys.stderr)
        return 1
    return 0
