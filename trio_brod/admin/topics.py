"""Topics: create and delete them, add partitions (Kafka's CreateTopics, DeleteTopics and
CreatePartitions, sent to the controller).

A topic change is done when the controller accepts it, but each broker learns of it at its
own pace. With ``wait=True`` (the default) the calls poll every broker's metadata until all
of them show the change, so that what comes next (producing to a new topic, creating a
deleted one again) works on whichever broker the client asks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence

import trio

from trio_brod._backoff import Retry
from trio_brod._exceptions import BrokerConnectionError
from trio_brod._metadata import ClusterMetadata
from trio_brod._net import Connection
from trio_brod.admin._cluster_access import any_connection, refresh_metadata
from trio_brod.admin._common import (
    DEFAULT_TIMEOUT,
    POLL_MAX,
    check_names,
    ms,
    raise_collected,
)
from trio_brod.client import Client
from trio_brod.protocol import (
    CreatePartitionsRequest,
    CreateTopicsRequest,
    DeleteTopicsRequest,
    MetadataRequest,
)
from trio_brod.protocol.errors import (
    BrodError,
    KafkaError,
    NotControllerError,
    UnknownTopicIdError,
    UnknownTopicOrPartitionError,
    for_code,
)

__all__ = [
    "NewTopic",
    "TopicsNotReady",
    "create_partitions",
    "create_topics",
    "delete_topics",
]


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


def _expected_partitions(topic: NewTopic) -> int | None:
    """How many partitions ``topic`` will have, if it says (not the broker's default)."""
    if topic.assignments is not None:
        return len(topic.assignments)
    return topic.num_partitions if topic.num_partitions > 0 else None


async def _controller_connection(client: Client) -> Connection:
    """The connection to the controller the metadata names, or to any broker.

    With KRaft, metadata names some live broker as "controller" and every broker forwards
    topic changes to the real (quorum) controller; with ZooKeeper clusters it is the
    real one. Either way it is where the Java admin client sends topic changes.
    """
    metadata = await client.get_metadata([])
    broker = metadata.brokers.get(metadata.controller_id)
    if broker is None:
        return await any_connection(client)
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
    retry = Retry(timeout + client.config.request_timeout)
    pending = list(names)
    outcome: dict[str, KafkaError | None] = {}
    while True:
        try:
            connection = await _controller_connection(client)
            answers = await send(connection, pending)
        except BrokerConnectionError as exc:
            if not exc.retriable or retry.expired:
                raise
            await retry.wait()
            continue
        again = []
        for name in pending:
            answer = answers.get(
                name, KafkaError("the controller did not answer for it", topic=name)
            )
            if isinstance(answer, NotControllerError) and not retry.expired:
                again.append(name)
            else:
                outcome[name] = answer
        if not again:
            return outcome
        pending = again
        await retry.wait()


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
    check_names([t.name for t in topics], "create_topics")
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
            timeout_ms=ms(timeout),
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
            name: counts.get(name) or _expected_partitions(by_name[name])
            for name, error in outcome.items()
            if error is None
        }
        await _wait_for_topics(client, created, timeout)
        await _refresh_cache(client, list(created))
    raise_collected(errors, "create_topics", len(topics))


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
    names = check_names(names, "delete_topics")
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
                timeout_ms=ms(timeout),
            )
        else:
            request = api(topic_names=pending, timeout_ms=ms(timeout))
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
    raise_collected(
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
    check_names(list(totals), "create_partitions")
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
            timeout_ms=ms(timeout),
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
    raise_collected(
        [error for error in outcome.values() if error is not None],
        "create_partitions",
        len(totals),
    )


async def _refresh_cache(client: Client, names: list[str]) -> None:
    """Make the client's metadata cache see the change (new partitions, a deleted topic).

    Never with auto-creation: asking about a topic just deleted must not create it again.
    """
    if names:
        await refresh_metadata(client, names, auto_create=False)


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
    retry = Retry(timeout, cap=POLL_MAX)
    names = list(expected)
    while True:
        problems = await _topic_problems(client, names, expected)
        if not problems:
            return
        if retry.expired:
            raise TopicsNotReady(problems, timeout)
        await retry.wait()


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
    code = topic.error_code if topic is not None else UnknownTopicOrPartitionError.code
    if count == 0:
        if code in (UnknownTopicOrPartitionError.code, UnknownTopicIdError.code):
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
