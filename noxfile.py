"""Development sessions: ``nox -s tests``, ``compat``, ``lint``, ``docs``, ``demo``, ``bench``."""

from __future__ import annotations

import os
import re
import shutil
import time

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

PYTHON = "3.11"


def _ensure_kcat(session: nox.Session) -> None:
    """kcat reads and writes Kafka for the interop tests; install it from Debian if missing."""
    if shutil.which("kcat"):
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        session.log("kcat is missing: installing it from Debian's packages")
        session.run("apt-get", "update", "-q", external=True)
        session.run("apt-get", "install", "-y", "-q", "kcat", external=True)
        return
    session.error("the interop tests need kcat: install it (e.g. `apt-get install kcat`)")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The full test suite, unit and integration (starts a real local Kafka)."""
    _ensure_kcat(session)
    # The C record codec must build and be used here (its fallback is tested either way).
    require_speedups = {"TRIO_BROD_REQUIRE_SPEEDUPS": "1"}
    # bench: the peers, for the benchmark runner's --quick check.
    session.install("-e", ".[dev,bench]", env=require_speedups)
    session.run("pytest", *session.posargs, env=require_speedups)


# Prints the supported Kafka versions other than the default, in the session's own Python:
# trio_brod.testing keeps the one list, which the CI's jar fetch reads too.
_OTHER_KAFKA_VERSIONS = (
    "from trio_brod.testing import DEFAULT_KAFKA_VERSION, SUPPORTED_KAFKA_VERSIONS; "
    "print(*(v for v in SUPPORTED_KAFKA_VERSIONS if v != DEFAULT_KAFKA_VERSION))"
)


@nox.session(python=PYTHON)
def compat(session: nox.Session) -> None:
    """The core tests (marker ``compat``) against every other supported Kafka release.

    ``tests`` runs them on the default release; this runs them once per other release, each
    on a broker of its own (``TRIO_BROD_KAFKA_VERSION``). ``nox -s compat -- 3.9.1`` runs
    only the releases named; other arguments go to pytest (``-- 4.4.0 -k groups -x``).

    A test joins with ``@pytest.mark.compat``; one of a feature that older releases lack
    (transactions v2, KIP-848 groups: 4.0) also gets ``@pytest.mark.requires_kafka("4.0",
    feature=...)``, which skips it there with the versions named (docs/compatibility.rst).
    """
    _ensure_kcat(session)
    require_speedups = {"TRIO_BROD_REQUIRE_SPEEDUPS": "1"}
    session.install("-e", ".[dev]", env=require_speedups)
    versions = [a for a in session.posargs if re.fullmatch(r"\d+(\.\d+)+", a)]
    pytest_args = [a for a in session.posargs if a not in versions]
    if not versions:
        found = session.run("python", "-c", _OTHER_KAFKA_VERSIONS, silent=True)
        versions = str(found).split()
    took = []
    for version in versions:
        started = time.monotonic()
        session.log(f"the core tests against Kafka {version}")
        env = {**require_speedups, "TRIO_BROD_KAFKA_VERSION": version}
        session.run("pytest", "-m", "compat", "tests/integration", *pytest_args, env=env)
        took.append(f"Kafka {version}: {time.monotonic() - started:.0f} s")
    session.log("compat: " + ", ".join(took))


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint and format check) and mypy --strict."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the HTML docs into docs/_build/html, warnings (and broken references) as errors."""
    session.install("-e", ".[docs]")
    # -E: read every page again, so that a warning is reported on every run, not only on
    # the run after the page changed.
    session.run(
        "sphinx-build", "-W", "--keep-going", "-E", "-b", "html", "docs", "docs/_build/html"
    )


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Start a local Kafka, show its metadata, produce, consume, consume again as a
    consumer group of two members, then copy the topic exactly once in transactions
    (consume-transform-produce); options after ``--``
    (``nox -s demo -- --messages 1000000 --compression zstd``)."""
    session.install("-e", ".[compression]")
    session.run("python", "-m", "trio_brod.demo", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against aiokafka, kafka-python, confluent-kafka and Kafka's Java tools, on
    a local Kafka it starts: ``nox -s bench`` (full), ``nox -s bench -- --quick`` (<3 min)."""
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/run.py", *session.posargs)
