from __future__ import annotations

import gc
import weakref

from serving.frozen import FrozenHeap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_overlapping_holds_unfreeze_after_the_last_release() -> None:
    heap = FrozenHeap()
    first = heap.hold()
    second = heap.hold()
    first()
    first()
    assert heap.holders == 1 and gc.get_freeze_count() > 0
    second()
    assert heap.holders == 0 and gc.get_freeze_count() == 0


def test_frozen_objects_are_freed_by_reference_counting() -> None:
    heap = FrozenHeap()
    kept = _Node()
    release = heap.hold()
    try:
        alive = weakref.ref(kept)
        del kept
        assert alive() is None
    finally:
        release()


def test_a_cycle_frozen_as_garbage_is_collected_after_the_release() -> None:
    heap = FrozenHeap()
    gc.collect()
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    alive = weakref.ref(a)
    del a, b
    gc.disable()  # the cycle is garbage, but not yet collected, when the heap is frozen
    try:
        release = heap.hold()
        gc.collect()
        assert alive() is not None  # frozen: skipped by the collector
        release()
        gc.collect()
        assert alive() is None
    finally:
        gc.enable()
