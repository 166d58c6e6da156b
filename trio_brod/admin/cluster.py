"""The cluster: its id, controller and brokers (Kafka's DescribeCluster)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from trio_brod._exceptions import UnsupportedVersion
from trio_brod._metadata import BrokerMetadata
from trio_brod.admin._cluster_access import any_connection
from trio_brod.client import Client
from trio_brod.protocol import DescribeClusterRequest
from trio_brod.protocol.errors import for_code

__all__ = ["ClusterDescription", "describe_cluster"]


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
    connection = await any_connection(client)
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
