"""trio_brod.admin without a broker: where its names live, and its pure parts."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import trio_brod
import trio_brod.admin
from trio_brod import ClusterMetadata, PartitionMetadata, TopicMetadata
from trio_brod.admin._common import ms as to_ms
from trio_brod.admin.topics import _topic_problem
from trio_brod.protocol.errors import (
    LeaderNotAvailableError,
    UnknownTopicIdError,
    UnknownTopicOrPartitionError,
)

ADMIN = Path(trio_brod.admin.__file__).parent


def test_admin_lives_under_trio_brod_admin_only() -> None:
    assert len(trio_brod.admin.__all__) == 27  # 24, and the KIP-848 describe_consumer_groups
    for name in trio_brod.admin.__all__:
        value = getattr(trio_brod.admin, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.startswith("trio_brod.admin.")
        assert name not in trio_brod.__all__
        assert not hasattr(trio_brod, name), name


def reach_ins(path: Path) -> list[str]:
    """``obj._name`` accesses in a module, where ``obj`` is not ``self`` or ``cls``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("path", sorted(ADMIN.glob("*.py")), ids=lambda p: p.name)
def test_admin_reaches_into_no_private_names(path: Path) -> None:
    # Admin depends on the client's pool and metadata cache, never on its internals.
    assert reach_ins(path) == []


def metadata(*topics: TopicMetadata) -> ClusterMetadata:
    return ClusterMetadata("cluster", 1, {}, {t.name: t for t in topics})


def partition(number: int, leader: int = 1) -> PartitionMetadata:
    return PartitionMetadata(number, leader, 0, (1,), (1,))


def test_a_deleted_topic_is_gone_when_not_described_or_unknown() -> None:
    unknown = TopicMetadata("t", {}, error_code=UnknownTopicOrPartitionError.code)
    unknown_id = TopicMetadata("t", {}, error_code=UnknownTopicIdError.code)
    for answer in (metadata(), metadata(unknown), metadata(unknown_id)):
        assert _topic_problem(answer, "t", 0) == ""
    still = TopicMetadata("t", {0: partition(0)})
    assert _topic_problem(metadata(still), "t", 0) == "still knows the topic"
    leaderless = TopicMetadata("t", {}, error_code=LeaderNotAvailableError.code)
    assert _topic_problem(metadata(leaderless), "t", 0) == "still knows the topic"


def test_a_created_topic_needs_every_partition_with_a_leader() -> None:
    unknown = TopicMetadata("t", {}, error_code=UnknownTopicOrPartitionError.code)
    for answer in (metadata(), metadata(unknown)):
        assert _topic_problem(answer, "t", 2) == "answers UNKNOWN_TOPIC_OR_PARTITION"
    one = TopicMetadata("t", {0: partition(0)})
    assert _topic_problem(metadata(one), "t", 2) == "knows 1 of 2 partitions"
    no_leader = TopicMetadata("t", {0: partition(0), 1: partition(1, leader=-1)})
    assert _topic_problem(metadata(no_leader), "t", 2) == "sees no leader for partitions [1]"
    assert _topic_problem(metadata(no_leader), "t", None) == "sees no leader for partitions [1]"
    ready = TopicMetadata("t", {0: partition(0), 1: partition(1)})
    assert _topic_problem(metadata(ready), "t", 2) == ""
    assert _topic_problem(metadata(ready), "t", None) == ""


@given(st.integers(0, 2**31 - 1))
def test_timeouts_in_whole_ms_are_sent_exactly(ms: int) -> None:
    # 2.007 * 1000 is 2007.0000000000002 as a float: rounding up must not make it 2008.
    assert to_ms(ms / 1000) == ms


@pytest.mark.parametrize(("seconds", "ms"), [(0.0001, 1), (0.0015, 2), (0, 0)])
def test_a_positive_timeout_is_rounded_up_never_to_zero(seconds: float, ms: int) -> None:
    assert to_ms(seconds) == ms
