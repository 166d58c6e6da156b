"""What the runner and the workers share: payloads, specs, results, measurements.

A worker gets its :class:`dict` spec as a JSON file and writes a JSON result file; both are
plain dicts so that the Java wrapper, the Python clients and the report read them alike.
"""

from __future__ import annotations

import functools
import json
import os
import random
import resource
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Spec = dict[str, Any]
Result = dict[str, Any]

#: Every record: a 16-byte key and a 100-byte value.
KEY_SIZE = 16
VALUE_SIZE = 100
RECORD_PAYLOAD = KEY_SIZE + VALUE_SIZE
#: Distinct keys and values cycled through. A pool keeps memory flat (the clients' RSS is
#: measured) while batches still hold different records, so compression is not trivial.
POOL_SIZE = 1024
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: The latency workload stamps the send time (perf_counter_ns) into the first 8 bytes.
STAMP = struct.Struct(">Q")


@functools.cache
def payload_pool(seed: int = 20240501) -> tuple[list[bytes], list[bytes]]:
    """``POOL_SIZE`` keys (16 hex digits) and values (100 random letters/digits), the same
    in every process of a run."""
    rng = random.Random(seed)
    keys = [rng.getrandbits(64).to_bytes(8, "big").hex().encode() for _ in range(POOL_SIZE)]
    values = [bytes(rng.choice(_ALPHABET) for _ in range(VALUE_SIZE)) for _ in range(POOL_SIZE)]
    return keys, values


def write_payload_file(path: Path) -> Path:
    """The same values, one per line, for Kafka's ProducerPerformance ``--payload-file``."""
    _keys, values = payload_pool()
    path.write_bytes(b"\n".join(values) + b"\n")
    return path


def stamped_value(filler: bytes) -> bytes:
    """A latency-workload value: the send time, then filler up to VALUE_SIZE bytes."""
    return STAMP.pack(time.perf_counter_ns()) + filler[: VALUE_SIZE - STAMP.size]


def latency_ns(value: bytes) -> int:
    """Nanoseconds since the value was stamped by :func:`stamped_value`."""
    stamp: int = STAMP.unpack_from(value)[0]
    return time.perf_counter_ns() - stamp


def rss_bytes() -> int:
    """This process's resident set size now (from /proc; no psutil needed)."""
    with open("/proc/self/statm", "rb") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """The highest resident set size of this process's program.

    VmHWM from /proc, not ``getrusage().ru_maxrss``: Linux carries ru_maxrss over from the
    parent through fork and exec, so every worker would report at least the runner's RSS.
    """
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds() -> float:
    """CPU time of the whole process, all threads (librdkafka's, kafka-python's) included."""
    return time.process_time()


class Meter:
    """Wall and CPU time of a measured phase, with RSS before and after."""

    def __init__(self) -> None:
        self.rss_before = rss_bytes()
        self.wall = time.perf_counter()
        self.cpu = cpu_seconds()

    def stop(self, messages: int, payload_bytes: int) -> Result:
        """The phase's numbers, as a result dict."""
        elapsed = time.perf_counter() - self.wall
        cpu = cpu_seconds() - self.cpu
        return {
            "messages": messages,
            "bytes": payload_bytes,
            "elapsed": elapsed,
            "msgs_per_s": messages / elapsed if elapsed > 0 else 0.0,
            "mb_per_s": payload_bytes / elapsed / 1e6 if elapsed > 0 else 0.0,
            "cpu_s": cpu,
            "cpu_s_per_m": cpu / messages * 1e6 if messages else 0.0,
            "rss_before": self.rss_before,
            "rss_after": rss_bytes(),
        }


class BenchError(Exception):
    """A workload did not do what it must (lost messages, a client error): the run fails
    loudly instead of reporting a fast number."""


def check_count(what: str, got: int, expected: int) -> None:
    """Raise BenchError unless ``got == expected``."""
    if got != expected:
        raise BenchError(f"{what}: {got} instead of {expected}")


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    """p50/p90/p99/p99.9/max/mean of latencies, in milliseconds."""
    if not samples_ns:
        raise BenchError("no latency samples")
    ordered = sorted(samples_ns)

    def pick(q: float) -> float:
        index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
        return ordered[index] / 1e6

    return {
        "p50_ms": pick(0.50),
        "p90_ms": pick(0.90),
        "p99_ms": pick(0.99),
        "p999_ms": pick(0.999),
        "max_ms": ordered[-1] / 1e6,
        "mean_ms": sum(ordered) / len(ordered) / 1e6,
        "samples": len(ordered),
    }


class RateSchedule:
    """When the n-th message of a fixed-rate stream is due: ``start + n / rate``.

    Senders send every message that is due, then sleep until the next one; falling behind
    is caught up at once (and shows as latency), never silently skipped.
    """

    def __init__(self, rate: float, total: int) -> None:
        self.rate = rate
        self.total = total
        self.start = time.perf_counter()
        self.sent = 0

    def due(self) -> int:
        """How many more messages should have been sent by now."""
        elapsed = time.perf_counter() - self.start
        return min(self.total, int(elapsed * self.rate) + 1) - self.sent

    def seconds_to_next(self) -> float:
        """Seconds until the next message is due (0 if one is due now)."""
        next_at = self.start + self.sent / self.rate
        return max(0.0, next_at - time.perf_counter())

    @property
    def done(self) -> bool:
        return self.sent >= self.total

    def warmup_count(self, warmup_seconds: float) -> int:
        """Messages sent during the warm-up (their latencies are not counted)."""
        return int(warmup_seconds * self.rate)


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path) as f:
        return json.load(f)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


WorkloadFn = Callable[[Spec], Result]
