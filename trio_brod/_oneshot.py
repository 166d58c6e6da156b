"""Calls that need no long-lived client: brod's ``brod:get_metadata(Hosts, Topics, Options)``.

A script that only wants to look at the cluster once (list topics, check a partition count)
should not have to manage a client's lifetime. These open a client, ask, and close it again
before returning, so no connection or task outlives the call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from trio_brod._config import ClientConfig
from trio_brod._metadata import ClusterMetadata
from trio_brod.client import open_client

__all__ = ["get_metadata"]


async def get_metadata(
    bootstrap_servers: str | Iterable[str | tuple[str, int]],
    topics: Sequence[str] | None = None,
    config: ClientConfig | None = None,
    **options: Any,
) -> ClusterMetadata:
    """Ask the bootstrap brokers for metadata once, with no client to keep open.

    Args:
        bootstrap_servers: As for :func:`~trio_brod.open_client`, tried in turn.
        topics: The topics to describe; None for all of them.
        config: A :class:`~trio_brod.ClientConfig` (TLS, SASL, timeouts).
        **options: Its fields as keyword arguments instead.

    Never creates a topic (as :meth:`Client.get_metadata_safe
    <trio_brod.Client.get_metadata_safe>`): a name the cluster does not know comes back
    with its ``error_code`` set. The connection is closed before this returns.
    """
    async with open_client(bootstrap_servers, config, **options) as client:
        return await client.get_metadata_safe(topics)
