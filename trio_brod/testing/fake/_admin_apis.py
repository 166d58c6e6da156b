"""The fake Kafka's cluster-level APIs: ApiVersions, Metadata, DescribeCluster, topic
administration, DescribeConfigs and FindCoordinator (the group coordinator's APIs, the group
listings included, are in :mod:`._group_apis`).

Each handler turns a decoded request into a response from the :class:`ClusterModel`; the
model decides, with Kafka's error codes, and the handler only translates.
"""

from __future__ import annotations

from typing import Any

from trio_brod.protocol import (
    ApiVersionsResponse,
    CreatePartitionsRequest,
    CreatePartitionsResponse,
    CreateTopicsRequest,
    CreateTopicsResponse,
    DeleteTopicsRequest,
    DeleteTopicsResponse,
    DescribeClusterRequest,
    DescribeClusterResponse,
    DescribeConfigsRequest,
    DescribeConfigsResponse,
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
    MetadataRequest,
    MetadataResponse,
)
from trio_brod.protocol.errors import (
    CoordinatorNotAvailableError,
    InvalidRequestError,
    LeaderNotAvailableError,
    MismatchedEndpointTypeError,
    UnknownTopicIdError,
    UnknownTopicOrPartitionError,
)
from trio_brod.testing.fake._model import TOPIC_DEFAULTS, ModelError, Topic
from trio_brod.testing.fake._runtime import Api, FakeCluster, RequestContext

__all__ = ["install_admin_apis"]

_TOPIC_RESOURCE = 2
_BROKER_RESOURCE = 4
_BROKER_ENDPOINTS = 1
# DescribeConfigs config sources: 1 topic config, 5 default config.
_SOURCE_TOPIC = 1
_SOURCE_DEFAULT = 5
_UUID_ZERO = MetadataResponse.MetadataResponseTopic().topic_id


def install_admin_apis(cluster: FakeCluster) -> None:
    """Register the cluster-level APIs (with the versions this fake implements)."""
    for api in (
        Api(18, 0, 4, api_versions),
        Api(3, 0, 12, metadata, partial_failures=True),
        Api(60, 0, 1, describe_cluster),
        Api(19, 2, 7, create_topics),
        Api(20, 1, 6, delete_topics),
        Api(37, 0, 3, create_partitions),
        Api(32, 1, 4, describe_configs),
        Api(44, 0, 1, incremental_alter_configs),
        Api(10, 0, 6, find_coordinator),
    ):
        cluster.register(api)


def api_versions_body(cluster: FakeCluster, error_code: int = 0) -> ApiVersionsResponse:
    """The ApiVersions answer: exactly the APIs and versions registered."""
    return ApiVersionsResponse(
        error_code=error_code,
        api_keys=[
            ApiVersionsResponse.ApiVersion(
                api_key=api.key, min_version=api.min_version, max_version=api.max_version
            )
            for api in sorted(cluster.apis.values(), key=lambda a: a.key)
        ],
    )


async def api_versions(ctx: RequestContext, request: Any) -> ApiVersionsResponse:
    """ApiVersions: what the fake implements."""
    return api_versions_body(ctx.cluster)


async def metadata(ctx: RequestContext, request: MetadataRequest) -> MetadataResponse:
    """Metadata: live brokers, and the asked topics (all if None; v0: all if empty)."""
    model = ctx.model
    response = MetadataResponse(
        brokers=[
            MetadataResponse.MetadataResponseBroker(node_id=node, host=host, port=port)
            for node, (host, port) in sorted(ctx.cluster.addresses.items())
            if node in model.live
        ],
        cluster_id=model.cluster_id,
        controller_id=model.controller_id,
    )
    asked = request.topics
    if asked is None or (ctx.version == 0 and not asked):
        response.topics = [_topic_metadata(ctx, t) for t in model.topics.values()]
        return response
    allow_create = request.allow_auto_topic_creation if ctx.version >= 4 else True
    for entry in asked:
        name = entry.name
        topic = None
        if name:
            topic = model.topics.get(name)
            if topic is None and allow_create and ctx.cluster.auto_create_topics:
                try:
                    model.create_topic(name)
                except ModelError as exc:
                    response.topics.append(
                        MetadataResponse.MetadataResponseTopic(error_code=exc.error.code, name=name)
                    )
                    continue
                ctx.cluster.data_changed()
                # Kafka answers LEADER_NOT_AVAILABLE while a new topic's leaders are elected;
                # here they are elected at once, so the topic is answered whole.
                topic = model.topics[name]
        elif entry.topic_id != _UUID_ZERO:
            topic = model.topic_by_id(entry.topic_id)
        if topic is None:
            error = UnknownTopicOrPartitionError if name else UnknownTopicIdError
            response.topics.append(
                MetadataResponse.MetadataResponseTopic(
                    error_code=error.code, name=name, topic_id=entry.topic_id
                )
            )
            continue
        response.topics.append(_topic_metadata(ctx, topic))
    return response


async def describe_cluster(
    ctx: RequestContext, request: DescribeClusterRequest
) -> DescribeClusterResponse:
    """DescribeCluster: the live brokers, the controller and the cluster id (brokers'
    listeners only: asking them for controllers is MISMATCHED_ENDPOINT_TYPE, as in Kafka).
    """
    model = ctx.model
    if request.endpoint_type != _BROKER_ENDPOINTS:
        return DescribeClusterResponse(
            error_code=MismatchedEndpointTypeError.code,
            error_message="the request was sent to a broker, not a controller",
        )
    return DescribeClusterResponse(
        cluster_id=model.cluster_id,
        controller_id=model.controller_id,
        brokers=[
            DescribeClusterResponse.DescribeClusterBroker(broker_id=node, host=host, port=port)
            for node, (host, port) in sorted(ctx.cluster.addresses.items())
            if node in model.live
        ],
    )


def _topic_metadata(ctx: RequestContext, topic: Topic) -> MetadataResponse.MetadataResponseTopic:
    live = ctx.model.live
    partitions = []
    for p in topic.partitions:
        error = ctx.injected(topic.name, p.index)
        if not error and p.leader == -1:
            error = LeaderNotAvailableError.code
        partitions.append(
            MetadataResponse.MetadataResponsePartition(
                error_code=error,
                partition_index=p.index,
                leader_id=p.leader,
                leader_epoch=p.leader_epoch,
                replica_nodes=list(p.replicas),
                isr_nodes=[b for b in p.replicas if b in live],
                offline_replicas=[b for b in p.replicas if b not in live],
            )
        )
    return MetadataResponse.MetadataResponseTopic(
        error_code=ctx.injected(topic.name, None),
        name=topic.name,
        topic_id=topic.topic_id,
        partitions=partitions,
    )


async def create_topics(ctx: RequestContext, request: CreateTopicsRequest) -> CreateTopicsResponse:
    """CreateTopics, each topic on its own (one bad topic does not fail the others)."""
    response = CreateTopicsResponse()
    for entry in request.topics:
        result = CreateTopicsResponse.CreatableTopicResult(name=entry.name, error_message=None)
        configs = {c.name: c.value for c in entry.configs if c.value is not None}
        assignments = {a.partition_index: list(a.broker_ids) for a in entry.assignments}
        try:
            topic = ctx.model.create_topic(
                entry.name,
                entry.num_partitions,
                entry.replication_factor,
                configs,
                assignments,
                validate_only=request.validate_only,
            )
        except ModelError as exc:
            result.error_code = exc.error.code
            result.error_message = str(exc)
        else:
            result.topic_id = topic.topic_id
            result.num_partitions = len(topic.partitions)
            result.replication_factor = len(topic.partitions[0].replicas)
            result.configs = [
                CreateTopicsResponse.CreatableTopicConfigs(
                    name=name,
                    value=topic.config(name),
                    config_source=_SOURCE_TOPIC if name in topic.configs else _SOURCE_DEFAULT,
                )
                for name in sorted(set(TOPIC_DEFAULTS) | set(topic.configs))
            ]
        response.topics.append(result)
    ctx.cluster.data_changed()
    return response


async def delete_topics(ctx: RequestContext, request: DeleteTopicsRequest) -> DeleteTopicsResponse:
    """DeleteTopics, by name (v0-5) or by name or id (v6+)."""
    response = DeleteTopicsResponse()
    wanted = [(name, _UUID_ZERO) for name in request.topic_names] + [
        (t.name, t.topic_id) for t in request.topics
    ]
    for name, topic_id in wanted:
        result = DeleteTopicsResponse.DeletableTopicResult(name=name, topic_id=topic_id)
        if not name and topic_id != _UUID_ZERO:
            found = ctx.model.topic_by_id(topic_id)
            name = found.name if found is not None else None
            result.name = name
        if not name:
            result.error_code = (
                UnknownTopicIdError.code if topic_id != _UUID_ZERO else InvalidRequestError.code
            )
            response.responses.append(result)
            continue
        try:
            deleted = ctx.model.delete_topic(name)
        except ModelError as exc:
            result.error_code = exc.error.code
            result.error_message = str(exc)
        else:
            result.topic_id = deleted.topic_id
        response.responses.append(result)
    ctx.cluster.data_changed()
    return response


async def create_partitions(
    ctx: RequestContext, request: CreatePartitionsRequest
) -> CreatePartitionsResponse:
    """CreatePartitions: grow topics, where the request places them or round-robin."""
    response = CreatePartitionsResponse()
    for entry in request.topics:
        result = CreatePartitionsResponse.CreatePartitionsTopicResult(name=entry.name)
        try:
            placed = (
                None
                if entry.assignments is None
                else [list(a.broker_ids) for a in entry.assignments]
            )
            ctx.model.create_partitions(
                entry.name, entry.count, placed, validate_only=request.validate_only
            )
        except ModelError as exc:
            result.error_code = exc.error.code
            result.error_message = str(exc)
        response.results.append(result)
    ctx.cluster.data_changed()
    return response


async def describe_configs(
    ctx: RequestContext, request: DescribeConfigsRequest
) -> DescribeConfigsResponse:
    """DescribeConfigs for topics (the topic's settings and Kafka's defaults); brokers get an
    empty list.
    """
    response = DescribeConfigsResponse()
    for resource in request.resources:
        result = DescribeConfigsResponse.DescribeConfigsResult(
            resource_type=resource.resource_type,
            resource_name=resource.resource_name,
            error_message=None,
        )
        response.results.append(result)
        if resource.resource_type == _BROKER_RESOURCE:
            continue
        topic = ctx.model.topics.get(resource.resource_name)
        if resource.resource_type != _TOPIC_RESOURCE:
            result.error_code = InvalidRequestError.code
            continue
        if topic is None:
            result.error_code = UnknownTopicOrPartitionError.code
            continue
        keys = resource.configuration_keys
        names = sorted(set(TOPIC_DEFAULTS) | set(topic.configs))
        for name in names if keys is None else [k for k in keys if k in names]:
            is_set = name in topic.configs
            result.configs.append(
                DescribeConfigsResponse.DescribeConfigsResourceResult(
                    name=name,
                    value=topic.config(name),
                    is_default=not is_set,
                    config_source=_SOURCE_TOPIC if is_set else _SOURCE_DEFAULT,
                    documentation=None,
                )
            )
    return response


async def incremental_alter_configs(
    ctx: RequestContext, request: IncrementalAlterConfigsRequest
) -> IncrementalAlterConfigsResponse:
    """IncrementalAlterConfigs for topics (what DescribeConfigs shows next, and a new
    ``max.message.bytes`` applies to the next Produce). The fake keeps no broker configs:
    other resources are refused with INVALID_REQUEST, not ignored.
    """
    response = IncrementalAlterConfigsResponse()
    for resource in request.resources:
        result = IncrementalAlterConfigsResponse.AlterConfigsResourceResponse(
            resource_type=resource.resource_type,
            resource_name=resource.resource_name,
            error_message=None,
        )
        response.responses.append(result)
        if resource.resource_type != _TOPIC_RESOURCE:
            result.error_code = InvalidRequestError.code
            result.error_message = "the fake Kafka keeps the configs of topics only"
            continue
        changes = [(c.name, c.config_operation, c.value) for c in resource.configs]
        try:
            ctx.model.alter_topic_configs(
                resource.resource_name, changes, validate_only=request.validate_only
            )
        except ModelError as exc:
            result.error_code = exc.error.code
            result.error_message = str(exc)
    return response


async def find_coordinator(
    ctx: RequestContext, request: FindCoordinatorRequest
) -> FindCoordinatorResponse:
    """FindCoordinator: a broker chosen by a hash of the key (or moved there by a test),
    for groups and transactions.
    """
    keys = request.coordinator_keys if ctx.version >= 4 else [request.key]
    response = FindCoordinatorResponse()
    for key in keys:
        node = ctx.cluster.coordinator_for(key)
        coordinator = FindCoordinatorResponse.Coordinator(key=key, node_id=node, error_message=None)
        if node < 0:
            coordinator.error_code = CoordinatorNotAvailableError.code
        else:
            coordinator.host, coordinator.port = ctx.cluster.addresses[node]
        response.coordinators.append(coordinator)
    if ctx.version < 4:
        (only,) = response.coordinators
        response.error_code, response.node_id = only.error_code, only.node_id
        response.host, response.port = only.host, only.port
        response.error_message = None
        response.coordinators = []
    return response
