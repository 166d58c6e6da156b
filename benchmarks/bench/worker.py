"""A worker subprocess: ``python -m bench.worker SPEC.json RESULT.json``.

Runs one workload with one client library and writes what it measured. Everything the
client does (imports, connections, buffers) lives and dies in this process, so its peak RSS
and CPU are its own, and nothing one client warmed up can help the next.
"""

from __future__ import annotations

import importlib
import sys
import traceback

from bench.common import Result, peak_rss_bytes, read_json, write_json

#: Which module under bench.clients runs which client family.
MODULES = {
    "trio-brod": "bench.clients.triobrod",
    "aiokafka": "bench.clients.aiokafka_client",
    "kafka-python": "bench.clients.kafka_python_client",
    "confluent-kafka": "bench.clients.confluent_client",
    "java": "bench.clients.java_client",
}


def main(argv: list[str]) -> int:
    spec_path, result_path = argv
    spec = read_json(spec_path)
    result: Result
    try:
        module = importlib.import_module(MODULES[spec["family"]])
        result = module.run(spec)
        result["ok"] = True
    except BaseException as exc:  # reported to the runner, which marks the row failed
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        traceback.print_exc()
    result.setdefault("peak_rss", peak_rss_bytes())
    write_json(result_path, result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
