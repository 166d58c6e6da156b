"""Kafka consumer groups (the classic protocol): membership, assignors, commits, subscribers.

The pure cores (the ConsumerProtocol bytes, the assignors, the membership state machine) are
kept apart from the tasks that talk to the group coordinator, so that each can be tested
without a broker.
"""

from __future__ import annotations

__all__: list[str] = []
