"""The per-process watch over the answers this process is writing: one task per event loop and one database round
trip per tick for all of them, however many there are. It saves their growing texts (every CHAT_FLUSH_SECONDS),
stops the ones the stop endpoint ended and the ones whose client left without anybody following, and sends pings on
quiet streams. Per-answer timers and writes cost a thread hop and a query each, per answer; at a few hundred streams
per worker those took more CPU than the tokens themselves."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from chat.database import db
from chat.listener import Listener
from chat.models import Message
from chat.sse import sse_comment
from llm.loops import PerLoop

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Writing:
    """An answer being written by this process, as the watch sees it."""

    message_pk: int
    listener: Listener
    task: asyncio.Task[None]
    content: str = ""  # the text written so far
    flushed: int = 0  # characters of it already in the database
    stopping: bool = False
    deleted: bool = False  # its conversation was deleted while it was written

    def stop(self, *, deleted: bool = False) -> None:
        """Stop writing (the message was ended elsewhere, deleted, or abandoned): cancelling the task closes the
        upstream request at once, wherever the task is waiting."""
        self.deleted = self.deleted or deleted
        if not self.stopping:
            self.stopping = True
            self.task.cancel()


class Watch:
    """Looks after every answer this process writes on one event loop (see the module docstring). `clock`: the
    listeners' clock, `time.monotonic` but in tests."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.writing: dict[int, Writing] = {}
        self.task: asyncio.Task[None] | None = None
        self.clock = clock
        self.last_flush = clock()

    def add(self, writing: Writing) -> None:
        self.writing[writing.message_pk] = writing
        if self.task is None or self.task.done():
            # A context of its own: not the request's, whose thread goes away with the request.
            self.task = asyncio.create_task(self._run(), context=contextvars.Context())

    def remove(self, writing: Writing) -> None:
        if self.writing.get(writing.message_pk) is writing:
            del self.writing[writing.message_pk]

    async def _run(self) -> None:
        while self.writing:
            await asyncio.sleep(settings.CHAT_WATCH_SECONDS)
            try:
                await self.tick()
            except Exception:
                logger.exception("Watching the answers being written failed; trying again")

    async def tick(self) -> None:
        now = self.clock()
        active = [w for w in self.writing.values() if not w.stopping]
        if not active:
            return
        ping = settings.SSE_PING_SECONDS
        for writing in active:
            listener = writing.listener
            if listener.left_at is None and now - listener.last_sent >= ping:
                listener.send(sse_comment("ping"))
        flush = now - self.last_flush >= settings.CHAT_FLUSH_SECONDS
        dirty = [(w, w.content) for w in active if flush and len(w.content) != w.flushed]
        grace = settings.CHAT_RECONNECT_GRACE_SECONDS
        left = [w.message_pk for w in active if w.listener.left_at is not None and now - w.listener.left_at >= grace]
        texts = [(w.message_pk, text) for w, text in dirty]
        ended = await db(functools.partial(watch_round, [w.message_pk for w in active], texts, left, grace))
        if flush:
            self.last_flush = now
        for writing, text in dirty:
            writing.flushed = max(writing.flushed, len(text))
        for message_pk, deleted in ended.items():
            if writing := self.writing.get(message_pk):
                writing.stop(deleted=deleted)


def watch_round(message_pks: list[int], texts: list[tuple[int, str]], left: list[int], grace: float) -> dict[int, bool]:
    """One round trip for all the answers being written: save the growing texts (of messages still streaming), and
    return the messages to stop, each with whether it is gone: those deleted (with their conversation), those no
    longer streaming (the stop endpoint ended them) and those whose client left over `grace` seconds ago with
    nobody following them since."""
    table = connection.ops.quote_name(Message._meta.db_table)
    streaming = Message.Status.STREAMING
    with connection.cursor() as cursor:
        if texts:
            cursor.execute(
                f"UPDATE {table} AS m SET content = t.content "  # noqa: S608 (the table name is ours)
                "FROM unnest(%s::bigint[], %s::text[]) AS t(id, content) WHERE m.id = t.id AND m.status = %s",
                [[pk for pk, _ in texts], [text for _, text in texts], streaming],
            )
        cursor.execute(
            f"SELECT t.id, m.id IS NULL FROM unnest(%s::bigint[]) AS t(id) LEFT JOIN {table} m ON m.id = t.id "  # noqa: S608
            "WHERE m.id IS NULL OR m.status <> %s OR (m.id = ANY(%s::bigint[]) "
            "AND (m.watched_at IS NULL OR m.watched_at < now() - make_interval(secs => %s)))",
            [message_pks, streaming, left, grace],
        )
        return dict(cursor.fetchall())


_watches: PerLoop[Watch] = PerLoop(Watch)


def watch_of_loop() -> Watch:
    return _watches.get()
