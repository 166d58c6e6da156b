"""The consumer group configuration: :class:`GroupConfig`, its assignor names, and the
checks of the group protocols' options (apart from ``_config.py``, which holds the client's,
producers' and consumers' dataclasses and the checking helpers all of them use).

The KIP-848 ``"consumer"`` protocol lacks some of the classic protocol's options: the broker
assigns the partitions and sets the session timeout and the heartbeat interval. A value other
than the option's default is refused, as librdkafka refuses those properties with
``group.protocol=consumer``: silently ignoring a session timeout the user chose would hide
that the broker's applies. A default value cannot be told from one given explicitly, and
it is unused anyway, so it passes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final, Literal, Protocol, TypeAlias

from trio_brod._config import MAX_INT32, check_number, check_type, field_error
from trio_brod._exceptions import ConfigError
from trio_brod._util import ms_up

__all__ = [
    "ASSIGNOR_NAMES",
    "CLASSIC_ONLY",
    "AssignorName",
    "AssignorObject",
    "GroupConfig",
    "GroupProtocol",
    "OffsetCommitPolicy",
    "RemoteAssignor",
    "check_assignor",
    "check_group_protocol",
]

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


#: The assignors every Kafka client knows by these names (the Java protocol names).
ASSIGNOR_NAMES: Final = ("range", "roundrobin", "cooperative-sticky")
AssignorName: TypeAlias = Literal["range", "roundrobin", "cooperative-sticky"]
OffsetCommitPolicy: TypeAlias = Literal["commit_to_kafka", "consumer_managed"]
GroupProtocol: TypeAlias = Literal["classic", "consumer"]
#: The broker-side assignors of the KIP-848 consumer group protocol.
RemoteAssignor: TypeAlias = Literal["uniform", "range"]

#: Kafka's limits on a ``group.instance.id`` (JoinGroupRequest.validateGroupInstanceId).
_INSTANCE_ID_MAX = 249
_INSTANCE_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
#: The longest duration that fits a request's int32 of milliseconds.
_MAX_INT32_SECONDS = MAX_INT32 / 1000


class AssignorObject(Protocol):
    """What the config requires of an assignor object: a protocol name and ``assign``.

    :class:`trio_brod.groups.assignors.Assignor` is the whole protocol a member uses; this
    is the part checked here, without importing the groups package.
    """

    @property
    def name(self) -> str:
        """The protocol name the member offers in JoinGroup."""
        ...

    def assign(self, partitions_per_topic: Any, subscriptions: Any, /) -> Any:
        """The leader's assignment of partitions to members."""
        ...


def check_assignor(spec: object) -> None:
    """A ConfigError unless ``spec`` is a ``partition_assignment_strategy``: one of
    :data:`ASSIGNOR_NAMES`, or an assignor object (it has a ``name`` and an ``assign``).

    Here, by name only, so that the configs need nothing from the groups package, which
    turns the setting into an assignor.
    """
    if isinstance(spec, str):
        if spec in ASSIGNOR_NAMES:
            return
    elif isinstance(spec, type):
        # An assignor class has both attributes too; its instances are what assign.
        raise ConfigError(
            f"GroupConfig.partition_assignment_strategy={spec.__qualname__}: that is a class; "
            f"pass an instance, e.g. {spec.__qualname__}()"
        )
    else:
        name: object = getattr(spec, "name", None)
        if isinstance(name, str) and name and callable(getattr(spec, "assign", None)):
            return
    raise ConfigError(
        f"GroupConfig.partition_assignment_strategy={spec!r}: expected one of "
        f"{', '.join(map(repr, ASSIGNOR_NAMES))} or an assignor object (with a name and "
        "an assign method)"
    )


@dataclasses.dataclass(frozen=True, slots=True)
class GroupConfig:
    """How a consumer group member joins, stays in and commits for its group (brod's
    group coordinator options, with the Java consumer's defaults where brod's are older).

    Args:
        partition_assignment_strategy: How the group's leader assigns partitions:
            ``"range"``, ``"roundrobin"``, ``"cooperative-sticky"`` (the Java protocol
            names, so Java and librdkafka members that list the same name share the
            group), or an assignor object. The default, ``"cooperative-sticky"``, moves
            only the partitions that must move at a rebalance, and the others keep being
            consumed through it (KIP-429) instead of every member stopping everything.
        session_timeout: Seconds without a heartbeat after which the coordinator evicts the
            member and gives its partitions to others (45 s: Kafka 3.0+'s default). The
            broker bounds it (``group.min.session.timeout.ms`` 6 s to
            ``group.max.session.timeout.ms`` 30 min).
        rebalance_timeout: Seconds the coordinator waits at a rebalance for every member to
            rejoin, and so how long a member may take to finish and commit the partitions
            it gives up (300 s, Java's ``max.poll.interval.ms`` default).
        heartbeat_rate: Seconds between heartbeats (3 s, Java's
            ``heartbeat.interval.ms``); below ``session_timeout``, at most a third of it
            as a rule of thumb, so that a lost heartbeat or two do not evict the member.
        max_rejoin_attempts: How many times in a row a failed join (JoinGroup or SyncGroup
            answered with a retriable error) is retried before the member gives up with
            the error. A rebalance in progress or a coordinator move is not a failure.
        rejoin_delay: Seconds before a failed join is tried again; each further failure in
            a row doubles it (with 20 % jitter), up to 30 s.
        offset_commit_policy: ``"commit_to_kafka"``: offsets are committed to the group's
            coordinator and read back from it at an assignment; ``"consumer_managed"``: the
            application keeps its offsets and a callback of its gives the starting ones
            (brod's ``get_committed_offset``).
        offset_commit_interval: Seconds between the periodic commits of acknowledged
            offsets.
        offset_retention: Seconds the broker keeps the group's committed offsets once the
            group is empty; None (the default) leaves it to the broker's
            ``offsets.retention.minutes`` (7 days). Only OffsetCommit v2-v4 carry it, so
            commits then use v4 at most (and cannot carry ``group_instance_id``).
        group_instance_id: Makes the member static (KIP-345): restarted within
            ``session_timeout`` with the same id, it gets its partitions back without a
            rebalance. Unique in the group; Kafka's rules: at most 249 of
            ``[a-zA-Z0-9._-]``.
        group_protocol: ``"classic"``, the JoinGroup/SyncGroup protocol every broker
            speaks, or ``"consumer"``, KIP-848's consumer group protocol (Kafka 4.0+): the
            broker assigns the partitions and moves them one member at a time, with no
            group-wide stop (ConsumerGroupHeartbeat). It has no ``session_timeout``,
            ``heartbeat_rate`` (the broker sets both), ``partition_assignment_strategy``
            (see ``remote_assignor``), ``offset_retention`` (commits must be v9+, which
            carry none), ``max_rejoin_attempts`` nor ``rejoin_delay`` (a failed heartbeat
            is retried with its own backoff): giving one a value other than its default with
            ``"consumer"`` is refused with a ConfigError naming it. (A default value cannot
            be told from one set explicitly; it is unused with ``"consumer"`` anyway.)
        remote_assignor: With ``group_protocol="consumer"``, the broker's assignor to use:
            ``"uniform"``, ``"range"``, or None (the default) for the broker's own default
            (``group.consumer.assignors``' first, ``uniform``). Refused with ``"classic"``.

    Raises:
        ConfigError: A field has a bad value; the message names the field.
    """

    partition_assignment_strategy: AssignorName | AssignorObject = "cooperative-sticky"
    session_timeout: float = 45.0
    rebalance_timeout: float = 300.0
    heartbeat_rate: float = 3.0
    max_rejoin_attempts: int = 5
    rejoin_delay: float = 1.0
    offset_commit_policy: OffsetCommitPolicy = "commit_to_kafka"
    offset_commit_interval: float = 5.0
    offset_retention: float | None = None
    group_instance_id: str | None = None
    group_protocol: GroupProtocol = "classic"
    remote_assignor: RemoteAssignor | None = None

    def __post_init__(self) -> None:
        check_assignor(self.partition_assignment_strategy)
        for name in ("session_timeout", "rebalance_timeout", "heartbeat_rate"):
            check_number(self, name, minimum=0, exclusive_minimum=True, maximum=_MAX_INT32_SECONDS)
        if self.group_protocol == "classic" and self.heartbeat_rate >= self.session_timeout:
            raise ConfigError(
                f"GroupConfig.heartbeat_rate={self.heartbeat_rate!r}: expected less than "
                f"session_timeout={self.session_timeout!r}"
            )
        check_number(self, "max_rejoin_attempts", minimum=0, integer=True)
        check_number(self, "rejoin_delay", minimum=0)
        if self.offset_commit_policy not in ("commit_to_kafka", "consumer_managed"):
            raise field_error(
                self,
                "offset_commit_policy",
                self.offset_commit_policy,
                "'commit_to_kafka' or 'consumer_managed'",
            )
        check_number(self, "offset_commit_interval", minimum=0, exclusive_minimum=True)
        if self.offset_retention is not None:
            check_number(self, "offset_retention", minimum=0, exclusive_minimum=True)
        if self.group_instance_id is not None:
            check_type(self, "group_instance_id", str, "a str or None")
            value = self.group_instance_id
            if not value or len(value) > _INSTANCE_ID_MAX or not set(value) <= _INSTANCE_ID_CHARS:
                raise field_error(
                    self,
                    "group_instance_id",
                    value,
                    f"1 to {_INSTANCE_ID_MAX} of the characters [a-zA-Z0-9._-]",
                )
        check_group_protocol(self)

    @property
    def offset_retention_ms(self) -> int:
        """``offset_retention`` as OffsetCommit's ``retention_time_ms`` (-1: the broker's)."""
        if self.offset_retention is None:
            return -1
        return ms_up(self.offset_retention)
