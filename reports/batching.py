"""Question embeddings for async code: the questions that arrive together are embedded together, in one forward
pass, on one thread per process that runs at a lower CPU priority than the event loop.

One question takes about 8 ms to embed on one core here. A burst of questions (a class opening the chat at once)
used to queue one by one behind the embedder's lock: 500 questions on a worker waited 4 s for the last one. Short
texts batch well (a batch of 32 questions costs a few single ones), and the lower priority keeps the answers
already streaming smooth while the burst is embedded. One question alone is embedded as before, at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from django.conf import settings

from llm.loops import PerLoop
from reports.embeddings import get_embedder, normalize_query

logger = logging.getLogger(__name__)

# The most questions embedded in one pass (a longer queue is taken in several).
MAX_BATCH = 32


class QueryBatcher:
    """Embeds questions for one event loop; see the module docstring."""

    def __init__(self) -> None:
        self.waiting: dict[str, list[asyncio.Future[np.ndarray]]] = {}
        self.running = False
        self.batches: list[int] = []  # the size of each pass (the last few hundred), for tests and benchmarks

    async def embed(self, text: str) -> np.ndarray:
        embedder = get_embedder()
        key = normalize_query(text)
        vector = embedder.cache.get(key)
        if vector is not None:
            return vector
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(key, []).append(future)
        if not self.running:
            self.running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.waiting:
                keys = list(self.waiting)[:MAX_BATCH]
                futures = [self.waiting.pop(key) for key in keys]
                try:
                    vectors = await loop.run_in_executor(_executor(), _embed_many, keys)
                except Exception as exc:
                    for waiters in futures:
                        for future in waiters:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                self.batches = [*self.batches[-255:], len(keys)]
                for waiters, vector in zip(futures, vectors, strict=True):
                    for future in waiters:
                        if not future.done():
                            future.set_result(vector)
        finally:
            self.running = False


def _embed_many(keys: list[str]) -> list[np.ndarray]:
    return get_embedder().embed_queries(keys)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(1, thread_name_prefix="embed-queries", initializer=_lower_priority)
        return _pool


def _lower_priority() -> None:
    """Linux gives each thread its own nice value: only this thread is lowered."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), settings.EMBEDDING_QUERY_NICE)
    except (AttributeError, OSError) as exc:  # not Linux, or not allowed
        logger.info("Could not lower the question embedder's priority: %s", exc)


_batchers: PerLoop[QueryBatcher] = PerLoop(QueryBatcher)


def batcher() -> QueryBatcher:
    return _batchers.get()


async def embed_query_async(text: str) -> np.ndarray:
    """The question's vector (from the LRU cache when it is there), embedded with the questions waiting with it."""
    return await batcher().embed(text)
