"""The manager's heap keeping: long-lived objects frozen out of the collector's passes, garbage still freed."""

from __future__ import annotations

import gc
import weakref

from swarmctl.heap import freeze_now


class Node:
    """An object that can be part of a reference cycle and be watched through a weak reference."""

    def __init__(self) -> None:
        self.other: Node | None = None


def test_live_objects_are_frozen_and_cycles_made_before_are_collected() -> None:
    try:
        gc.unfreeze()
        kept = [{"n": i} for i in range(1000)]
        cycle = Node()
        cycle.other = Node()
        cycle.other.other = cycle
        gone = weakref.ref(cycle)
        del cycle
        before = gc.get_freeze_count()
        freeze_now()
        assert gone() is None  # collected first, not frozen
        assert gc.get_freeze_count() >= before + len(kept)
        assert not any(obj is kept[0] for obj in gc.get_objects())  # out of the collector's view
    finally:
        gc.unfreeze()


def test_a_whole_collection_frees_cycles_among_frozen_objects() -> None:
    try:
        gc.unfreeze()
        cycle = Node()
        cycle.other = Node()
        cycle.other.other = cycle
        gone = weakref.ref(cycle)
        freeze_now()  # frozen while alive
        del cycle  # now garbage, but frozen: a plain pass does not see it
        gc.collect()
        assert gone() is not None
        freeze_now(whole=True)
        assert gone() is None
    finally:
        gc.unfreeze()
