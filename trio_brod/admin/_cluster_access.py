"""The one place where the admin calls use what :class:`~trio_brod.Client` does not publish.

Admin needs two things the client's public methods do not offer: a connection to any broker
(for requests every broker answers, such as DescribeCluster) and a metadata refresh that
never creates topics (after a topic was deleted, asking about it must not bring it back).
For now both are the client's private methods; when the client's connections and metadata
become components of their own (a connection pool and a metadata cache), these functions
are the only ones to rewire. No other admin module may reach into the client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trio_brod._connection import Connection
    from trio_brod._metadata import ClusterMetadata
    from trio_brod.client import Client

__all__ = ["any_connection", "refresh_metadata"]


async def any_connection(client: Client) -> Connection:
    """A connection to some broker, for a request any broker can answer."""
    return await client._any_connection()


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
    return await client._fetch_metadata(list(topics), auto_create=auto_create)
