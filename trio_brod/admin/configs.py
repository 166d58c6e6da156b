"""Configs: describe and change the settings of topics, brokers and other resources
(Kafka's DescribeConfigs and IncrementalAlterConfigs).

A broker's own configs (and its loggers') are known only to that broker, so requests about
them go there; everything else any broker answers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal, TypeVar

import trio

from trio_brod._backoff import Retry
from trio_brod._exceptions import BrokerConnectionError
from trio_brod._net import Connection
from trio_brod.admin._cluster_access import any_connection
from trio_brod.admin._common import check_names, raise_collected
from trio_brod.client import Client
from trio_brod.protocol import DescribeConfigsRequest, IncrementalAlterConfigsRequest
from trio_brod.protocol.errors import BrodError, for_code

__all__ = [
    "AlterConfigOp",
    "ConfigEntry",
    "ConfigResource",
    "ConfigResourceType",
    "ConfigSynonym",
    "alter_configs",
    "describe_configs",
]

_T = TypeVar("_T")

#: The kinds of resources that have configs.
ConfigResourceType = Literal["topic", "broker", "broker_logger", "client_metrics", "group"]

_RESOURCE_CODES: Final[Mapping[str, int]] = {
    "topic": 2,
    "broker": 4,
    "broker_logger": 8,
    "client_metrics": 16,
    "group": 32,
}
_RESOURCE_NAMES: Final = {code: name for name, code in _RESOURCE_CODES.items()}

#: DescribeConfigs' ConfigSource codes, by Kafka's names.
_CONFIG_SOURCES: Final = {
    0: "UNKNOWN",
    1: "DYNAMIC_TOPIC_CONFIG",
    2: "DYNAMIC_BROKER_CONFIG",
    3: "DYNAMIC_DEFAULT_BROKER_CONFIG",
    4: "STATIC_BROKER_CONFIG",
    5: "DEFAULT_CONFIG",
    6: "DYNAMIC_BROKER_LOGGER_CONFIG",
    7: "CLIENT_METRICS_CONFIG",
    8: "GROUP_CONFIG",
}

_CONFIG_OPS: Final = {"set": 0, "delete": 1, "append": 2, "subtract": 3}


@dataclasses.dataclass(frozen=True, slots=True)
class ConfigResource:
    """Something that has configs: a topic, a broker, a broker's loggers, a group...

    Use the shortcuts: ``ConfigResource.topic("orders")``, ``ConfigResource.broker(1)``,
    or ``ConfigResource.broker()`` for the cluster-wide broker defaults.

    Args:
        type: ``"topic"``, ``"broker"``, ``"broker_logger"``, ``"client_metrics"`` or
            ``"group"``.
        name: The topic (group ...) name; for brokers, the node id as a string, or ``""``
            for the cluster-wide default.
    """

    type: ConfigResourceType
    name: str

    def __post_init__(self) -> None:
        if self.type not in _RESOURCE_CODES:
            raise ValueError(
                f"ConfigResource: type must be one of {', '.join(_RESOURCE_CODES)}, "
                f"not {self.type!r}"
            )
        if not isinstance(self.name, str):
            raise TypeError(f"ConfigResource: name must be a str, not {self.name!r}")
        if self.type in ("broker", "broker_logger") and self.name and not self.name.isdigit():
            raise ValueError(
                f"ConfigResource: a {self.type} is named by its node id, not {self.name!r}"
            )

    @classmethod
    def topic(cls, name: str) -> ConfigResource:
        """A topic's configs."""
        return cls("topic", name)

    @classmethod
    def broker(cls, node_id: int | None = None) -> ConfigResource:
        """A broker's configs; without ``node_id``, the cluster-wide broker defaults."""
        return cls("broker", "" if node_id is None else str(node_id))


def _type_code(resource: ConfigResource) -> int:
    """The resource type's number on the wire."""
    return _RESOURCE_CODES[resource.type]


def _error_context(resource: ConfigResource) -> dict[str, object]:
    """What an error about ``resource`` names it by (a KafkaError's ``context``)."""
    if resource.type == "topic":
        return {"topic": resource.name}
    return {"resource": f"{resource.type} {resource.name or '(default)'}"}


@dataclasses.dataclass(frozen=True, slots=True)
class ConfigSynonym:
    """Where else a config's value could come from, by precedence (see ConfigEntry)."""

    name: str
    value: str | None
    source: str


@dataclasses.dataclass(frozen=True, slots=True)
class ConfigEntry:
    """One config of a resource, as :func:`describe_configs` reports it.

    Attributes:
        name: The config's name, e.g. ``"retention.ms"``.
        value: Its value; None if it is sensitive (a password) or unset.
        source: Where the value comes from, in Kafka's words: ``"DYNAMIC_TOPIC_CONFIG"``
            (set on the topic), ``"DYNAMIC_BROKER_CONFIG"``, ``"STATIC_BROKER_CONFIG"``
            (server.properties), ``"DEFAULT_CONFIG"`` ... ``"UNKNOWN"`` from brokers too old
            to say.
        read_only: Whether it can be changed at run time.
        sensitive: Whether the value is hidden.
        synonyms: With ``include_synonyms``, the values from every source, highest
            precedence first.
        documentation: With ``include_documentation``, the config's description.
    """

    name: str
    value: str | None
    source: str
    read_only: bool
    sensitive: bool
    synonyms: tuple[ConfigSynonym, ...] = ()
    documentation: str | None = None

    @property
    def is_default(self) -> bool:
        """True if nobody set it: the value is Kafka's default."""
        return self.source == "DEFAULT_CONFIG"


@dataclasses.dataclass(frozen=True, slots=True)
class AlterConfigOp:
    """One change for :func:`alter_configs`.

    Args:
        name: The config, e.g. ``"retention.ms"``.
        op: ``"set"`` the value; ``"delete"`` the setting (back to the default);
            ``"append"`` to or ``"subtract"`` from a list config
            (``"cleanup.policy"``, ``"leader.replication.throttled.replicas"``...).
        value: The value, or the list item to append or subtract; None for ``"delete"``.
    """

    name: str
    op: Literal["set", "delete", "append", "subtract"] = "set"
    value: str | None = None

    def __post_init__(self) -> None:
        if self.op not in _CONFIG_OPS:
            raise ValueError(
                f"AlterConfigOp({self.name!r}): op must be one of "
                f"{', '.join(_CONFIG_OPS)}, not {self.op!r}"
            )
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"AlterConfigOp: name must be a non-empty str, not {self.name!r}")
        if self.op == "delete":
            if self.value is not None:
                raise ValueError(f"AlterConfigOp({self.name!r}): 'delete' takes no value")
        elif not isinstance(self.value, str):
            raise TypeError(
                f"AlterConfigOp({self.name!r}): {self.op!r} needs a str value, not {self.value!r}"
            )


async def _resource_connection(client: Client, resource: ConfigResource) -> Connection:
    """Where a config request about ``resource`` must go.

    A broker's own configs (and its loggers) are known only to that broker; everything else
    (topics, broker defaults, groups) any broker answers.
    """
    if resource.type in ("broker", "broker_logger") and resource.name:
        node_id = int(resource.name)
        metadata = await client.get_metadata([])
        broker = metadata.brokers.get(node_id)
        if broker is None:
            known = ", ".join(str(n) for n in sorted(metadata.brokers))
            raise ValueError(f"broker {node_id} is not in the cluster (its brokers: {known})")
        return await client.get_connection(broker.host, broker.port)
    return await any_connection(client)


async def _per_destination(
    client: Client,
    resources: Sequence[ConfigResource],
    send: Callable[[Connection, list[ConfigResource]], Awaitable[_T]],
) -> list[_T]:
    """Group resources by the broker that must answer for them; send to each, retrying lost
    connections (bounded by the client's ``request_timeout``)."""
    groups: dict[str, tuple[Connection, list[ConfigResource]]] = {}
    for resource in resources:
        connection = await _resource_connection(client, resource)
        groups.setdefault(connection.address, (connection, []))[1].append(resource)
    answers: list[_T] = []
    for connection, members in groups.values():
        retry = Retry(client.config.request_timeout)
        while True:
            try:
                answers.append(await send(connection, members))
                break
            except BrokerConnectionError as exc:
                if not exc.retriable or retry.expired:
                    raise
                await retry.wait()
                connection = await _resource_connection(client, members[0])
    return answers


async def describe_configs(
    client: Client,
    resources: Iterable[ConfigResource],
    *,
    names: Sequence[str] | None = None,
    include_synonyms: bool = False,
    include_documentation: bool = False,
) -> dict[ConfigResource, dict[str, ConfigEntry]]:
    """The configs of topics, brokers and other resources (Kafka's DescribeConfigs).

    Args:
        client: An open client.
        resources: What to describe, e.g. ``[ConfigResource.topic("orders")]``.
        names: Only these configs (default: all of them).
        include_synonyms: Fill :attr:`ConfigEntry.synonyms`.
        include_documentation: Fill :attr:`ConfigEntry.documentation` (Kafka 2.6+).

    Returns:
        For each resource, its configs by name.

    Raises:
        UnknownTopicOrPartitionError: A topic does not exist. Other KafkaError subclasses
            for other refusals, each naming its resource.
        ValueError: A broker id is not in the cluster.
    """
    wanted = list(dict.fromkeys(resources))
    for resource in wanted:
        if not isinstance(resource, ConfigResource):
            raise TypeError(f"describe_configs takes ConfigResource objects, not {resource!r}")
    if names is not None:
        names = check_names(names, "describe_configs names")

    async def send(connection: Connection, members: list[ConfigResource]) -> Any:
        api = DescribeConfigsRequest
        version = connection.best_version(api, min_version=3 if include_documentation else None)
        request = api(
            resources=[
                api.DescribeConfigsResource(
                    resource_type=_type_code(r), resource_name=r.name, configuration_keys=names
                )
                for r in members
            ],
            include_synonyms=include_synonyms and version >= 1,
            include_documentation=include_documentation,
        )
        return await connection.request(request, version)

    result: dict[ConfigResource, dict[str, ConfigEntry]] = {}
    errors: list[BrodError] = []
    for response in await _per_destination(client, wanted, send):
        for answer in response.results:
            resource = ConfigResource(
                _RESOURCE_NAMES.get(answer.resource_type, "topic"),  # type: ignore[arg-type]
                answer.resource_name,
            )
            if answer.error_code:
                errors.append(
                    for_code(answer.error_code)(answer.error_message, **_error_context(resource))
                )
                continue
            result[resource] = {entry.name: _config_entry(entry) for entry in answer.configs}
    raise_collected(errors, "describe_configs", len(wanted))
    return result


def _config_entry(entry: Any) -> ConfigEntry:
    if entry.config_source >= 0:
        source = _CONFIG_SOURCES.get(entry.config_source, "UNKNOWN")
    else:  # v0 has only is_default
        source = "DEFAULT_CONFIG" if entry.is_default else "UNKNOWN"
    return ConfigEntry(
        name=entry.name,
        value=entry.value,
        source=source,
        read_only=entry.read_only,
        sensitive=entry.is_sensitive,
        synonyms=tuple(
            ConfigSynonym(s.name, s.value, _CONFIG_SOURCES.get(s.source, "UNKNOWN"))
            for s in entry.synonyms
        ),
        documentation=entry.documentation or None,
    )


async def alter_configs(
    client: Client,
    changes: Mapping[ConfigResource, Mapping[str, str | None] | Iterable[AlterConfigOp]],
    *,
    validate_only: bool = False,
) -> None:
    """Change configs of topics and brokers (Kafka's IncrementalAlterConfigs).

    Only the configs named change; the others keep their values. For each resource give
    either a mapping, where a str value sets the config and None deletes it (back to its
    default), or a list of :class:`AlterConfigOp` for list configs' ``append``/``subtract``::

        await alter_configs(client, {
            ConfigResource.topic("orders"): {"retention.ms": "3600000", "max.message.bytes": None},
            ConfigResource.broker(1): [AlterConfigOp("log.cleaner.threads", "set", "2")],
        })

    Args:
        client: An open client.
        changes: For each resource, its changes.
        validate_only: Only check that the changes could be made.

    The call returns once the controller has accepted the changes. Brokers apply them as
    the change reaches them, usually within milliseconds, so a :func:`describe_configs`
    right after may still show the old value for a moment.

    Raises:
        InvalidConfigError, InvalidRequestError, UnknownTopicOrPartitionError: A
            resource's changes were refused (for that resource); other
            :class:`~trio_brod.KafkaError` subclasses for other refusals.
        UnsupportedVersion: The broker is older than 2.3 (no IncrementalAlterConfigs).
        ValueError, TypeError: A change is malformed.
    """
    ops: dict[ConfigResource, list[AlterConfigOp]] = {}
    for resource, change in changes.items():
        if not isinstance(resource, ConfigResource):
            raise TypeError(f"alter_configs: keys must be ConfigResource objects, not {resource!r}")
        if isinstance(change, Mapping):
            ops[resource] = [
                AlterConfigOp(name, "delete")
                if value is None
                else AlterConfigOp(name, "set", value)
                for name, value in change.items()
            ]
        else:
            ops[resource] = list(change)
            for op in ops[resource]:
                if not isinstance(op, AlterConfigOp):
                    raise TypeError(f"alter_configs: {resource}: {op!r} is not an AlterConfigOp")
    if not ops:
        await trio.lowlevel.checkpoint()
        return

    async def send(connection: Connection, members: list[ConfigResource]) -> Any:
        api = IncrementalAlterConfigsRequest
        request = api(
            resources=[
                api.AlterConfigsResource(
                    resource_type=_type_code(r),
                    resource_name=r.name,
                    configs=[
                        api.AlterableConfig(
                            name=op.name, config_operation=_CONFIG_OPS[op.op], value=op.value
                        )
                        for op in ops[r]
                    ],
                )
                for r in members
            ],
            validate_only=validate_only,
        )
        return await connection.request(request, connection.best_version(api))

    errors: list[BrodError] = []
    for response in await _per_destination(client, list(ops), send):
        for answer in response.responses:
            if answer.error_code:
                resource = ConfigResource(
                    _RESOURCE_NAMES.get(answer.resource_type, "topic"),  # type: ignore[arg-type]
                    answer.resource_name,
                )
                errors.append(
                    for_code(answer.error_code)(answer.error_message, **_error_context(resource))
                )
    raise_collected(errors, "alter_configs", len(ops))
