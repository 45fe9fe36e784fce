"""Async code under sync tests: a per-test event loop on a thread of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

JOIN_TIMEOUT = 300.0
_T = TypeVar("_T")


class LoopThread:
    """A per-test event loop, running on a thread of its own until closed."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def on_loop(self) -> bool:
        """Whether the caller is the loop's own thread (a coroutine's sync callback)."""
        return threading.current_thread() is self._thread

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Await ``coroutine`` on the loop; its result."""
        assert not self.on_loop(), "a blocking call from the loop would never return"
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(JOIN_TIMEOUT)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(JOIN_TIMEOUT)
        self.loop.close()
