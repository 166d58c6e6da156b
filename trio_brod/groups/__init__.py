"""Consumer groups: the member, its coordinator, assignors and committed offsets (issue 12).

Group members reach the cluster through the connection pool and the metadata cache, never
through the :class:`~trio_brod.Client`, as every worker does.
"""

from __future__ import annotations

__all__: list[str] = []
