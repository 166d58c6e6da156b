"""Which Kafka versions the harness runs, and what differs between them.

trio-brod is tested against several Kafka releases (:data:`SUPPORTED_KAFKA_VERSIONS`), and
the harness must drive each of them the same way. Two things differ between releases and are
kept here, as facts about Kafka, not guesses made at run time:

* Some command line tools moved to another main class between releases
  (:func:`tool_main_class`): the console producer and the broker API versions tool were Scala
  classes before 4.0, and ``kafka-configs`` became a Java tool in 4.4.
* Some features exist only from some release on: the KIP-848 consumer group protocol and
  transactions v2 (KIP-890) became generally available in 4.0. A test of such a feature says
  so with the ``requires_kafka`` marker of the pytest plugin, which compares with
  :func:`requirement_problem`.
"""

from __future__ import annotations

import re

__all__ = [
    "SUPPORTED_KAFKA_VERSIONS",
    "parse_kafka_version",
    "requirement_problem",
    "tool_main_class",
]

#: The Kafka releases trio-brod's core tests pass against, oldest first (the default,
#: ``DEFAULT_KAFKA_VERSION``, among them). ``nox -s compat`` runs them on the others.
SUPPORTED_KAFKA_VERSIONS = ("3.9.1", "4.0.2", "4.3.1", "4.4.0")

# Main classes that moved, by the name KafkaTool gives them (the current one): a list of
# (first release with the KafkaTool name, the class used before it) or (first release with
# a newer name, that name). Checked against each supported release's jars by
# tests/integration/test_harness.py.
_BEFORE: dict[str, tuple[tuple[int, ...], str]] = {
    # Both moved from the Scala core module to the Java tools module in 4.0.
    "org.apache.kafka.tools.ConsoleProducer": ((4, 0), "kafka.tools.ConsoleProducer"),
    "org.apache.kafka.tools.BrokerApiVersionsCommand": (
        (4, 0),
        "kafka.admin.BrokerApiVersionsCommand",
    ),
}
_FROM: dict[str, tuple[tuple[int, ...], str]] = {
    # kafka-configs became a Java tool in 4.4; the Scala class is gone there.
    "kafka.admin.ConfigCommand": ((4, 4), "org.apache.kafka.tools.ConfigCommand"),
}


def parse_kafka_version(version: str) -> tuple[int, ...]:
    """The numeric release of a Kafka version string: ``"3.9.1"`` -> ``(3, 9, 1)``.

    Only the leading dotted numbers count, so ``"4.1.0-rc2"`` is ``(4, 1, 0)``: a candidate
    has the features of its release.

    Raises:
        ValueError: The string does not start with a number.
    """
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    if match is None:
        raise ValueError(f"not a Kafka version: {version!r}")
    return tuple(int(part) for part in match.group().split("."))


def _at_least(version: tuple[int, ...], minimum: tuple[int, ...]) -> bool:
    # (4, 0) means 4.0.0: pad both to the same length so that 4.0 == 4.0.0.
    width = max(len(version), len(minimum))
    return version + (0,) * (width - len(version)) >= minimum + (0,) * (width - len(minimum))


def tool_main_class(main_class: str, kafka_version: str) -> str:
    """The main class of a Kafka tool in ``kafka_version``.

    ``main_class`` is the name :class:`~trio_brod.testing.KafkaTool` gives (the name in the
    default release); a tool that has another name in ``kafka_version`` gets that one. Any
    other class, and any version that cannot be read, is left as it is.
    """
    try:
        version = parse_kafka_version(kafka_version)
    except ValueError:
        return main_class
    before = _BEFORE.get(main_class)
    if before is not None and not _at_least(version, before[0]):
        return before[1]
    after = _FROM.get(main_class)
    if after is not None and _at_least(version, after[0]):
        return after[1]
    return main_class


def requirement_problem(minimum: str, kafka_version: str, feature: str | None = None) -> str | None:
    """Why a test needing Kafka ``minimum`` cannot run on ``kafka_version``; None if it can.

    The message names both versions and the feature, e.g. ``"needs Kafka 4.0 or newer
    (KIP-848 consumer groups); this run uses Kafka 3.9.1"``, so that a skipped test says
    which broker lacked what.

    Raises:
        ValueError: ``minimum`` or ``kafka_version`` is not a version.
    """
    if _at_least(parse_kafka_version(kafka_version), parse_kafka_version(minimum)):
        return None
    what = f" ({feature})" if feature else ""
    return f"needs Kafka {minimum} or newer{what}; this run uses Kafka {kafka_version}"
