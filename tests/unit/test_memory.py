"""The hub's freeze of long-lived objects: out of the collector's passes, yet never leaked."""

from __future__ import annotations

import gc
import weakref

import pytest

from naic.hub.app.memory import refreeze


class Node:
    """A reference cycle: freed only by the cycle collector, never by reference counts."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def _unfrozen():
    yield
    gc.unfreeze()  # other tests run with the collector as usual


def test_garbage_is_freed_before_the_freeze_and_what_lives_is_frozen() -> None:
    garbage, kept = Node(), Node()
    gone = weakref.ref(garbage)
    del garbage
    assert refreeze() >= 1
    assert gone() is None  # collected, not frozen
    assert gc.is_tracked(kept)
    assert not any(o is kept for o in gc.get_objects())  # frozen: in no generation a pass walks
    gc.unfreeze()
    assert any(o is kept for o in gc.get_objects())


def test_a_frozen_object_that_becomes_garbage_is_freed_at_the_next_renewal() -> None:
    node = Node()
    alive = weakref.ref(node)
    refreeze()
    del node
    gc.collect()
    assert alive() is not None  # frozen: even a full collection leaves it
    refreeze()
    assert alive() is None  # the renewal unfreezes and collects first
