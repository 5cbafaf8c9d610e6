"""What ``receiver serve`` does to the garbage collector before it serves (``receiver.app.settle_heap``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from receiver.app import GC_THRESHOLD, settle_heap


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_what_is_alive_before_serving_leaves_the_collectors_view_and_what_comes_after_stays() -> None:
    alive = [["made before serving"]]
    frozen_before = gc.get_freeze_count()

    settle_heap()

    assert gc.get_freeze_count() > frozen_before
    tracked = gc.get_objects()
    assert not any(obj is alive for obj in tracked)
    later = [["made while serving"]]
    assert any(obj is later for obj in gc.get_objects())
    assert gc.get_threshold() == (GC_THRESHOLD, 10, 10)
    assert GC_THRESHOLD > 700  # collected less often than CPython's default


@pytest.mark.usefixtures("restored_collector")
def test_a_cycle_made_before_serving_is_collected_not_frozen() -> None:
    import weakref

    class Node:
        pass

    node = Node()
    node.me = node  # type: ignore[attr-defined]
    gone = weakref.ref(node)
    del node

    settle_heap()

    assert gone() is None
