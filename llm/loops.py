"""One object per running event loop, for objects bound to the loop they were made on (an HTTP client session, a queue
of futures, a watch task). Under an ASGI server that is one per process; code that runs short-lived loops
(`asyncio.run`, `async_to_sync` without an outer loop) gets a fresh one each time, and the ones of closed loops are
forgotten: nothing can be awaited on a closed loop, and their sockets and tasks died with it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """`get()` returns the running loop's object, made by `make()` the first time (and again when `usable` says the
    one it has can no longer serve). Thread-safe: loops in several threads share one `PerLoop`."""

    def __init__(self, make: Callable[[], T], *, usable: Callable[[T], bool] | None = None) -> None:
        self._make = make
        self._usable = usable
        self._objects: dict[asyncio.AbstractEventLoop, T] = {}
        self._lock = threading.Lock()

    def get(self) -> T:
        """The running loop's object (call from inside a coroutine)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            for closed in [other for other in self._objects if other.is_closed()]:
                del self._objects[closed]
            found = self._objects.get(loop)
            if found is None or (self._usable is not None and not self._usable(found)):
                found = self._objects[loop] = self._make()
            return found

    def pop(self) -> T | None:
        """Forget the running loop's object and return it (None when it has none), for the caller to close."""
        loop = asyncio.get_running_loop()
        with self._lock:
            return self._objects.pop(loop, None)

    def clear(self) -> None:
        with self._lock:
            self._objects.clear()
