"""What workers depend on to reach a cluster: the connection pool and the metadata cache.

Producers, consumers, group members and transactions take a :class:`ConnectionPool` and a
:class:`MetadataCache`, never the :class:`~trio_brod.Client` that composes them for users.
That keeps the layers honest (a worker cannot call back into the facade that owns it) and
lets a test build a worker on a pool and a cache of its own.
"""

from __future__ import annotations

from trio_brod._cluster.metadata import CoordinatorType, MetadataCache
from trio_brod._cluster.pool import ConnectionPool, ConnectionSlot

__all__ = ["ConnectionPool", "ConnectionSlot", "CoordinatorType", "MetadataCache"]
