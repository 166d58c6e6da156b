"""GroupConfig: defaults, and every bad value refused with the field named."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_brod import ConfigError, GroupConfig


def test_defaults_are_the_java_consumers() -> None:
    config = GroupConfig()
    assert config.partition_assignment_strategy == "cooperative-sticky"
    assert (config.session_timeout, config.rebalance_timeout, config.heartbeat_rate) == (
        45.0,
        300.0,
        3.0,
    )
    assert config.offset_commit_policy == "commit_to_kafka"
    assert config.offset_retention is None
    assert config.offset_retention_ms == -1
    assert config.group_protocol == "classic"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.session_timeout = 10.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("partition_assignment_strategy", "sticky"),
        ("partition_assignment_strategy", "roundrobin_v2"),
        ("partition_assignment_strategy", None),
        ("partition_assignment_strategy", object()),
        ("session_timeout", 0),
        ("session_timeout", -1.0),
        ("session_timeout", float("nan")),
        ("session_timeout", "45"),
        ("session_timeout", 3e6),  # does not fit an int32 of milliseconds
        ("rebalance_timeout", 0.0),
        ("heartbeat_rate", 0),
        ("heartbeat_rate", True),
        ("max_rejoin_attempts", -1),
        ("max_rejoin_attempts", 1.5),
        ("rejoin_delay", -0.1),
        ("offset_commit_policy", "commit_to_kafka_v2"),
        ("offset_commit_interval", 0),
        ("offset_retention", 0),
        ("offset_retention", -1),
        ("offset_retention", float("inf")),
        ("group_instance_id", ""),
        ("group_instance_id", "has space"),
        ("group_instance_id", "x" * 250),
        ("group_instance_id", 7),
        ("group_protocol", "eager"),
    ],
)
def test_a_bad_value_is_refused_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"GroupConfig.{field}="):
        GroupConfig(**{field: value})


def test_the_consumer_protocol_and_its_broker_side_assignor() -> None:
    config = GroupConfig(group_protocol="consumer", remote_assignor="range")
    assert (config.group_protocol, config.remote_assignor) == ("consumer", "range")
    # The classic-only options at their defaults pass: they are not used.
    assert GroupConfig(group_protocol="consumer").session_timeout == 45.0
    # heartbeat_rate is the broker's with "consumer": not checked against session_timeout.
    assert GroupConfig(group_protocol="consumer", rebalance_timeout=1.0).rebalance_timeout == 1.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("session_timeout", 10.0),
        ("heartbeat_rate", 1.0),
        ("partition_assignment_strategy", "range"),
        ("offset_retention", 60.0),
        ("max_rejoin_attempts", 2),
        ("rejoin_delay", 0.5),
    ],
)
def test_options_the_consumer_protocol_lacks_are_refused_naming_them(
    field: str, value: Any
) -> None:
    with pytest.raises(ConfigError, match=rf"GroupConfig\.{field}=.*'consumer' group protocol"):
        GroupConfig(group_protocol="consumer", **{field: value})
    GroupConfig(**{field: value})  # fine with the classic protocol


def test_a_remote_assignor_needs_the_consumer_protocol_and_a_known_name() -> None:
    with pytest.raises(ConfigError, match=r"GroupConfig\.remote_assignor='range': only"):
        GroupConfig(remote_assignor="range")
    with pytest.raises(ConfigError, match=r"GroupConfig\.remote_assignor='sticky'"):
        GroupConfig(group_protocol="consumer", remote_assignor="sticky")  # type: ignore[arg-type]


def test_heartbeats_must_come_more_often_than_the_session_times_out() -> None:
    GroupConfig(session_timeout=10.0, heartbeat_rate=9.9)
    with pytest.raises(ConfigError, match=r"heartbeat_rate=10.0: expected less than session"):
        GroupConfig(session_timeout=10.0, heartbeat_rate=10.0)


class _Assignor:
    name = "mine"
    rebalance_protocols = ("eager",)

    def assign(self, partitions_per_topic: Any, subscriptions: Any, /) -> Any:
        return {}


def test_an_assignor_object_is_accepted_by_shape_but_not_its_class() -> None:
    assert GroupConfig(partition_assignment_strategy=_Assignor()).partition_assignment_strategy
    with pytest.raises(ConfigError, match="that is a class; pass an instance"):
        GroupConfig(partition_assignment_strategy=_Assignor)  # type: ignore[arg-type]
    nameless = _Assignor()
    nameless.name = ""
    with pytest.raises(ConfigError, match="partition_assignment_strategy"):
        GroupConfig(partition_assignment_strategy=nameless)


@pytest.mark.parametrize("name", ["range", "roundrobin", "cooperative-sticky"])
def test_the_java_protocol_names_are_accepted(name: Any) -> None:
    assert GroupConfig(partition_assignment_strategy=name).partition_assignment_strategy == name


@given(st.from_regex(r"[a-zA-Z0-9._-]{1,249}", fullmatch=True))
def test_any_legal_instance_id_is_accepted(instance_id: str) -> None:
    assert GroupConfig(group_instance_id=instance_id).group_instance_id == instance_id


@given(st.floats(0.001, 1e9))
def test_retention_goes_on_the_wire_in_whole_milliseconds_never_zero(seconds: float) -> None:
    ms = GroupConfig(offset_retention=seconds).offset_retention_ms
    assert ms >= 1
    assert ms == pytest.approx(seconds * 1000, abs=1)
