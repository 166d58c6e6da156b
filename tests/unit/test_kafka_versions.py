"""What differs between the supported Kafka releases, and the pytest plugin's
``requires_kafka`` marker and ``kafka_version`` fixture, which need no broker.

The same facts checked against real jars: tests/integration/test_harness.py
(``test_every_tool_runs_as_a_class_of_this_kafka``, run on each release by ``nox -s compat``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_brod.testing import (
    DEFAULT_KAFKA_VERSION,
    SUPPORTED_KAFKA_VERSIONS,
    KafkaTool,
    parse_kafka_version,
)
from trio_brod.testing._jars import harness_kafka_version
from trio_brod.testing._versions import requirement_problem, tool_main_class

pytest_plugins = ["pytester"]


def test_parse_kafka_version() -> None:
    assert parse_kafka_version("3.9.1") == (3, 9, 1)
    assert parse_kafka_version("4.0") == (4, 0)
    assert parse_kafka_version("4.1.0-rc2") == (4, 1, 0)
    with pytest.raises(ValueError, match="not a Kafka version"):
        parse_kafka_version("latest")


def test_supported_versions_are_ordered_and_hold_the_default() -> None:
    parsed = [parse_kafka_version(v) for v in SUPPORTED_KAFKA_VERSIONS]
    assert parsed == sorted(parsed)
    assert DEFAULT_KAFKA_VERSION in SUPPORTED_KAFKA_VERSIONS


versions = st.lists(st.integers(0, 30), min_size=1, max_size=4)


@given(versions, versions)
def test_requirement_is_met_exactly_from_the_minimum_on(
    running: list[int], minimum: list[int]
) -> None:
    width = max(len(running), len(minimum))
    # 4.0 and 4.0.0 are the same release.
    met = running + [0] * (width - len(running)) >= minimum + [0] * (width - len(minimum))
    problem = requirement_problem(".".join(map(str, minimum)), ".".join(map(str, running)))
    assert (problem is None) == met


def test_requirement_problem_names_the_feature_and_both_versions() -> None:
    assert requirement_problem("4.0", "4.0.2", "KIP-848 consumer groups") is None
    assert requirement_problem("4.0", "4.0.0") is None
    assert requirement_problem("4.0", "3.9.1", "KIP-848 consumer groups") == (
        "needs Kafka 4.0 or newer (KIP-848 consumer groups); this run uses Kafka 3.9.1"
    )
    assert requirement_problem("4.4", "4.3.1") == (
        "needs Kafka 4.4 or newer; this run uses Kafka 4.3.1"
    )


@pytest.mark.parametrize(
    ("version", "tool", "main_class"),
    [
        ("3.9.1", KafkaTool.CONSOLE_PRODUCER, "kafka.tools.ConsoleProducer"),
        (
            "3.9.1",
            KafkaTool.BROKER_API_VERSIONS_COMMAND,
            "kafka.admin.BrokerApiVersionsCommand",
        ),
        ("3.9.1", KafkaTool.CONFIG_COMMAND, "kafka.admin.ConfigCommand"),
        ("4.0.2", KafkaTool.CONSOLE_PRODUCER, "org.apache.kafka.tools.ConsoleProducer"),
        ("4.3.1", KafkaTool.CONFIG_COMMAND, "kafka.admin.ConfigCommand"),
        ("4.4.0", KafkaTool.CONFIG_COMMAND, "org.apache.kafka.tools.ConfigCommand"),
        ("4.4.0", KafkaTool.TOPIC_COMMAND, "org.apache.kafka.tools.TopicCommand"),
        ("3.9.1", "com.example.Tool", "com.example.Tool"),
        ("unknown", KafkaTool.CONSOLE_PRODUCER, "org.apache.kafka.tools.ConsoleProducer"),
    ],
)
def test_tools_that_moved_run_as_their_class_in_each_release(
    version: str, tool: str, main_class: str
) -> None:
    assert tool_main_class(tool, version) == main_class


def test_harness_version_from_the_environment_or_kafka_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KAFKA_HOME", raising=False)
    monkeypatch.delenv("TRIO_BROD_KAFKA_VERSION", raising=False)
    assert harness_kafka_version() == DEFAULT_KAFKA_VERSION
    monkeypatch.setenv("TRIO_BROD_KAFKA_VERSION", "3.9.1")
    assert harness_kafka_version() == "3.9.1"
    (tmp_path / "libs").mkdir()
    (tmp_path / "libs" / "kafka-clients-4.0.2.jar").touch()
    monkeypatch.setenv("KAFKA_HOME", str(tmp_path))
    assert harness_kafka_version() == "4.0.2"


MARKED_TESTS = """
import pytest

@pytest.mark.requires_kafka("4.0", feature="KIP-848 consumer groups")
def test_needs_4_0(kafka_version):
    assert kafka_version == "{version}"

@pytest.mark.requires_kafka("3.9")
def test_needs_3_9():
    pass

@pytest.mark.requires_kafka(4.0)
def test_a_number_is_a_mistake():
    pass
"""


def test_requires_kafka_skips_on_an_older_kafka_and_says_why(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKA_HOME", raising=False)
    monkeypatch.setenv("TRIO_BROD_KAFKA_VERSION", "3.9.1")
    pytester.makepyfile(MARKED_TESTS.format(version="3.9.1"))
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1, errors=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED*needs Kafka 4.0 or newer (KIP-848 consumer groups); this run uses Kafka 3.9.1"]
    )
    # A marker written wrongly is an error, not a skip.
    result.stdout.fnmatch_lines(["*use @pytest.mark.requires_kafka(minimum: str*"])


def test_requires_kafka_runs_the_test_on_a_new_enough_kafka(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKA_HOME", raising=False)
    monkeypatch.setenv("TRIO_BROD_KAFKA_VERSION", "4.0.2")
    pytester.makepyfile(MARKED_TESTS.format(version="4.0.2"))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
