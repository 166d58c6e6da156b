"""Kafka's own Java tools from the broker's jars, as the ceiling on this machine.

``ProducerPerformance`` (values from the same payload file, no keys: the tool cannot send
any), ``ConsumerPerformance`` (its fetch rate, which leaves out joining the group) and
``EndToEndLatency`` (one message at a time, so not at a fixed rate: a different measure).
CPU and peak RSS are the whole JVM's, start-up and JIT included.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
import time

from bench.common import RECORD_PAYLOAD, VALUE_SIZE, BenchError, Result, Spec, check_count


def run(spec: Spec) -> Result:
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            spec["command"], stdout=out, stderr=err, stdin=subprocess.DEVNULL
        )
        timer = threading.Timer(spec["timeout"], process.kill)
        timer.start()
        try:
            # wait4, not Popen.wait: it also gives the JVM's own CPU time and peak RSS.
            _pid, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace")
        errors = err.read().decode(errors="replace")
    wall = time.perf_counter() - started
    if wall >= spec["timeout"]:
        raise BenchError(f"{spec['tool']} did not finish within {spec['timeout']} s")
    if process.returncode != 0:
        raise BenchError(f"{spec['tool']} exited {process.returncode}: {errors[-2000:]}")
    result: Result = {
        "wall_with_jvm_start": wall,
        "stdout_tail": text[-1500:],
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss": usage.ru_maxrss * 1024,
    }
    parse = {"produce": _parse_produce, "consume": _parse_consume, "latency": _parse_latency}
    result.update(parse[spec["workload"]](spec, text, errors))
    if "cpu_s" in result and result.get("messages"):
        result["cpu_s_per_m"] = result["cpu_s"] / result["messages"] * 1e6
    result["settings"] = spec["settings"]
    return result


_PRODUCED = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)")


def _parse_produce(spec: Spec, text: str, errors: str) -> Result:
    matches = _PRODUCED.findall(text)
    if not matches:
        raise BenchError(f"no summary in ProducerPerformance output: {text[-500:]} {errors[-500:]}")
    sent, rate, _mb = matches[-1]
    check_count("records sent", int(sent), spec["messages"])
    rate_f = float(rate)
    return {
        "messages": int(sent),
        "bytes": int(sent) * VALUE_SIZE,
        "elapsed": int(sent) / rate_f,
        "msgs_per_s": rate_f,
        "mb_per_s": rate_f * VALUE_SIZE / 1e6,
        "warmup_messages": 0,
    }


def _parse_consume(spec: Spec, text: str, errors: str) -> Result:
    lines = [line for line in text.splitlines() if line.strip()]
    header = next((i for i, line in enumerate(lines) if line.startswith("start.time")), None)
    if header is None or header + 1 >= len(lines):
        raise BenchError(f"no summary in ConsumerPerformance output: {text[-500:]} {errors[-500:]}")
    names = [name.strip() for name in lines[header].split(",")]
    values = [value.strip() for value in lines[header + 1].split(", ")]
    row = dict(zip(names, values, strict=False))
    consumed = int(row["data.consumed.in.nMsg"])
    check_count("consumed records", consumed, spec["messages"])
    fetch_ms = float(row["fetch.time.ms"])
    rate = consumed / (fetch_ms / 1000)
    return {
        "messages": consumed,
        "bytes": consumed * RECORD_PAYLOAD,
        "elapsed": fetch_ms / 1000,
        "msgs_per_s": rate,
        "mb_per_s": rate * RECORD_PAYLOAD / 1e6,
        "rebalance_ms": float(row["rebalance.time.ms"]),
    }


_LATENCY = re.compile(r"Avg latency: ([\d.]+) ms")
_PERCENTILES = re.compile(r"50th = (\d+), 99th = (\d+), 99.9th = (\d+)")


def _parse_latency(spec: Spec, text: str, errors: str) -> Result:
    average = _LATENCY.search(text)
    percentiles = _PERCENTILES.search(text)
    if average is None or percentiles is None:
        raise BenchError(f"no summary in EndToEndLatency output: {text[-500:]} {errors[-500:]}")
    p50, p99, p999 = (float(x) for x in percentiles.groups())
    return {
        "messages": spec["messages"],
        "latency": {
            "p50_ms": p50,
            "p99_ms": p99,
            "p999_ms": p999,
            "mean_ms": float(average.group(1)),
            "samples": spec["messages"],
            "note": "one message at a time (send, wait until consumed, repeat); whole ms",
        },
    }
