"""How the admin calls reach the cluster: the client's connection pool and metadata cache.

Admin needs two things beyond the client's user-facing methods: a connection to any broker
(for requests every broker answers, such as DescribeCluster) and a metadata refresh that
never creates topics (after a topic was deleted, asking about it must not bring it back).
Both come from the parts a :class:`~trio_brod.Client` is composed of
(:attr:`~trio_brod.Client.pool`, :attr:`~trio_brod.Client.metadata`); they are named here
once so that the admin modules depend on these two functions, not on the client's shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trio_brod._metadata import ClusterMetadata
    from trio_brod._net import Connection
    from trio_brod.client import Client

__all__ = ["any_connection", "refresh_metadata"]


async def any_connection(client: Client) -> Connection:
    """A connection to some broker, for a request any broker can answer."""
    return await client.pool.any_connection()


async def refresh_metadata(
    client: Client, topics: Sequence[str], *, auto_create: bool
) -> ClusterMetadata:
    """Ask for ``topics``' metadata and update the client's cache with the answer.

    Args:
        client: An open client.
        topics: The topics to ask about.
        auto_create: Whether the broker may create a topic it does not know (if the
            cluster allows it at all). Admin passes False after a topic change.
    """
    return await client.metadata.fetch(list(topics), auto_create=auto_create)
