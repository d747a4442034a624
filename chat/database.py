"""The streams' database threads: ORM work from async code, with the connection given back at once."""

from __future__ import annotations

import functools
import itertools
from collections.abc import AsyncIterator, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

T = TypeVar("T")


async def db(work: Callable[[], T]) -> T:
    """Run ORM work on the streams' database threads and give the connection back to the pool at once.

    A stream lives for minutes and mostly waits: holding a pooled connection for its whole life capped a worker at
    the pool's size of open streams (measured: stream 11 of a 10-connection pool waited 10 s and failed). Each call
    stands alone (no transaction spans two), so any thread will do: a fixed set of them (`database_threads()`)
    rather than a new thread for every request as Django's thread-sensitive default makes."""

    def run() -> T:
        try:
            return work()
        finally:
            connection.close()

    return await sync_to_async(run, thread_sensitive=False, executor=_executor())()


def database_threads() -> int:
    """`CHAT_DB_THREADS`, at least one and at most the pool's connections.

    Few on purpose: these threads share the worker's interpreter lock with the page threads that open streams and
    with the event loop. With ten, a burst's answers all progressed at once and each reached its first token late,
    while the streams behind them waited to open; with three, 100 streams opened at once read first byte p50 about
    500 ms against 810 and the reader's first token 1.4 s against 1.7 (README, "What is in the way")."""
    return max(1, min(settings.CHAT_DB_THREADS, settings.DB_POOL_MAX))


@functools.cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(database_threads(), thread_name_prefix="chat-db")


async def drain(items: Generator[str, None, None], *, batch: int = 100) -> AsyncIterator[str]:
    """A generator that reads the database as it goes (a server-side cursor) served under ASGI: `batch` items at a
    time, joined, always on the request's own database thread, so the cursor keeps its connection. Django's ASGI
    handler would read a synchronous iterator to its end, into memory, before sending its first byte."""
    take = sync_to_async(lambda: list(itertools.islice(items, batch)), thread_sensitive=True)
    try:
        while chunk := await take():
            yield "".join(chunk)
    finally:
        await sync_to_async(items.close, thread_sensitive=True)()  # a client gone: the cursor closes now
