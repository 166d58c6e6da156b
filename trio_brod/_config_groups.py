"""GroupConfig's checks of the group protocol's options (kept apart from ``_config.py``,
which holds the dataclasses themselves).

The KIP-848 ``"consumer"`` protocol lacks some of the classic protocol's options: the broker
assigns the partitions and sets the session timeout and the heartbeat interval. A value other
than the option's default is refused, as librdkafka refuses those properties with
``group.protocol=consumer``: silently ignoring a session timeout the user chose would hide
that the broker's applies. A default value cannot be told from one given explicitly, and
it is unused anyway, so it passes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

from trio_brod._exceptions import ConfigError

__all__ = ["CLASSIC_ONLY", "check_group_protocol"]

#: GroupConfig's options that only the classic group protocol has, and why.
CLASSIC_ONLY: Final = {
    "partition_assignment_strategy": "the broker assigns: see remote_assignor",
    "session_timeout": "the broker's group.consumer.session.timeout.ms applies",
    "heartbeat_rate": "the broker sets the heartbeat interval",
    "offset_retention": "it needs OffsetCommit v2-v4, which cannot carry a member epoch",
    "max_rejoin_attempts": "a failed heartbeat is retried with backoff until it succeeds",
    "rejoin_delay": "a failed heartbeat is retried after 0.1 s, doubling up to 2 s",
}


def check_group_protocol(config: Any) -> None:
    """Check a GroupConfig's ``group_protocol``, ``remote_assignor`` and the options only
    one of the protocols has.

    Raises:
        ConfigError: Naming the field.
    """
    protocol: object = config.group_protocol
    if protocol not in ("classic", "consumer"):
        raise ConfigError(
            f"GroupConfig.group_protocol={protocol!r}: expected 'classic' or 'consumer'"
        )
    assignor: object = config.remote_assignor
    if assignor is not None and assignor not in ("uniform", "range"):
        raise ConfigError(
            f"GroupConfig.remote_assignor={assignor!r}: expected 'uniform', 'range' or None"
        )
    if protocol == "classic":
        if assignor is not None:
            raise ConfigError(
                f"GroupConfig.remote_assignor={assignor!r}: only the 'consumer' group protocol "
                "has broker-side assignors; with 'classic' use partition_assignment_strategy"
            )
        return
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    for name, why in CLASSIC_ONLY.items():
        value, default = getattr(config, name), defaults[name]
        if value != default:
            raise ConfigError(
                f"GroupConfig.{name}={value!r}: the 'consumer' group protocol (KIP-848) has "
                f"no such option ({why}); leave it at its default ({default!r}) or use "
                "group_protocol='classic'"
            )
