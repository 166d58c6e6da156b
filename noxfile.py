"""Development sessions: ``nox -s tests``, ``lint``, ``docs``, ``demo``, ``bench``."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The full test suite, unit and integration (starts a real local Kafka)."""
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


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
    """Start a local Kafka, show its metadata, produce and consume; options after ``--``
    (``nox -s demo -- --messages 1000000 --compression zstd``)."""
    session.install("-e", ".[compression]")
    session.run("python", "-m", "trio_brod.demo", *session.posargs)
