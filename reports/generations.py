"""Values computed from the films, kept by this process for as long as the films stay as they were.

Every write to films or sections moves the corpus's *generation* (`reports.models.Corpus`, set by a trigger in the
writer's transaction, never reused). A value kept under the generation it was computed at is served only while
that is still the generation, so never a stale one: the cross-film search results (`reports.search`), the
catalogue's facets and the rendered film and catalogue pages (`reports.views`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from django.db import connection

T = TypeVar("T")

GENERATION_SQL = "SELECT generation FROM reports_corpus WHERE id = 1"
_caches: list[GenerationCache[Any]] = []


def current() -> int:
    """The corpus's generation now (one query)."""
    with connection.cursor() as cursor:
        cursor.execute(GENERATION_SQL)
        row = cursor.fetchone()
    return row[0] if row else 0


def forget_all() -> None:
    """Empty every cache of this process (the tests start each from nothing)."""
    for cache in _caches:
        cache.clear()


class GenerationCache(Generic[T]):
    """Values by key and by generation, least recently used first out. `size` is read at each write (a setting,
    so that it follows overrides); 0 keeps nothing."""

    def __init__(self, size: Callable[[], int]) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, tuple[int, T]] = OrderedDict()
        self._lock = threading.Lock()
        _caches.append(self)

    def get(self, key: Hashable, generation: int) -> T | None:
        with self._lock:
            found = self._items.get(key)
            if found is None or found[0] != generation:
                return None
            self._items.move_to_end(key)
            return found[1]

    def holds(self, key: Hashable) -> bool:
        """Whether a value is kept under `key`, of any generation: when not, `get` would miss whatever the
        generation, so a caller can skip reading it."""
        with self._lock:
            return key in self._items

    def put(self, key: Hashable, generation: int, value: T) -> None:
        with self._lock:
            self._items[key] = (generation, value)
            self._items.move_to_end(key)
            while len(self._items) > max(0, self._size()):
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
