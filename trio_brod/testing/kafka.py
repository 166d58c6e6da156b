"""Run a local Kafka in the foreground: ``python -m trio_brod.testing.kafka``.

::

    python -m trio_brod.testing.kafka                 # one broker on a free port
    python -m trio_brod.testing.kafka --brokers 3     # three brokers
    python -m trio_brod.testing.kafka --port 9092     # broker n on 9092 + n - 1
    python -m trio_brod.testing.kafka --sasl-user alice=alice-secret --tls
                                                      # + SASL_PLAINTEXT, SSL, SASL_SSL
    python -m trio_brod.testing.kafka --fetch-only    # fetch the jars, print where
    python -m trio_brod.testing.kafka --fetch-only --all-supported
                                                      # those of every supported version

It prints the bootstrap servers (of each listener, and the CA file with ``--tls``), then runs
until Ctrl-C or SIGTERM, when it stops the brokers and deletes their data (``--keep-data``
keeps it). It exits with status 1 if a broker dies.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

from trio_brod.testing._cluster import KafkaCluster
from trio_brod.testing._errors import KafkaStartError
from trio_brod.testing._jars import KafkaNotAvailable, resolve_kafka_jars
from trio_brod.testing._security import SASL_MECHANISMS
from trio_brod.testing._versions import SUPPORTED_KAFKA_VERSIONS

__all__ = ["main"]


class _Terminated(Exception):
    """SIGTERM arrived; raised in the main thread so that the ``finally`` stops Kafka."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trio_brod.testing.kafka",
        description="Run a local Apache Kafka (KRaft) from its jars until Ctrl-C.",
    )
    parser.add_argument("--brokers", type=int, default=1, help="number of brokers (default 1)")
    parser.add_argument(
        "--port", type=int, help="client port of broker 1; broker n gets PORT + n - 1"
    )
    parser.add_argument("--heap", default="512m", help="JVM heap per broker (default 512m)")
    parser.add_argument(
        "--kafka-version", help="Kafka version (default $TRIO_BROD_KAFKA_VERSION or 4.3.1)"
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the data and logs after stopping"
    )
    parser.add_argument(
        "--sasl-user",
        action="append",
        metavar="NAME=PASSWORD",
        help="add a SASL_PLAINTEXT listener (SASL_SSL too with --tls) with this user; repeatable",
    )
    parser.add_argument(
        "--sasl-mechanism",
        action="append",
        choices=SASL_MECHANISMS,
        help="a SASL mechanism to enable; repeatable (default PLAIN and both SCRAMs)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="add an SSL listener (SASL_SSL too with --sasl-user), certificates from a new CA",
    )
    parser.add_argument(
        "--fetch-only",
        action="store_true",
        help="only make sure the Kafka jars are available (fetching them), print where",
    )
    parser.add_argument(
        "--all-supported",
        action="store_true",
        help="with --fetch-only: the jars of every supported Kafka version "
        f"({', '.join(SUPPORTED_KAFKA_VERSIONS)}), for `nox -s compat`",
    )
    return parser


def _parse_users(values: list[str]) -> dict[str, str]:
    users = {}
    for value in values:
        name, sep, password = value.partition("=")
        if not sep:
            raise ValueError(f"--sasl-user takes NAME=PASSWORD, not {value!r}")
        users[name] = password
    return users


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.all_supported and (not args.fetch_only or args.kafka_version):
            raise ValueError("--all-supported goes with --fetch-only, without --kafka-version")
        if args.fetch_only:
            versions: Sequence[str | None] = (
                SUPPORTED_KAFKA_VERSIONS if args.all_supported else [args.kafka_version]
            )
            for version in versions:
                jars = resolve_kafka_jars(version)
                print(f"Kafka {jars.version} jars ({jars.source}): {jars.libs}")
            print(f"Java {jars.java.major}: {jars.java.executable}")
            return 0
        security: dict[str, Any] = {"tls": args.tls}
        if args.sasl_user or args.sasl_mechanism:
            security["sasl_users"] = _parse_users(args.sasl_user or [])
        if args.sasl_mechanism:
            security["sasl_mechanisms"] = args.sasl_mechanism
        cluster = KafkaCluster(
            args.brokers,
            kafka_version=args.kafka_version,
            heap=args.heap,
            port=args.port,
            keep_data=args.keep_data or None,
            **security,
        )
    except (KafkaNotAvailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        print(f"Starting {args.brokers} Kafka broker(s)...", flush=True)
        started = time.monotonic()
        cluster.start()
        lines = [f"Kafka {cluster.kafka_version} ready in {time.monotonic() - started:.1f} s."]
        lines.append(f"bootstrap servers: {','.join(cluster.bootstrap_servers)}")
        for listener in cluster.listeners[1:]:
            lines.append(f"{listener + ':':<18} {','.join(cluster.listener_bootstrap(listener))}")
        if cluster.sasl_mechanisms:
            lines.append(f"SASL mechanisms:   {','.join(cluster.sasl_mechanisms)}")
        if args.tls:
            lines.append(f"CA certificate:    {cluster.tls_ca_file}")
        lines.append(f"data and logs:     {cluster.directory}")
        lines.append("Press Ctrl-C (or send SIGTERM) to stop.")
        print("\n".join(lines), flush=True)
        while True:
            time.sleep(1.0)
            dead = set(cluster.broker_ids) - set(cluster.running_broker_ids)
            if dead:
                print(
                    f"error: broker(s) {sorted(dead)} exited; see {cluster.directory}",
                    file=sys.stderr,
                )
                return 1
    except (KeyboardInterrupt, _Terminated):
        print("Stopping Kafka...", flush=True)
        return 0
    except (KafkaNotAvailable, KafkaStartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        cluster.stop()
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
