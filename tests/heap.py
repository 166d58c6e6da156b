"""Counting live objects, for tests that prove an idle worker keeps nothing it is done with."""

from __future__ import annotations

import gc
from collections import Counter


def alive(*classes: type) -> dict[str, int]:
    """How many objects of exactly each of ``classes`` are alive after a full collection,
    by class name (for readable assertion failures).

    Only objects the cycle collector tracks are seen, which every class with attributes is.
    Compare counts before and after, not with zero: other tests may leave objects behind.
    """
    gc.collect()
    wanted = set(classes)
    counts = Counter(type(o).__name__ for o in gc.get_objects() if type(o) in wanted)
    return {cls.__name__: counts[cls.__name__] for cls in classes}
