"""Counting the tasks of a trio run, for tests that prove nothing is left running."""

from __future__ import annotations

import trio


def count_tasks() -> int:
    """Every task alive in this trio run, found by walking the task tree from the root.

    The fake brokers' tasks (tests/fakes/broker.py, and each broker of the fake Kafka) are
    left out: their per-connection tasks end when they notice the client hung up, which is
    the fake's business, not the client's.
    """
    root = trio.lowlevel.current_root_task()
    assert root is not None
    count, stack = 0, [root]
    while stack:
        task = stack.pop()
        if "FakeBroker" in task.name or "FakeKafka._run_broker" in task.name:
            continue
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


def tasks_named(prefix: str) -> list[trio.lowlevel.Task]:
    """The tasks alive in this trio run whose name starts with ``prefix``."""
    root = trio.lowlevel.current_root_task()
    assert root is not None
    found, stack = [], [root]
    while stack:
        task = stack.pop()
        if task.name.startswith(prefix):
            found.append(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found
