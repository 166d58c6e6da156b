"""Counting the tasks of a trio run, for tests that prove nothing is left running."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import trio


def walk_tasks(
    prune: Callable[[trio.lowlevel.Task], bool] = lambda task: False,
) -> Iterator[trio.lowlevel.Task]:
    """Every task alive in this trio run, from the root down; a task that ``prune`` picks is
    left out with every task below it."""
    root = trio.lowlevel.current_root_task()
    assert root is not None
    stack = [root]
    while stack:
        task = stack.pop()
        if prune(task):
            continue
        yield task
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)


def _fake_broker(task: trio.lowlevel.Task) -> bool:
    return "FakeBroker" in task.name or "FakeKafka._run_broker" in task.name


def count_tasks() -> int:
    """Every task alive in this trio run, found by walking the task tree from the root.

    The fake brokers' tasks (tests/fakes/broker.py, and each broker of the fake Kafka) are
    left out: their per-connection tasks end when they notice the client hung up, which is
    the fake's business, not the client's.
    """
    return sum(1 for _ in walk_tasks(_fake_broker))


def tasks_named(prefix: str) -> list[trio.lowlevel.Task]:
    """The tasks alive in this trio run whose name starts with ``prefix``."""
    return [task for task in walk_tasks() if task.name.startswith(prefix)]
