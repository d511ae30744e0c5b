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


async def test_the_server_freezes_its_start_up_heap_and_builds_the_webhook_tls_context_once(settings) -> None:
    """Runtime.open (the real server start) settles the heap before serving, and every webhook client of
    every call shares the one TLS context built then (building one per client cost ~20 ms and ~0.5 MB)."""
    from agent_runtime.tools.netguard import tls_context
    from control_api.runtime import Runtime

    gc.unfreeze()
    tls_context.cache_clear()
    try:
        async with Runtime.open(settings):
            assert gc.get_freeze_count() > 0
            assert tls_context.cache_info().misses == 1
            assert tls_context() is tls_context()
    finally:
        gc.unfreeze()
