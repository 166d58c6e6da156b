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

Modules
-------

Everything is importable from :mod:`trio_brod.admin` itself; the modules group it by job,
as franz-go's ``kadm`` does: ``topics`` (create and delete topics, add partitions),
``configs`` (describe and change configs), ``records`` (delete records), ``groups`` (list,
describe and delete groups; fetch and commit their offsets) and ``cluster`` (describe the
cluster).
"""

from __future__ import annotations

from trio_brod.admin.cluster import ClusterDescription, describe_cluster
from trio_brod.admin.configs import (
    AlterConfigOp,
    ConfigEntry,
    ConfigResource,
    ConfigResourceType,
    ConfigSynonym,
    alter_configs,
    describe_configs,
)
from trio_brod.admin.consumer_groups import (
    ConsumerGroupDescription,
    ConsumerMemberDescription,
    describe_consumer_groups,
)
from trio_brod.admin.groups import (
    CommittedOffset,
    GroupDescription,
    GroupListing,
    MemberDescription,
    commit_offsets,
    delete_groups,
    describe_groups,
    fetch_committed_offsets,
    list_groups,
)
from trio_brod.admin.records import delete_records
from trio_brod.admin.topics import (
    NewTopic,
    TopicsNotReady,
    create_partitions,
    create_topics,
    delete_topics,
)

__all__ = [
    "AlterConfigOp",
    "ClusterDescription",
    "CommittedOffset",
    "ConfigEntry",
    "ConfigResource",
    "ConfigResourceType",
    "ConfigSynonym",
    "ConsumerGroupDescription",
    "ConsumerMemberDescription",
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
    "describe_consumer_groups",
    "describe_groups",
    "fetch_committed_offsets",
    "list_groups",
]
