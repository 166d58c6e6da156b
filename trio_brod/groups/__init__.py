"""Consumer groups: the coordinator protocol, assignors and the group member (issue 12)."""

__all__: list[str] = []
