"""The table on stdout, the ratios against the issue's targets, the JSON and the PNG."""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import shutil
from pathlib import Path
from typing import Any

from bench import plan
from bench.broker import Broker
from bench.common import write_json
from bench.plan import Mode

Data = dict[str, Any]

#: The issue's targets for idle partitions and latency.
MAX_IDLE_BYTES_PER_PARTITION = 10_000
MiB = 1024 * 1024


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info(broker: Broker, mode: Mode, command: str, stamp: str) -> Data:
    librdkafka = "n/a"
    try:
        import confluent_kafka

        librdkafka = confluent_kafka.libversion()[0]
    except ImportError:
        pass
    return {
        "timestamp": stamp,
        "command": command,
        "mode": mode.name,
        "messages": mode.messages,
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "ram_gib": round(_ram_gib(), 1),
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(),
            "java": broker.java_version(),
            "kafka": broker.kafka_version,
            "broker": "1 broker, KRaft, launched by trio_brod.testing (heap 1g), on the same "
            f"cores as the clients, data in {broker.data_dir or 'the system temporary directory'}"
            if broker.cluster is not None
            else broker.bootstrap,
        },
        "versions": {
            "trio-brod": _version("trio-brod"),
            "trio": _version("trio"),
            "aiokafka": _version("aiokafka"),
            "kafka-python": _version("kafka-python"),
            "confluent-kafka": _version("confluent-kafka"),
            "librdkafka": librdkafka,
        },
        "settings": {
            "record": "16-byte key, 100-byte value (Java's ProducerPerformance: no key)",
            "batch_bytes": plan.BATCH_BYTES,
            "linger_ms": plan.LINGER_MS,
            "batch_call_size": plan.CALL_SIZE,
            "latency_rate": plan.LATENCY_RATE,
            "latency_warmup_s": mode.latency_warmup,
            "latency_duration_s": mode.latency_duration,
            "partition_counts": list(mode.partition_counts),
            "partition_messages": mode.partition_messages,
            "trio_brod_prefetch": [plan.TB_PREFETCH_COUNT, plan.TB_PREFETCH_BYTES],
            "rebalance_rate": mode.rebalance_rate,
            "rebalance_settle_s": mode.rebalance_settle,
        },
    }


# ---------------------------------------------------------------- ratios


def _ok(records: list[Data], **match: Any) -> list[Data]:
    return [r for r in records if r.get("ok") and all(r.get(k) == v for k, v in match.items())]


def _best(records: list[Data]) -> Data | None:
    return max(records, key=lambda r: r.get("msgs_per_s", 0), default=None)


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def ratios(records: list[Data]) -> Data:
    """trio-brod's best row / each peer's best row, per case, and summaries with targets."""
    per_case: list[Data] = []
    summary: dict[str, dict[str, Data]] = {}
    for workload in ("produce", "consume", "group", "txn_produce", "txn_process"):
        cases = sorted(
            {r["case"] for r in records if r["workload"] == workload},
            key=lambda c: [r["case"] for r in records].index(c),
        )
        for case in cases:
            ours = _best(_ok(records, case=case, family="trio-brod"))
            if ours is None:
                continue
            entry: Data = {
                "workload": workload,
                "case": case,
                "trio_brod_row": ours["row"],
                "trio_brod_msgs_per_s": ours["msgs_per_s"],
                "vs": {},
                "vs_rows": {},
            }
            for peer in plan.TARGETS:
                theirs = _best(_ok(records, case=case, family=peer))
                if theirs is None:
                    continue
                entry["vs"][peer] = {
                    "row": theirs["row"],
                    "ratio": ours["msgs_per_s"] / theirs["msgs_per_s"],
                }
                for r in _ok(records, case=case, family=peer):
                    entry["vs_rows"][r["row"]] = ours["msgs_per_s"] / r["msgs_per_s"]
            per_case.append(entry)
        for peer, target in plan.TARGETS.items():
            values = [
                e["vs"][peer]["ratio"]
                for e in per_case
                if e["workload"] == workload and peer in e["vs"]
            ]
            if not values:
                continue
            summary.setdefault(workload, {})[peer] = {
                "min": min(values),
                "geomean": _geomean(values),
                "max": max(values),
                "cases": len(values),
                "target": target,
                "met": None if target is None else min(values) >= target,
            }
    latency: Data = {}
    ours_l = _ok(records, workload="latency", family="trio-brod")
    theirs_l = _ok(records, workload="latency", family="aiokafka")
    if ours_l and theirs_l:
        ours_p99 = ours_l[0]["latency"]["p99_ms"]
        theirs_p99 = theirs_l[0]["latency"]["p99_ms"]
        latency = {
            "trio_brod_p99_ms": ours_p99,
            "aiokafka_p99_ms": theirs_p99,
            "met": ours_p99 <= theirs_p99,
        }
    memory: Data = {}
    ours_m = _ok(records, workload="partitions", row="trio-brod")  # the default settings
    if ours_m:
        largest = max(ours_m, key=lambda r: int(r["case"].split()[1].rstrip("p")))
        per_partition = largest["idle"]["per_partition"]
        memory = {
            "case": largest["case"],
            "bytes_per_idle_partition": per_partition,
            "target": MAX_IDLE_BYTES_PER_PARTITION,
            "met": per_partition < MAX_IDLE_BYTES_PER_PARTITION,
        }
    like: list[Data] = []
    for workload in ("produce", "consume"):
        for case in dict.fromkeys(r["case"] for r in records if r["workload"] == workload):
            pairs: dict[str, float] = {}
            for ours_row, peer_rows in LIKE_FOR_LIKE.items():
                our_runs = _ok(records, case=case, row=ours_row)
                for peer_row in peer_rows:
                    their_runs = _ok(records, case=case, row=peer_row)
                    if our_runs and their_runs:
                        pairs[f"{ours_row} / {peer_row}"] = (
                            our_runs[0]["msgs_per_s"] / their_runs[0]["msgs_per_s"]
                        )
            if pairs:
                like.append({"workload": workload, "case": case, "ratios": pairs})
    return {
        "per_case": per_case,
        "summary": summary,
        "like_for_like": like,
        "latency": latency,
        "memory": memory,
    }


#: The same way of calling on both sides: one call per message, or whole batches.
LIKE_FOR_LIKE = {
    "trio-brod": ("aiokafka", "kafka-python", "confluent-kafka"),
    "trio-brod-batch": ("aiokafka-batch", "confluent-kafka-batch"),
}


def build(meta: Data, records: list[Data], rows: list[Data]) -> Data:
    clean_rows = [{**r, "workloads": sorted(r["workloads"])} for r in rows]
    return {"meta": meta, "rows": clean_rows, "results": records, "ratios": ratios(records)}


# ---------------------------------------------------------------- text


def _n(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / MiB:,.0f}"


def _status(r: Data) -> str:
    if r.get("skipped"):
        return "skipped"
    if not r.get("ok"):
        return "FAILED: " + str(r.get("error", ""))[:60]
    if r.get("disturbed"):
        return "disturbed"
    return ""


def _table(header: list[str], lines: list[list[str]], align: str) -> list[str]:
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
        for i, h in enumerate(header)
    ]

    def fmt(cells: list[str]) -> str:
        out = []
        for cell, width, a in zip(cells, widths, align, strict=True):
            out.append(cell.ljust(width) if a == "l" else cell.rjust(width))
        return "| " + " | ".join(out) + " |"

    sep = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":" if a == "r" else "-" * (w + 2))
            for w, a in zip(widths, align, strict=True)
        )
        + "|"
    )
    return [fmt(header), sep, *(fmt(line) for line in lines)]


def render(data: Data) -> str:
    """Markdown tables (readable on a terminal, pasted as is into README.md)."""
    meta, records = data["meta"], data["results"]
    m = meta["machine"]
    v = meta["versions"]
    out = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}; "
        f"Python {m['python']}; {m['java']}; Kafka {m['kafka']} ({m['broker']}).",
        f"Clients: trio-brod {v['trio-brod']} (trio {v['trio']}), aiokafka {v['aiokafka']}, "
        f"kafka-python {v['kafka-python']}, confluent-kafka {v['confluent-kafka']} "
        f"(librdkafka {v['librdkafka']}).",
        f"Mode {meta['mode']}: {meta['messages']:,} records per produce/consume run; "
        f"`{meta['command']}`; took {meta.get('duration_s', 0):.0f} s; "
        f"best of {meta.get('repeat', 1)} run(s) per produce/consume row, up to "
        f"{meta.get('retries', 0)} more for a row whose runs were disturbed.",
        "CPU s/M msgs: the client's CPU seconds per million messages in the timed phase "
        "(Java: the whole JVM, start-up included). Other CPU s: CPU used during the run "
        "by processes that are neither the client nor the broker; a run where that exceeds "
        f"{meta.get('disturbed_share', 0.15):.0%} of all cores is marked disturbed and run again.",
        "",
    ]
    for workload, title in (("produce", "Produce"), ("consume", "Consume")):
        rows = [r for r in records if r["workload"] == workload]
        if not rows:
            continue
        out.append(f"### {title} ({meta['messages']:,} records of 16 B key + 100 B value)")
        out.append("")
        lines = [
            [
                r["case"].removeprefix(workload + " "),
                r["row"],
                _n(r.get("msgs_per_s")),
                _n(r.get("mb_per_s"), 1),
                _n(r.get("cpu_s_per_m"), 1),
                _mib(r.get("peak_rss")),
                _n(r.get("broker_cpu_s"), 1),
                _n(r.get("other_cpu_s"), 1),
                _status(r),
            ]
            for r in rows
            if not r.get("skipped")
        ]
        out += _table(
            [
                "case",
                "client",
                "msgs/s",
                "MB/s",
                "CPU s/M msgs",
                "peak RSS MiB",
                "broker CPU s",
                "other CPU s",
                "",
            ],
            lines,
            "llrrrrrrl",
        )
        out.append("")
    rows = [r for r in records if r["workload"] == "latency" and not r.get("skipped")]
    if rows:
        out.append(
            f"### End-to-end latency ({rows[0]['case']}, "
            f"{meta['settings']['latency_warmup_s']:g} s warm-up + "
            f"{meta['settings']['latency_duration_s']:g} s)"
        )
        out.append("")
        lines = []
        for r in rows:
            lat = r.get("latency", {})
            lines.append(
                [
                    r["row"] + (" (one at a time)" if r["family"] == "java" else ""),
                    _n(lat.get("p50_ms"), 2),
                    _n(lat.get("p99_ms"), 2),
                    _n(lat.get("p999_ms"), 2),
                    _n(lat.get("max_ms"), 1),
                    _n(r.get("cpu_s"), 2),
                    _mib(r.get("peak_rss")),
                    _status(r),
                ]
            )
        out += _table(
            ["client", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "CPU s", "peak RSS MiB", ""],
            lines,
            "lrrrrrrl",
        )
        out.append("")
    rows = [r for r in records if r["workload"] == "partitions" and not r.get("skipped")]
    if rows:
        out.append(
            f"### Partitions: idle cost, then {meta['settings']['partition_messages']:,} "
            "records produced and consumed round-robin over all of them"
        )
        out.append("")
        lines = []
        for r in rows:
            idle = r.get("idle", {})
            produced, consumed = r.get("produce", {}), r.get("consume", {})
            lines.append(
                [
                    r["case"].removeprefix("partitions "),
                    r["row"],
                    _n(idle.get("per_partition", None) and idle["per_partition"] / 1024, 1),
                    _n(produced.get("msgs_per_s")),
                    _n(produced.get("cpu_s_per_m"), 1),
                    _n(consumed.get("msgs_per_s")),
                    _n(consumed.get("cpu_s_per_m"), 1),
                    _mib(r.get("peak_rss")),
                    _status(r),
                ]
            )
        out += _table(
            [
                "P",
                "client",
                "idle KiB/partition",
                "produce msgs/s",
                "CPU s/M",
                "consume msgs/s",
                "CPU s/M",
                "peak RSS MiB",
                "",
            ],
            lines,
            "llrrrrrrl",
        )
        out.append("")
    out += render_groups(data)
    out += render_transactions(data)
    out += render_ratios(data)
    return "\n".join(out)


def render_groups(data: Data) -> list[str]:
    """The group workload (throughput, with the join apart) and the rebalance workload."""
    meta, records = data["meta"], data["results"]
    out: list[str] = []
    rows = [r for r in records if r["workload"] == "group" and not r.get("skipped")]
    if rows:
        out.append(
            f"### Group consume (one member of a fresh group, {rows[0]['case']}, "
            f"{rows[0].get('messages', 0):,} records; timed from the start, join included; "
            "join s: until the first message)"
        )
        out.append("")
        lines = [
            [
                r["row"],
                _n(r.get("msgs_per_s")),
                _n(r.get("mb_per_s"), 1),
                _n(r.get("cpu_s_per_m"), 1),
                _n(r.get("join_s"), 2),
                _mib(r.get("peak_rss")),
                _n(r.get("other_cpu_s"), 1),
                _status(r),
            ]
            for r in rows
        ]
        out += _table(
            [
                "client",
                "msgs/s",
                "MB/s",
                "CPU s/M msgs",
                "join s",
                "peak RSS MiB",
                "other CPU s",
                "",
            ],
            lines,
            "lrrrrrrl",
        )
        out.append("")
    rows = [r for r in records if r["workload"] == "rebalance" and not r.get("skipped")]
    if rows:
        settings = meta.get("settings", {})
        out.append(
            f"### Rebalance ({rows[0]['case']}, {settings.get('rebalance_rate', 0):,} msgs/s "
            "produced meanwhile): per join, the partitions that moved to another member, those "
            "that stopped (> 0.5 s), the longest pause of a partition that stayed with its "
            "member and of one that moved, the median pause, and the time until every "
            "partition is consumed again"
        )
        out.append("")
        lines = []
        for r in rows:
            joins = r.get("joins") or [{}]
            for j in joins:
                lines.append(
                    [
                        r["row"],
                        _assignor(r),
                        f"{j.get('members', '?')}",
                        f"{sum(j.get('moved', []))}",
                        f"{j.get('stopped', '-')} of {len(j.get('pauses_s', [])) or '-'}",
                        _n(j.get("max_pause_kept_s"), 2),
                        _n(j.get("max_pause_moved_s"), 2),
                        _n(j.get("median_pause_s"), 2),
                        _n(j.get("total_s"), 2),
                        _n(r.get("duplicates")),
                        _status(r),
                    ]
                )
        out += _table(
            [
                "client",
                "assignor",
                "members",
                "moved",
                "stopped",
                "max pause kept s",
                "max pause moved s",
                "median pause s",
                "total s",
                "duplicates",
                "",
            ],
            lines,
            "lllrrrrrrrl",
        )
        out.append("")
    return out


def render_transactions(data: Data) -> list[str]:
    """The transaction workloads (bench.transactions): throughput, CPU, transactions."""
    out: list[str] = []
    for workload, title in (
        ("txn_produce", "Transactional produce (1,000 records per transaction)"),
        (
            "txn_process",
            "Exactly-once consume-transform-produce (one member, timed from the start)",
        ),
    ):
        rows = [r for r in data["results"] if r["workload"] == workload and not r.get("skipped")]
        if not rows:
            continue
        out += [f"### {title}, {rows[0]['case']}, {rows[0].get('messages', 0):,} records", ""]
        lines = [
            [
                r["row"],
                _n(r.get("msgs_per_s")),
                _n(r.get("cpu_s_per_m"), 1),
                _n(r.get("transactions")),
                _mib(r.get("peak_rss")),
                _n(r.get("other_cpu_s"), 1),
                _status(r),
            ]
            for r in rows
        ]
        headers = ["client", "msgs/s", "CPU s/M msgs", "txns", "peak RSS MiB", "other CPU s", ""]
        out += _table(headers, lines, "lrrrrrl")
        out.append("")
    return out


def _assignor(r: Data) -> str:
    if "KIP-848" in r.get("settings", ""):
        return "consumer protocol (uniform)"
    if r["family"] == "trio-brod":
        return "range (eager)" if "range" in r.get("settings", "") else "cooperative-sticky"
    if r["family"] == "aiokafka":
        return "range (eager)"
    if r["family"] == "confluent-kafka":
        return "cooperative-sticky"
    return "-"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def render_ratios(data: Data) -> list[str]:
    r = data["ratios"]
    out: list[str] = []
    if r["per_case"]:
        peers = [p for p in plan.TARGETS if any(p in e["vs"] for e in r["per_case"])]
        out.append(
            "### trio-brod / peer (throughput; trio-brod's better row vs the peer's better row)"
        )
        out.append("")
        lines = []
        for e in r["per_case"]:
            cells = [e["case"], e["trio_brod_row"]]
            for peer in peers:
                vs = e["vs"].get(peer)
                cells.append("-" if vs is None else f"{vs['ratio']:.2f}x ({vs['row']})")
            lines.append(cells)
        out += _table(["case", "trio-brod row", *peers], lines, "ll" + "l" * len(peers))
        out.append("")
    if r.get("like_for_like"):
        columns = list(dict.fromkeys(k for e in r["like_for_like"] for k in e["ratios"]))
        out.append(
            "### Like for like (one call per message vs one call per message, batch "
            "API vs batch API)"
        )
        out.append("")
        lines = [
            [e["case"], *(_ratio(e["ratios"].get(c)) for c in columns)] for e in r["like_for_like"]
        ]
        out += _table(["case", *columns], lines, "l" + "r" * len(columns))
        out.append("")
    if r["summary"]:
        out.append("### Against the issue's targets (the worst case must meet the target)")
        out.append("")
        lines = []
        for workload, peers in r["summary"].items():
            for peer, s in peers.items():
                verdict = "-" if s["met"] is None else ("met" if s["met"] else "NOT MET")
                target = "ceiling" if s["target"] is None else f">= {s['target']:g}x"
                lines.append(
                    [
                        workload,
                        peer,
                        f"{s['min']:.2f}x",
                        f"{s['geomean']:.2f}x",
                        f"{s['max']:.2f}x",
                        target,
                        verdict,
                    ]
                )
        lat, mem = r["latency"], r["memory"]
        if lat:
            lines.append(
                [
                    "latency p99",
                    "aiokafka",
                    f"{lat['trio_brod_p99_ms']:.2f} ms",
                    "",
                    f"{lat['aiokafka_p99_ms']:.2f} ms",
                    "<= aiokafka",
                    "met" if lat["met"] else "NOT MET",
                ]
            )
        if mem:
            lines.append(
                [
                    f"idle partition ({mem['case']})",
                    "-",
                    f"{mem['bytes_per_idle_partition'] / 1000:.1f} KB",
                    "",
                    "",
                    "<= 10 KB",
                    "met" if mem["met"] else "NOT MET",
                ]
            )
        out += _table(
            ["workload", "peer", "min", "geomean", "max", "target", "verdict"], lines, "llrrrll"
        )
        out.append("")
    return out


# ---------------------------------------------------------------- files


def save(data: Data, directory: Path, stamp: str, *, plot: bool) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stamp}-{data['meta']['mode']}.json"
    write_json(path, data)
    latest = directory / "latest.json"
    shutil.copyfile(path, latest)
    (directory / "latest.md").write_text(render(data) + "\n")
    paths = [path, latest, directory / "latest.md"]
    if plot:
        try:
            paths.append(plot_png(data, directory / "latest.png"))
        except ImportError:
            print("matplotlib is not installed: no PNG (pip install -e '.[bench]')")
    return paths


def plot_png(data: Data, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in data["results"] if r.get("ok")]
    row_names = [row["name"] for row in data["rows"]]
    palette = plt.get_cmap("tab10")
    colours = {name: palette(i % 10) for i, name in enumerate(row_names)}
    fig, axes = plt.subplots(2, 2, figsize=(17, 11))
    m = data["meta"]["machine"]
    fig.suptitle(
        f"trio-brod benchmarks ({data['meta']['mode']}, {data['meta']['messages']:,} records/run) "
        f"- {m['cpu']}, {m['cores']} cores, Kafka {m['kafka']}, Python {m['python']}",
        fontsize=12,
    )
    for ax, workload in ((axes[0][0], "produce"), (axes[0][1], "consume")):
        rows = [r for r in records if r["workload"] == workload]
        cases = list(dict.fromkeys(r["case"] for r in rows))
        names = [n for n in row_names if any(r["row"] == n for r in rows)]
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            xs, ys = [], []
            for j, case in enumerate(cases):
                for r in rows:
                    if r["case"] == case and r["row"] == name:
                        xs.append(j + (i - (len(names) - 1) / 2) * width)
                        ys.append(r["msgs_per_s"] / 1000)
            ax.bar(xs, ys, width, label=name, color=colours.get(name))
        ax.set_xticks(range(len(cases)))
        ax.set_xticklabels(
            [c.removeprefix(workload + " ").replace(" ", "\n") for c in cases], fontsize=9
        )
        ax.set_yscale("log")
        ax.set_ylabel("thousand messages/s (log scale)")
        ax.set_title(f"{workload} throughput (higher is better)")
        ax.grid(axis="y", which="both", alpha=0.3)
    # One legend for both throughput charts, above them, where it hides no bar.
    handles, labels_ = axes[0][0].get_legend_handles_labels()
    extra = [
        (h, lab)
        for h, lab in zip(*axes[0][1].get_legend_handles_labels(), strict=True)
        if lab not in labels_
    ]
    fig.legend(
        handles + [h for h, _ in extra],
        labels_ + [lab for _, lab in extra],
        loc="upper center",
        bbox_to_anchor=(0.5, 0.955),
        ncol=8,
        fontsize=9,
    )
    ax = axes[1][0]
    rows = [r for r in records if r["workload"] == "latency"]
    labels = [r["row"] + ("\n(1 at a time)" if r["family"] == "java" else "") for r in rows]
    xs = list(range(len(rows)))
    ax.bar(
        [x - 0.2 for x in xs],
        [r["latency"]["p50_ms"] for r in rows],
        0.4,
        label="p50",
        color="#4c72b0",
    )
    ax.bar(
        [x + 0.2 for x in xs],
        [r["latency"]["p99_ms"] for r in rows],
        0.4,
        label="p99",
        color="#dd8452",
    )
    for x, r in zip(xs, rows, strict=True):
        for dx, key in ((-0.2, "p50_ms"), (0.2, "p99_ms")):
            value = r["latency"][key]
            ax.annotate(
                f"{value:.1f}", (x + dx, max(value, 0.05)), ha="center", va="bottom", fontsize=8
            )
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, fontsize=9)
    ax.set_yscale("log")
    ax.set_ylabel("ms (log scale)")
    ax.set_title(f"end-to-end latency at {plan.LATENCY_RATE:,} msgs/s (lower is better)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    ax = axes[1][1]
    rows = [r for r in records if r["workload"] == "partitions"]
    # One partition's share of an RSS difference is allocator noise (a few pages either way),
    # so only the topics with many partitions are plotted.
    counts = sorted({int(r["case"].split()[1].rstrip("p")) for r in rows})
    counts = [c for c in counts if c >= 100] or counts
    names = [n for n in row_names if any(r["row"] == n for r in rows)]
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        xs2, ys = [], []
        for j, count in enumerate(counts):
            for r in rows:
                if r["row"] == name and r["case"] == f"partitions {count}p":
                    xs2.append(j + (i - (len(names) - 1) / 2) * width)
                    ys.append(r["idle"]["per_partition"] / 1024)
        ax.bar(xs2, ys, width, label=name, color=colours.get(name))
    ax.axhline(
        MAX_IDLE_BYTES_PER_PARTITION / 1024, color="red", linestyle="--", label="target: 10 KB"
    )
    ax.set_xticks(range(len(counts)))
    ax.set_xticklabels([f"{c} partitions" for c in counts])
    ax.set_ylabel("KiB of RSS per partition")
    ax.set_title("RSS growth per idle partition (producer + consumer on all partitions)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
