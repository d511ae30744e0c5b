"""Process-level pacing: the start-up heap is frozen so full garbage collections stop pausing the media."""
from __future__ import annotations

import gc
import weakref

from media.pacing import settle_heap


def test_settle_heap_puts_what_is_alive_beyond_the_collectors_reach_and_lets_it_go_on_being_freed() -> None:
    """The server freezes its start-up heap so full collections stop walking it (media.pacing.settle_heap)."""
    class Thing:
        pass

    thing = Thing()
    gone = weakref.ref(thing)
    before = gc.get_freeze_count()
    try:
        settle_heap()
        assert gc.get_freeze_count() > before
        del thing  # frozen objects are still freed when their last reference goes
        assert gone() is None
    finally:
        gc.unfreeze()
