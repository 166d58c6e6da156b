"""The launcher's security options, without a broker: argument checks, listener names and
the broker settings for SASL users (tests/integration/test_security.py runs the brokers)."""

from __future__ import annotations

from typing import Any

import pytest

from trio_brod.testing import KafkaCluster
from trio_brod.testing._security import sasl_settings, scram_format_args

PASSWORD_MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sasl_users": {"al ice": "pw"}}, "user name 'al ice'"),
        ({"sasl_users": {"alice": 'p"w'}}, "password"),
        ({"sasl_users": {"alice": ""}}, "password"),
        ({"sasl_users": {"alice": "pw"}, "sasl_mechanisms": ["GSSAPI"]}, "GSSAPI"),
        ({"sasl_users": {"alice": "pw"}, "sasl_mechanisms": []}, "empty"),
        ({"sasl_users": {"alice": "pw"}, "sasl_mechanisms": "PLAIN"}, "collection"),
        ({"tls": "yes"}, "tls must be a bool"),
    ],
)
def test_security_options_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KafkaCluster(**kwargs)


def test_listeners_follow_the_options() -> None:
    # Not started: only the names are known, and the addresses ask for a start.
    assert KafkaCluster().listeners == ["PLAINTEXT"]
    assert KafkaCluster(sasl_users={}).listeners == ["PLAINTEXT", "SASL_PLAINTEXT"]
    assert KafkaCluster(tls=True).listeners == ["PLAINTEXT", "SSL"]
    both = KafkaCluster(sasl_users={"a": "b"}, tls=True)
    assert both.listeners == ["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"]
    assert both.sasl_mechanisms == PASSWORD_MECHANISMS
    assert KafkaCluster(tls=True).sasl_mechanisms == []
    with pytest.raises(RuntimeError, match="not running"):
        both.listener_bootstrap("SASL_SSL")


def test_broker_settings_for_users_and_mechanisms() -> None:
    settings = sasl_settings(["SASL_SSL"], {"alice": "a1", "bob": "b2"}, ["PLAIN", "SCRAM-SHA-512"])
    assert settings["sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-512"
    assert settings["listener.name.sasl_ssl.plain.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.plain.PlainLoginModule required"
        ' user_alice="a1" user_bob="b2";'
    )
    assert "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config" in settings
    assert "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config" not in settings
    assert scram_format_args({"alice": "a1"}, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]) == [
        "--add-scram",
        "SCRAM-SHA-256=[name=alice,password=a1]",
        "--add-scram",
        "SCRAM-SHA-512=[name=alice,password=a1]",
    ]
