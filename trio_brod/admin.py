"""Administration: topics, configs, consumer groups and committed offsets.

brod spreads these over ``brod.erl`` (``create_topics``, ``delete_topics``,
``list_groups``, ``describe_groups``, ``fetch_committed_offsets`` ...). Here they are plain
async functions that take an open :class:`~trio_brod.Client`::

    from trio_brod.admin import NewTopic, create_topics, describe_groups

    async with trio_brod.open_client(["localhost:9092"]) as client:
        await create_topics(client, [NewTopic("orders", num_partitions=6)])
        groups = await describe_groups(client, ["billing"])

Each function sends its requests where the protocol wants them: topic changes to the
controller, group requests to the group's coordinator, DeleteRecords to the partitions'
leaders, ListGroups to every broker. Lost connections, a coordinator that moved or is still
loading (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE), a
controller that moved (NOT_CONTROLLER) and a leader that moved are retried with backoff, for
up to the client's ``request_timeout``.

Errors
------

Every function does all of what it was asked, or raises. A failure about one item (a topic,
a partition, a config resource, a group) raises that item's
:class:`~trio_brod.KafkaError`, whose ``context`` (and message) names the item::

    try:
        await create_topics(client, [NewTopic("orders", 3)])
    except TopicAlreadyExistsError:
        ...  # str(exc): "TOPIC_ALREADY_EXISTS (36) for orders: Topic 'orders' already exists."

Kafka does not apply a request for several items atomically: when some items fail, the others
were still done. If several items failed, an :class:`ExceptionGroup` of their errors is
raised (its message says how many of how many failed); ``except*`` handles both shapes::

    try:
        await delete_topics(client, ["a", "b", "c"])
    except* UnknownTopicOrPartitionError as group:
        missing = [exc.context["topic"] for exc in group.exceptions]

Queries return what exists: :func:`fetch_committed_offsets` leaves out partitions without a
committed offset, and :func:`describe_groups` describes a group that does not exist as state
``"Dead"`` (as Kafka answers), rather than raising.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal, TypeVar

import trio

from trio_brod._connection import Connection
from trio_brod._exceptions import BrokerConnectionError, NoLeader, UnsupportedVersion
from trio_brod._metadata import BrokerMetadata, ClusterMetadata
from trio_brod.client import Client
from trio_brod.protocol import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
    CreatePartitionsRequest,
    CreateTopicsRequest,
    DecodeError,
    DeleteGroupsRequest,
    DeleteRecordsRequest,
    DeleteTopicsRequest,
    DescribeClusterRequest,
    DescribeConfigsRequest,
    DescribeGroupsRequest,
    IncrementalAlterConfigsRequest,
    ListGroupsRequest,
    MetadataRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
)
from trio_brod.protocol.errors import BrodError, KafkaError, for_code

__all__ = [
    "AlterConfigOp",
    "ClusterDescription",
    "CommittedOffset",
    "ConfigEntry",
    "ConfigResource",
    "ConfigResourceType",
    "ConfigSynonym",
    "GroupDescription",
    "GroupListing",
    "MemberDescription",
    "NewTopic",
    "TopicsNotReady",
    "alter_configs",
    "commit_offsets",
    "create_partitions",
    "create_topics",
    "delete_groups",
    "delete_records",
    "delete_topics",
    "describe_cluster",
    "describe_configs",
    "describe_groups",
    "fetch_committed_offsets",
    "list_groups",
]

_T = TypeVar("_T")

#: Default seconds for the broker-side ``timeout_ms`` of topic changes (Kafka's admin default).
DEFAULT_TIMEOUT: Final = 30.0

# Error codes that mean "ask again, elsewhere or later" for a group request.
_COORDINATOR_LOAD_IN_PROGRESS: Final = 14
_COORDINATOR_NOT_AVAILABLE: Final = 15
_NOT_COORDINATOR: Final = 16
_COORDINATOR_CODES: Final = frozenset(
    {_COORDINATOR_LOAD_IN_PROGRESS, _COORDINATOR_NOT_AVAILABLE, _NOT_COORDINATOR}
)
#: A transactional commit is pending for an offset; the coordinator wants us to ask again.
_UNSTABLE_OFFSET_COMMIT: Final = 88
_NOT_CONTROLLER: Final = 41
_UNKNOWN_TOPIC_OR_PARTITION: Final = 3
#: LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER: a partition request must go to the new leader.
_LEADER_MOVED_CODES: Final = frozenset({5, 6})
_UNKNOWN_TOPIC_ID: Final = 100

_BACKOFF_START: Final = 0.05
_BACKOFF_MAX: Final = 1.0
_POLL_MAX: Final = 0.5


# ---------------------------------------------------------------------------------- errors


class TopicsNotReady(BrodError, TimeoutError):
    """The brokers' metadata did not show a topic change within the timeout.

    Raised by :func:`create_topics`, :func:`delete_topics` and :func:`create_partitions` when
    they wait (``wait=True``): the controller accepted the change, but some broker did not
    yet see every partition with a leader (or still knew a deleted topic). Usually a sign of
    an overloaded or partly unavailable cluster; waiting longer may be enough.

    Attributes:
        problems: For each topic not ready, what was wrong (``"broker 2 sees no leader for
            partitions [1]"``).
    """

    retriable = True

    def __init__(self, problems: Mapping[str, str], timeout: float) -> None:
        listed = "; ".join(f"{topic}: {problem}" for topic, problem in problems.items())
        super().__init__(f"not ready after {timeout:g}s: {listed}")
        self.problems = dict(problems)
        self.timeout = timeout

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.problems, self.timeout))


def _raise_collected(errors: Sequence[BrodError], what: str, total: int) -> None:
    """Raise nothing, the one error, or a group of them (see the module's docs)."""
    if not errors:
        return
    if len(errors) == 1:
        raise errors[0]
    raise ExceptionGroup(f"{what}: {len(errors)} of {total} failed", list(errors))


class _Retry:
    """A deadline and an exponential backoff, for the bounded retries of this module."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self._delay = _BACKOFF_START

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    async def pause(self, cap: float = _BACKOFF_MAX) -> None:
        await trio.sleep(min(self._delay, max(0.0, self.deadline - time.monotonic())))
        self._delay = min(self._delay * 2, cap)


# ---------------------------------------------------------------------------------- topics


@dataclasses.dataclass(frozen=True, slots=True)
class NewTopic:
    """A topic for :func:`create_topics`.

    Args:
        name: The topic name (1-249 of ``[A-Za-z0-9._-]``; the broker checks).
        num_partitions: How many partitions; -1 for the broker's ``num.partitions``.
        replication_factor: Replicas per partition; -1 for the broker's
            ``default.replication.factor``.
        configs: Topic settings, e.g. ``{"cleanup.policy": "compact"}``.
        assignments: Place each partition yourself: partition number to the broker ids of
            its replicas, the first being the preferred leader. Then ``num_partitions`` and
            ``replication_factor`` must stay -1.

    Raises:
        ValueError, TypeError: A field is invalid; the message names it.
    """

    name: str
    num_partitions: int = -1
    replication_factor: int = -1
    configs: Mapping[str, str] = dataclasses.field(default_factory=dict)
    assignments: Mapping[int, Sequence[int]] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"NewTopic: name must be a non-empty str, not {self.name!r}")
        for field, value in (
            ("num_partitions", self.num_partitions),
            ("replication_factor", self.replication_factor),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"NewTopic({self.name!r}): {field} must be an int, not {value!r}")
            if value == 0 or value < -1:
                raise ValueError(
                    f"NewTopic({self.name!r}): {field} must be positive, or -1 for the "
                    f"broker's default, not {value!r}"
                )
        if self.replication_factor > 0x7FFF:
            raise ValueError(f"NewTopic({self.name!r}): replication_factor is over 32767")
        for config, setting in self.configs.items():
            if not isinstance(config, str) or not isinstance(setting, str):
                raise TypeError(
                    f"NewTopic({self.name!r}): configs must map str to str, not "
                    f"{config!r}: {setting!r}"
                )
        if self.assignments is not None:
            if self.num_partitions != -1 or self.replication_factor != -1:
                raise ValueError(
                    f"NewTopic({self.name!r}): with assignments, leave num_partitions and "
                    "replication_factor at -1"
                )
            if not self.assignments:
                raise ValueError(f"NewTopic({self.name!r}): assignments is empty")
            for partition, brokers in self.assignments.items():
                if not isinstance(partition, int) or partition < 0:
                    raise ValueError(
                        f"NewTopic({self.name!r}): assignments: bad partition {partition!r}"
                    )
                if not brokers or not all(isinstance(b, int) for b in brokers):
                    raise ValueError(
                        f"NewTopic({self.name!r}): assignments[{partition}] must be a "
                        f"non-empty list of broker ids, not {brokers!r}"
                    )

    @property
    def _expected_partitions(self) -> int | None:
        if self.assignments is not None:
            return len(self.assignments)
        return self.num_partitions if self.num_partitions > 0 else None


def _check_names(names: Iterable[str], what: str) -> list[str]:
    if isinstance(names, str):
        raise TypeError(f"{what} must be a sequence of names, not a str")
    result = list(names)
    for name in result:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{what}: {name!r} is not a name")
    if len(set(result)) != len(result):
        raise ValueError(f"{what}: a name is given twice: {result!r}")
    return result


async def _controller_connection(client: Client) -> Connection:
    """The connection to the controller the metadata names, or to any broker.

    With KRaft, metadata names some live broker as "controller" and every broker forwards
    topic changes to the real (quorum) controller; with ZooKeeper clusters it is the
    real one. Either way it is where the Java admin client sends topic changes.
    """
    metadata = await client.get_metadata([])
    broker = metadata.brokers.get(metadata.controller_id)
    if broker is None:
        return await client.pool.any_connection()
    return await client.get_connection(broker.host, broker.port)


async def _to_controller(
    client: Client,
    names: Sequence[str],
    timeout: float,  # noqa: ASYNC109 (sent to the broker as timeout_ms)
    send: Callable[[Connection, list[str]], Awaitable[Mapping[str, KafkaError | None]]],
) -> dict[str, KafkaError | None]:
    """Send a topic change for ``names`` to the controller; retry what must go elsewhere.

    ``send`` makes and sends one request and returns each name's outcome. Lost connections
    and NOT_CONTROLLER answers are retried (for those names only) until ``timeout`` plus the
    client's ``request_timeout``.
    """
    retry = _Retry(timeout + client.config.request_timeout)
    pending = list(names)
    outcome: dict[str, KafkaError | None] = {}
    while True:
        try:
            connection = await _controller_connection(client)
            answers = await send(connection, pending)
        except BrokerConnectionError as exc:
            if not exc.retriable or retry.expired():
                raise
            await retry.pause()
            continue
        again = []
        for name in pending:
            answer = answers.get(
                name, KafkaError("the controller did not answer for it", topic=name)
            )
            if answer is not None and answer.code == _NOT_CONTROLLER and not retry.expired():
                again.append(name)
            else:
                outcome[name] = answer
        if not again:
            return outcome
        pending = again
        await retry.pause()


async def create_topics(
    client: Client,
    topics: Sequence[NewTopic],
    *,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 (sent to the broker as timeout_ms)
    validate_only: bool = False,
    wait: bool = True,
) -> None:
    """Create topics (Kafka's CreateTopics, sent to the controller).

    Args:
        client: An open client.
        topics: What to create.
        timeout: Seconds the controller may take; then again the most to wait for the
            brokers to show leaders.
        validate_only: Only check that the topics could be created; create nothing.
        wait: Return only once every broker's metadata shows each new topic with a leader
            for every partition, so producing to it at once works everywhere. Off, the
            call returns when the controller has accepted the topics.

    Raises:
        TopicAlreadyExistsError: A topic exists already (for that topic; see the module's
            docs for several failures). Other :class:`~trio_brod.KafkaError` subclasses for
            other refusals: InvalidReplicationFactorError, InvalidConfigError, ...
        TopicsNotReady: ``wait`` and the brokers did not show the topics in time.
        UnsupportedVersion: A broker default (-1) was asked of a broker older than 2.4.
        ValueError, TypeError: ``topics`` is not a sequence of distinct NewTopic.
    """
    topics = list(topics)
    for topic in topics:
        if not isinstance(topic, NewTopic):
            raise TypeError(f"create_topics takes NewTopic objects, not {topic!r}")
    _check_names([t.name for t in topics], "create_topics")
    if not topics:
        await trio.lowlevel.checkpoint()
        return
    by_name = {t.name: t for t in topics}
    # Partition counts the brokers reported, for topics created with the broker's default.
    counts: dict[str, int] = {}
    # Broker defaults (-1) need CreateTopics v4 (KIP-464).
    uses_defaults = any(
        t.assignments is None and -1 in (t.num_partitions, t.replication_factor) for t in topics
    )

    async def send(connection: Connection, names: list[str]) -> dict[str, KafkaError | None]:
        api = CreateTopicsRequest
        version = connection.best_version(api, min_version=4 if uses_defaults else None)
        request = api(
            topics=[_creatable_topic(by_name[name]) for name in names],
            timeout_ms=_ms(timeout),
            validate_only=validate_only,
        )
        response = await connection.request(
            request, version, timeout=timeout + client.config.request_timeout
        )
        answers: dict[str, KafkaError | None] = {}
        for result in response.topics:
            if result.error_code:
                answers[result.name] = for_code(result.error_code)(
                    result.error_message, topic=result.name
                )
            else:
                answers[result.name] = None
                if result.num_partitions > 0:
                    counts[result.name] = result.num_partitions
        return answers

    outcome = await _to_controller(client, list(by_name), timeout, send)
    errors = [error for error in outcome.values() if error is not None]
    if wait and not validate_only:
        created = {
            name: counts.get(name) or by_name[name]._expected_partitions
            for name, error in outcome.items()
            if error is None
        }
        await _wait_for_topics(client, created, timeout)
        await _refresh_cache(client, list(created))
    _raise_collected(errors, "create_topics", len(topics))


def _creatable_topic(topic: NewTopic) -> CreateTopicsRequest.CreatableTopic:
    api = CreateTopicsRequest
    return api.CreatableTopic(
        name=topic.name,
        num_partitions=topic.num_partitions,
        replication_factor=topic.replication_factor,
        assignments=[
            api.CreatableReplicaAssignment(partition_index=p, broker_ids=list(brokers))
            for p, brokers in (topic.assignments or {}).items()
        ],
        configs=[api.CreatableTopicConfig(name=k, value=v) for k, v in topic.configs.items()],
    )


async def delete_topics(
    client: Client,
    names: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 (sent to the broker as timeout_ms)
    wait: bool = True,
) -> None:
    """Delete topics (Kafka's DeleteTopics, sent to the controller).

    Args:
        client: An open client.
        names: The topics to delete.
        timeout: Seconds the controller may take; then again the most to wait for the
            brokers to forget the topics.
        wait: Return only once no broker's metadata knows the topics any more.

    Raises:
        UnknownTopicOrPartitionError: A topic does not exist.
        TopicDeletionDisabledError: The brokers have ``delete.topic.enable=false``.
        TopicsNotReady: ``wait`` and some broker still knew a topic after ``timeout``.
    """
    names = _check_names(names, "delete_topics")
    if not names:
        await trio.lowlevel.checkpoint()
        return

    async def send(connection: Connection, pending: list[str]) -> dict[str, KafkaError | None]:
        api = DeleteTopicsRequest
        version = connection.best_version(api)
        if version >= 6:
            # v6 (KIP-516) names topics by name or id, in a list of structs.
            request = api(
                topics=[api.DeleteTopicState(name=name) for name in pending],
                timeout_ms=_ms(timeout),
            )
        else:
            request = api(topic_names=pending, timeout_ms=_ms(timeout))
        response = await connection.request(
            request, version, timeout=timeout + client.config.request_timeout
        )
        answers: dict[str, KafkaError | None] = {}
        for result in response.responses:
            name = result.name
            if name is None:  # only when deleting by id, which we do not
                continue
            answers[name] = (
                for_code(result.error_code)(result.error_message, topic=name)
                if result.error_code
                else None
            )
        return answers

    outcome = await _to_controller(client, names, timeout, send)
    if wait:
        gone: dict[str, int | None] = {name: 0 for name, error in outcome.items() if error is None}
        await _wait_for_topics(client, gone, timeout)
        await _refresh_cache(client, list(gone))
    _raise_collected(
        [error for error in outcome.values() if error is not None], "delete_topics", len(names)
    )


async def create_partitions(
    client: Client,
    new_totals: Mapping[str, int],
    *,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 (sent to the broker as timeout_ms)
    validate_only: bool = False,
    wait: bool = True,
) -> None:
    """Add partitions to topics (Kafka's CreatePartitions, sent to the controller).

    Args:
        client: An open client.
        new_totals: For each topic, how many partitions it should have in all (more than
            now: partitions are never removed).
        timeout: Seconds the controller may take; then again the most to wait for the
            brokers to show leaders for the new partitions.
        validate_only: Only check that the change could be made.
        wait: Return only once every broker's metadata shows the new partitions with leaders.

    Raises:
        InvalidPartitionsError: A new total is not more than the current count.
        UnknownTopicOrPartitionError: A topic does not exist.
        TopicsNotReady: ``wait`` and the brokers did not show the partitions in time.
        ValueError, TypeError: A total is not a positive int.
    """
    totals = dict(new_totals)
    _check_names(list(totals), "create_partitions")
    for topic, total in totals.items():
        if isinstance(total, bool) or not isinstance(total, int) or total < 1:
            raise ValueError(f"create_partitions: {topic}: bad partition count {total!r}")
    if not totals:
        await trio.lowlevel.checkpoint()
        return

    async def send(connection: Connection, names: list[str]) -> dict[str, KafkaError | None]:
        api = CreatePartitionsRequest
        request = api(
            topics=[
                api.CreatePartitionsTopic(name=n, count=totals[n], assignments=None) for n in names
            ],
            timeout_ms=_ms(timeout),
            validate_only=validate_only,
        )
        response = await connection.request(
            request, connection.best_version(api), timeout=timeout + client.config.request_timeout
        )
        return {
            r.name: for_code(r.error_code)(r.error_message, topic=r.name) if r.error_code else None
            for r in response.results
        }

    outcome = await _to_controller(client, list(totals), timeout, send)
    if wait and not validate_only:
        grown = {name: totals[name] for name, error in outcome.items() if error is None}
        await _wait_for_topics(client, grown, timeout)
        await _refresh_cache(client, list(grown))
    _raise_collected(
        [error for error in outcome.values() if error is not None],
        "create_partitions",
        len(totals),
    )


async def _refresh_cache(client: Client, names: list[str]) -> None:
    """Make the client's metadata cache see the change (new partitions, a deleted topic).

    Never with auto-creation: asking about a topic just deleted must not create it again.
    """
    if names:
        await client.metadata.fetch(names, auto_create=False)


async def _wait_for_topics(
    client: Client,
    expected: Mapping[str, int | None],
    timeout: float,  # noqa: ASYNC109 (a bound on polling, not a deadline for the caller)
) -> None:
    """Poll every broker's metadata until the topics are as expected.

    ``expected`` maps a topic to its partition count (None: any count, at least one), or to
    0 for "must be gone". Each broker is asked directly, as brokers learn metadata from the
    controller each at its own pace, and the client may ask any of them later.
    """
    if not expected:
        return
    retry = _Retry(timeout)
    names = list(expected)
    while True:
        problems = await _topic_problems(client, names, expected)
        if not problems:
            return
        if retry.expired():
            raise TopicsNotReady(problems, timeout)
        await retry.pause(cap=_POLL_MAX)


async def _topic_problems(
    client: Client, names: list[str], expected: Mapping[str, int | None]
) -> dict[str, str]:
    problems: dict[str, str] = {}
    brokers = (await client.get_metadata([])).brokers
    for broker in brokers.values():
        try:
            connection = await client.get_connection(broker.host, broker.port)
            response = await connection.request(
                MetadataRequest(
                    topics=[MetadataRequest.MetadataRequestTopic(name=n) for n in names],
                    allow_auto_topic_creation=False,
                ),
                connection.best_version(MetadataRequest, min_version=1),
            )
        except BrokerConnectionError as exc:
            return dict.fromkeys(names, f"broker {broker.node_id} did not answer: {exc}")
        metadata = ClusterMetadata.from_response(response)
        for name in names:
            if name in problems:
                continue
            problem = _topic_problem(metadata, name, expected[name])
            if problem:
                problems[name] = f"broker {broker.node_id} {problem}"
    return problems


def _topic_problem(metadata: ClusterMetadata, name: str, count: int | None) -> str:
    topic = metadata.topics.get(name)
    code = topic.error_code if topic is not None else _UNKNOWN_TOPIC_OR_PARTITION
    if count == 0:
        if code in (_UNKNOWN_TOPIC_OR_PARTITION, _UNKNOWN_TOPIC_ID):
            return ""
        return "still knows the topic"
    if topic is None or code:
        return f"answers {for_code(code).name}" if code else "does not describe the topic"
    if count is not None and topic.partition_count != count:
        return f"knows {topic.partition_count} of {count} partitions"
    if not topic.partitions:
        return "knows no partitions"
    leaderless = sorted(p.partition for p in topic.partitions.values() if p.leader < 0)
    if leaderless:
        return f"sees no leader for partitions {leaderless}"
    return ""


def _ms(seconds: float) -> int:
    if not isinstance(seconds, (int, float)) or not 0 <= seconds < 2**31 / 1000:
        raise ValueError(f"timeout must be seconds between 0 and 2147483, not {seconds!r}")
    # Up, so that a short positive timeout is never 0 (do not wait); but not past a whole
    # millisecond that the float product misses by a hair (2.007 * 1000 = 2007.0000000000002).
    return math.ceil(round(seconds * 1000, 6))


# ---------------------------------------------------------------------------------- configs

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

    @property
    def _code(self) -> int:
        return _RESOURCE_CODES[self.type]

    def _context(self) -> dict[str, object]:
        if self.type == "topic":
            return {"topic": self.name}
        return {"resource": f"{self.type} {self.name or '(default)'}"}


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
    return await client.pool.any_connection()


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
        retry = _Retry(client.config.request_timeout)
        while True:
            try:
                answers.append(await send(connection, members))
                break
            except BrokerConnectionError as exc:
                if not exc.retriable or retry.expired():
                    raise
                await retry.pause()
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
        names = _check_names(names, "describe_configs names")

    async def send(connection: Connection, members: list[ConfigResource]) -> Any:
        api = DescribeConfigsRequest
        version = connection.best_version(api, min_version=3 if include_documentation else None)
        request = api(
            resources=[
                api.DescribeConfigsResource(
                    resource_type=r._code, resource_name=r.name, configuration_keys=names
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
                    for_code(answer.error_code)(answer.error_message, **resource._context())
                )
                continue
            result[resource] = {entry.name: _config_entry(entry) for entry in answer.configs}
    _raise_collected(errors, "describe_configs", len(wanted))
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
                    resource_type=r._code,
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
                    for_code(answer.error_code)(answer.error_message, **resource._context())
                )
    _raise_collected(errors, "alter_configs", len(ops))


# ---------------------------------------------------------------------------------- records


async def delete_records(
    client: Client,
    before: Mapping[tuple[str, int], int],
    *,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 (sent to the broker as timeout_ms)
) -> dict[tuple[str, int], int]:
    """Delete the records of partitions before an offset (Kafka's DeleteRecords).

    Each partition's log start moves up to the offset, so consumers starting at
    ``"earliest"`` begin there. Requests go to the partitions' leaders, one per leader;
    a leader that moved is followed.

    Args:
        client: An open client.
        before: For each ``(topic, partition)``, the first offset to keep; -1 for the high
            watermark (delete everything there is now).
        timeout: Seconds the leader may wait for its followers to catch up.

    Returns:
        Each partition's new low watermark (its first offset).

    Raises:
        OffsetOutOfRangeError: An offset is past the partition's high watermark.
        UnknownTopicOrPartitionError: No such topic or partition.
        PolicyViolationError: The topic is compacted (``cleanup.policy=compact`` only).
    """
    pending = dict(before)
    for key, offset in pending.items():
        if not (
            isinstance(key, tuple)
            and len(key) == 2
            and isinstance(key[0], str)
            and isinstance(key[1], int)
        ):
            raise TypeError(f"delete_records: keys must be (topic, partition), not {key!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < -1:
            raise ValueError(f"delete_records: {key[0]}[{key[1]}]: bad offset {offset!r}")
    total = len(pending)
    result: dict[tuple[str, int], int] = {}
    errors: list[BrodError] = []
    retry = _Retry(timeout + client.config.get_metadata_timeout)
    refresh = False
    while pending:
        by_leader: dict[str, tuple[Connection, list[tuple[str, int]]]] = {}
        again: dict[tuple[str, int], int] = {}
        for key in pending:
            try:
                # This waits for a leader itself (up to get_metadata_timeout): what it raises
                # is final.
                connection = await client.get_leader_connection(*key, refresh=refresh)
            except (KafkaError, NoLeader, BrokerConnectionError) as exc:
                errors.append(exc)
                continue
            by_leader.setdefault(connection.address, (connection, []))[1].append(key)
        for connection, keys in by_leader.values():
            try:
                answers = await _delete_records_on(connection, keys, pending, timeout, client)
            except BrokerConnectionError as exc:
                if not exc.retriable or retry.expired():
                    raise
                again.update((key, pending[key]) for key in keys)
                continue
            for key, (code, low) in answers.items():
                if not code:
                    result[key] = low
                    continue
                error = for_code(code)(topic=key[0], partition=key[1])
                if code in _LEADER_MOVED_CODES and not retry.expired():
                    again[key] = pending[key]
                else:
                    errors.append(error)
        pending = again
        if pending:
            # The leader moved (or its connection broke): look it up again.
            refresh = True
            await retry.pause()
    _raise_collected(errors, "delete_records", total)
    return result


async def _delete_records_on(
    connection: Connection,
    keys: list[tuple[str, int]],
    offsets: Mapping[tuple[str, int], int],
    timeout: float,  # noqa: ASYNC109 (sent to the broker as timeout_ms)
    client: Client,
) -> dict[tuple[str, int], tuple[int, int]]:
    api = DeleteRecordsRequest
    by_topic: dict[str, list[DeleteRecordsRequest.DeleteRecordsPartition]] = {}
    for topic, partition in keys:
        by_topic.setdefault(topic, []).append(
            api.DeleteRecordsPartition(partition_index=partition, offset=offsets[topic, partition])
        )
    request = api(
        topics=[api.DeleteRecordsTopic(name=t, partitions=ps) for t, ps in by_topic.items()],
        timeout_ms=_ms(timeout),
    )
    response = await connection.request(
        request, connection.best_version(api), timeout=timeout + client.config.request_timeout
    )
    return {
        (t.name, p.partition_index): (p.error_code, p.low_watermark)
        for t in response.topics
        for p in t.partitions
    }


# ---------------------------------------------------------------------------------- groups


@dataclasses.dataclass(frozen=True, slots=True)
class GroupListing:
    """A group as :func:`list_groups` finds it.

    Attributes:
        group_id: The group's id.
        protocol_type: ``"consumer"`` for Kafka consumers (and simple groups that only
            commit offsets show ``""``), ``"connect"`` for Kafka Connect ...
        state: ``"Stable"``, ``"Empty"``, ``"PreparingRebalance"`` ... from brokers 2.6+
            (ListGroups v4); None from older ones.
        type: ``"classic"`` or ``"consumer"`` (KIP-848) from brokers 3.8+; else None.
        coordinator_id: The node id of the broker coordinating the group.
    """

    group_id: str
    protocol_type: str
    state: str | None
    type: str | None
    coordinator_id: int


@dataclasses.dataclass(frozen=True, slots=True)
class MemberDescription:
    """A member of a group, as :func:`describe_groups` reports it.

    Attributes:
        member_id: The id the coordinator gave the member.
        group_instance_id: The static member id (KIP-345), if the member has one.
        client_id: The member's ``client.id``.
        client_host: The address the member connects from.
        assignment: For ``"consumer"`` groups, the partitions assigned to the member, by
            topic; None for other protocol types, or if the bytes could not be decoded.
        subscription: For ``"consumer"`` groups, the topics the member subscribes to; None
            otherwise.
        metadata: The member's raw protocol metadata (its subscription).
        raw_assignment: The member's raw assignment bytes.
    """

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    assignment: Mapping[str, tuple[int, ...]] | None
    subscription: tuple[str, ...] | None
    metadata: bytes
    raw_assignment: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class GroupDescription:
    """A consumer group, as :func:`describe_groups` reports it.

    Attributes:
        group_id: The group's id.
        state: ``"Stable"``, ``"Empty"``, ``"PreparingRebalance"``, ``"CompletingRebalance"``,
            or ``"Dead"`` for a group that does not exist.
        protocol_type: ``"consumer"`` for Kafka consumers; ``""`` for an empty group.
        protocol: The agreed protocol: the assignor (``"range"``, ``"cooperative-sticky"``)
            for consumer groups, while the group is stable.
        members: The members, while there are any.
        coordinator: The broker coordinating the group.
    """

    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: tuple[MemberDescription, ...]
    coordinator: BrokerMetadata


async def list_groups(client: Client) -> list[GroupListing]:
    """Every group in the cluster (Kafka's ListGroups, asked of every broker).

    Each broker knows the groups it coordinates, so all are asked, at the same time.

    Returns:
        The groups, sorted by id.

    Raises:
        KafkaError: A broker refused (e.g. ClusterAuthorizationFailedError), naming it.
        BrokerConnectionError: A broker could not be reached, within the client's
            ``request_timeout``.
    """
    brokers = list((await client.get_metadata([])).brokers.values())
    found: list[GroupListing] = []

    async def ask(broker: BrokerMetadata) -> None:
        retry = _Retry(client.config.request_timeout)
        while True:
            try:
                connection = await client.get_connection(broker.host, broker.port)
                response = await connection.request(
                    ListGroupsRequest(), connection.best_version(ListGroupsRequest)
                )
                code = response.error_code
                if not code:
                    break
                error: BrodError = for_code(code)(node_id=broker.node_id)
            except BrokerConnectionError as exc:
                error = exc
            if not error.retriable or retry.expired():
                raise error
            await retry.pause()
        found.extend(
            GroupListing(
                group_id=g.group_id,
                protocol_type=g.protocol_type,
                state=g.group_state or None,
                type=g.group_type or None,
                coordinator_id=broker.node_id,
            )
            for g in response.groups
        )

    async with trio.open_nursery() as nursery:
        for broker in brokers:
            nursery.start_soon(ask, broker)
    return sorted(found, key=lambda g: g.group_id)


async def _per_group(
    client: Client,
    group_ids: Sequence[str],
    send: Callable[[Connection, list[str]], Awaitable[Mapping[str, _T | KafkaError]]],
) -> tuple[dict[str, tuple[_T, BrokerMetadata]], list[BrodError]]:
    """Send a request for groups to their coordinators; retry what the coordinators say.

    ``send`` asks one coordinator about its groups and returns, per group, a result or the
    error the coordinator answered. Groups whose coordinator moved or is loading, and
    lost connections, are retried (after finding the coordinator again) until the client's
    ``request_timeout``. Returns the results (with the coordinator) and the other errors.
    """
    retry = _Retry(client.config.request_timeout)
    pending = list(group_ids)
    results: dict[str, tuple[_T, BrokerMetadata]] = {}
    errors: list[BrodError] = []
    while pending:
        again: dict[str, BrodError] = {}
        by_coordinator: dict[BrokerMetadata, list[str]] = {}
        for group_id in pending:
            try:
                coordinator = await client.get_group_coordinator(group_id)
            except KafkaError as exc:
                errors.append(exc)
                continue
            by_coordinator.setdefault(coordinator, []).append(group_id)
        for coordinator, ids in by_coordinator.items():
            try:
                connection = await client.get_connection(coordinator.host, coordinator.port)
                answers = await send(connection, ids)
            except BrokerConnectionError as exc:
                if not exc.retriable:
                    raise
                again.update((group_id, exc) for group_id in ids)
                continue
            for group_id in ids:
                answer = answers.get(group_id)
                if answer is None:
                    errors.append(
                        KafkaError("the coordinator did not answer for it", group_id=group_id)
                    )
                elif isinstance(answer, KafkaError):
                    if answer.code in _COORDINATOR_CODES or answer.code == _UNSTABLE_OFFSET_COMMIT:
                        again[group_id] = answer
                    else:
                        errors.append(answer)
                else:
                    results[group_id] = (answer, coordinator)
        if again and retry.expired():
            for error in again.values():
                if isinstance(error, KafkaError):
                    errors.append(error)
                else:
                    raise error
            break
        pending = list(again)
        if pending:
            await retry.pause()
    return results, errors


async def describe_groups(client: Client, group_ids: Sequence[str]) -> dict[str, GroupDescription]:
    """Describe groups: state, protocol, members and their assignments (DescribeGroups).

    Asks each group's coordinator. Members' assignments of ``"consumer"`` groups are decoded
    (:attr:`MemberDescription.assignment`).

    DescribeGroups knows only classic groups. A group of the KIP-848 consumer protocol
    (``group.protocol=consumer``) comes back as ``"Dead"`` from Kafka 4 (checked with 4.3),
    although it lives: :func:`list_groups` shows it, with ``type="consumer"``. Kafka's
    ConsumerGroupDescribe API describes such groups; trio-brod does not use it yet.

    Returns:
        Each group's description, by id. A group that does not exist is ``"Dead"``.

    Raises:
        GroupAuthorizationFailedError, GroupIdNotFoundError: For that group (and other
            :class:`~trio_brod.KafkaError` subclasses for other refusals).
    """
    ids = _check_names(group_ids, "describe_groups")

    async def send(connection: Connection, members: list[str]) -> dict[str, Any]:
        api = DescribeGroupsRequest
        response = await connection.request(api(groups=members), connection.best_version(api))
        return {
            g.group_id: for_code(g.error_code)(group_id=g.group_id) if g.error_code else g
            for g in response.groups
        }

    results, errors = await _per_group(client, ids, send)
    _raise_collected(errors, "describe_groups", len(ids))
    return {
        group_id: GroupDescription(
            group_id=g.group_id,
            state=g.group_state,
            protocol_type=g.protocol_type,
            protocol=g.protocol_data,
            members=tuple(_member(m, g.protocol_type) for m in g.members),
            coordinator=coordinator,
        )
        for group_id, (g, coordinator) in results.items()
    }


def _member(member: Any, protocol_type: str) -> MemberDescription:
    assignment = subscription = None
    if protocol_type == "consumer":
        decoded = _decode_versioned(ConsumerProtocolAssignment, member.member_assignment)
        if decoded is not None:
            assignment = {tp.topic: tuple(tp.partitions) for tp in decoded.assigned_partitions}
        joined = _decode_versioned(ConsumerProtocolSubscription, member.member_metadata)
        if joined is not None:
            subscription = tuple(joined.topics)
    return MemberDescription(
        member_id=member.member_id,
        group_instance_id=member.group_instance_id,
        client_id=member.client_id,
        client_host=member.client_host,
        assignment=assignment,
        subscription=subscription,
        metadata=member.member_metadata,
        raw_assignment=member.member_assignment,
    )


_M = TypeVar("_M", ConsumerProtocolAssignment, ConsumerProtocolSubscription)


def _decode_versioned(cls: type[_M], data: bytes) -> _M | None:
    """Decode consumer protocol bytes: an int16 version, then the message in that version.

    The generated classes leave the version prefix to the caller. A member newer than this
    code writes a higher version; its known fields come first, so it is read as our highest
    version, ignoring what follows. No bytes (a member that has not synced yet) is an
    empty assignment. Returns None for bytes that are not the consumer protocol.
    """
    if not data:
        return cls()
    if len(data) < 2:
        return None
    version = int.from_bytes(data[:2], "big", signed=True)
    if version < 0:
        return None
    try:
        message, _end = cls.decode_from(data, 2, min(version, cls.MAX_VERSION))
    except DecodeError:
        return None
    return message


async def delete_groups(client: Client, group_ids: Sequence[str]) -> None:
    """Delete groups and their committed offsets (Kafka's DeleteGroups, to the coordinators).

    Raises:
        NonEmptyGroupError: A group still has members.
        GroupIdNotFoundError: A group does not exist.
    """
    ids = _check_names(group_ids, "delete_groups")

    async def send(connection: Connection, members: list[str]) -> dict[str, Any]:
        api = DeleteGroupsRequest
        response = await connection.request(api(groups_names=members), connection.best_version(api))
        return {
            r.group_id: for_code(r.error_code)(group_id=r.group_id) if r.error_code else True
            for r in response.results
        }

    _results, errors = await _per_group(client, ids, send)
    _raise_collected(errors, "delete_groups", len(ids))


# ---------------------------------------------------------------------------------- offsets


@dataclasses.dataclass(frozen=True, slots=True)
class CommittedOffset:
    """An offset committed for a group.

    Attributes:
        offset: The committed offset: the next message the group will consume.
        metadata: The string committed with it.
        leader_epoch: The leader epoch committed with it (KIP-320), if any.
    """

    offset: int
    metadata: str = ""
    leader_epoch: int | None = None


async def fetch_committed_offsets(
    client: Client, group_id: str, topics: Sequence[str] | None = None
) -> dict[tuple[str, int], CommittedOffset]:
    """A group's committed offsets (Kafka's OffsetFetch, to the group's coordinator).

    Args:
        client: An open client.
        group_id: The group.
        topics: Only these topics (all their partitions); None for every topic the group
            has committed offsets for.

    Returns:
        The committed offset of each ``(topic, partition)`` that has one. Partitions
        without a commit are left out.

    Raises:
        GroupAuthorizationFailedError, UnknownTopicOrPartitionError: The coordinator
            refused (or another :class:`~trio_brod.KafkaError` subclass).
    """
    if not isinstance(group_id, str) or not group_id:
        raise TypeError(f"group_id must be a non-empty str, not {group_id!r}")
    wanted: dict[str, list[int]] | None = None
    if topics is not None:
        wanted = {}
        for topic in _check_names(topics, "fetch_committed_offsets topics"):
            wanted[topic] = list(range(await client.get_partitions_count_safe(topic)))

    async def send(connection: Connection, ids: list[str]) -> dict[str, Any]:
        api = OffsetFetchRequest
        # v1 is the first that reads offsets from Kafka (v0: ZooKeeper); "all topics" is v2+.
        version = connection.best_version(api, min_version=1 if wanted is not None else 2)
        if version >= 8:
            request = api(
                groups=[
                    api.OffsetFetchRequestGroup(
                        group_id=group_id,
                        topics=None
                        if wanted is None
                        else [
                            api.OffsetFetchRequestTopics(name=t, partition_indexes=ps)
                            for t, ps in wanted.items()
                        ],
                    )
                ]
            )
        else:
            request = api(
                group_id=group_id,
                topics=None
                if wanted is None
                else [
                    api.OffsetFetchRequestTopic(name=t, partition_indexes=ps)
                    for t, ps in wanted.items()
                ],
            )
        response = await connection.request(request, version)
        if version >= 8:
            (group,) = response.groups
            code, answer_topics = group.error_code, group.topics
        else:
            code, answer_topics = response.error_code, response.topics
        if code:
            return {group_id: for_code(code)(group_id=group_id)}
        offsets: dict[tuple[str, int], CommittedOffset] = {}
        for t in answer_topics:
            for p in t.partitions:
                if p.error_code:
                    return {
                        group_id: for_code(p.error_code)(
                            group_id=group_id, topic=t.name, partition=p.partition_index
                        )
                    }
                if p.committed_offset >= 0:
                    offsets[t.name, p.partition_index] = CommittedOffset(
                        p.committed_offset,
                        p.metadata or "",
                        p.committed_leader_epoch if p.committed_leader_epoch >= 0 else None,
                    )
        return {group_id: offsets}

    results, errors = await _per_group(client, [group_id], send)
    _raise_collected(errors, "fetch_committed_offsets", 1)
    offsets: dict[tuple[str, int], CommittedOffset] = results[group_id][0]
    return offsets


async def commit_offsets(
    client: Client,
    group_id: str,
    offsets: Mapping[tuple[str, int], int],
    metadata: str = "",
) -> None:
    """Commit offsets for a group that has no members (Kafka's OffsetCommit).

    For tools and for consumers that assign partitions themselves and keep their positions
    in Kafka (brod's ``commit_offsets`` for non-members; Kafka's "simple" consumer groups).
    The commit carries no member id or generation, so the coordinator refuses it while the
    group has active members (UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION): stop the members,
    or commit through the group subscriber instead.

    Args:
        client: An open client.
        group_id: The group.
        offsets: For each ``(topic, partition)``, the offset to commit: the next message
            the group should consume.
        metadata: A string stored with each offset.

    Raises:
        UnknownMemberIdError, IllegalGenerationError: The group has active members.
        UnknownTopicOrPartitionError: A partition does not exist.
        OffsetMetadataTooLargeError: ``metadata`` is over the broker's limit.
    """
    if not isinstance(group_id, str) or not group_id:
        raise TypeError(f"group_id must be a non-empty str, not {group_id!r}")
    by_topic: dict[str, dict[int, int]] = {}
    for key, offset in offsets.items():
        if not (
            isinstance(key, tuple)
            and len(key) == 2
            and isinstance(key[0], str)
            and isinstance(key[1], int)
        ):
            raise TypeError(f"commit_offsets: keys must be (topic, partition), not {key!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"commit_offsets: {key[0]}[{key[1]}]: bad offset {offset!r}")
        by_topic.setdefault(key[0], {})[key[1]] = offset
    if not by_topic:
        await trio.lowlevel.checkpoint()
        return

    async def send(connection: Connection, ids: list[str]) -> dict[str, Any]:
        api = OffsetCommitRequest
        request = api(
            group_id=group_id,
            # generation -1 and no member id: a commit from outside the group's membership.
            generation_id_or_member_epoch=-1,
            member_id="",
            topics=[
                api.OffsetCommitRequestTopic(
                    name=topic,
                    partitions=[
                        api.OffsetCommitRequestPartition(
                            partition_index=p, committed_offset=o, committed_metadata=metadata
                        )
                        for p, o in partitions.items()
                    ],
                )
                for topic, partitions in by_topic.items()
            ],
        )
        response = await connection.request(request, connection.best_version(api, min_version=2))
        failed = [
            for_code(p.error_code)(group_id=group_id, topic=t.name, partition=p.partition_index)
            for t in response.topics
            for p in t.partitions
            if p.error_code
        ]
        for error in failed:
            if error.code in _COORDINATOR_CODES:
                return {group_id: error}  # the whole commit goes to the new coordinator
        return {group_id: failed}

    results, errors = await _per_group(client, [group_id], send)
    _raise_collected(errors, "commit_offsets", 1)
    failed: list[KafkaError] = results[group_id][0]
    _raise_collected(failed, "commit_offsets", len(offsets))


# ---------------------------------------------------------------------------------- cluster


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterDescription:
    """The cluster, as :func:`describe_cluster` reports it.

    Attributes:
        cluster_id: The cluster's id.
        controller_id: The node id the cluster names as its controller (with KRaft, a
            broker that forwards to the quorum's active controller).
        brokers: The live brokers, by node id.
    """

    cluster_id: str | None
    controller_id: int
    brokers: Mapping[int, BrokerMetadata]


async def describe_cluster(client: Client) -> ClusterDescription:
    """The cluster's id, controller and brokers (Kafka's DescribeCluster).

    Brokers older than 2.8 do not have DescribeCluster; then the answer comes from a
    Metadata request, which carries the same facts.
    """
    connection = await client.pool.any_connection()
    try:
        version = connection.best_version(DescribeClusterRequest)
    except UnsupportedVersion:
        metadata = await client.get_metadata([])
        return ClusterDescription(metadata.cluster_id, metadata.controller_id, metadata.brokers)
    response = await connection.request(DescribeClusterRequest(), version)
    if response.error_code:
        raise for_code(response.error_code)(response.error_message)
    return ClusterDescription(
        cluster_id=response.cluster_id,
        controller_id=response.controller_id,
        brokers={
            b.broker_id: BrokerMetadata(b.broker_id, b.host, b.port, b.rack)
            for b in response.brokers
        },
    )
