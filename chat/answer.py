"""One chat turn, streamed: retrieval, then the answer from an LLM (or the offline answerer), persisted as it goes.

The assistant message is the unit of work. Whoever opens its stream first while it is `pending` claims it (an atomic
UPDATE) and generates the answer; any other stream of the same message (a reload, a reconnect with Last-Event-ID,
a second tab) follows the stored text until it reaches its terminal state. Every path ends the message in exactly
one of `complete`, `failed` or `stopped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models.functions import Now
from django.utils import timezone

from chat import offline, prompts
from chat.models import Message
from chat.rendering import render_answer
from chat.sse import sse_comment, sse_event
from llm import LLMConfig, LLMError, StreamResult, complete_chat, config_from_settings, stream_chat
from reports.batching import embed_query_async
from reports.embeddings import normalize_query
from reports.models import MovieSection, text_hash
from reports.search import Hit, search_all, search_movie

logger = logging.getLogger(__name__)
T = TypeVar("T")

# How often a follower re-reads a message another stream is writing.
FOLLOW_POLL_SECONDS = 0.2
SNIPPET_CHARS = 240


@dataclass
class Turn:
    message: Message
    question: str
    history: list[tuple[str, str]]
    movie_id: int | None
    movie_title: str | None


def _claim(message_pk: int) -> Turn | None:
    """Take a pending message (pending → streaming) and load its turn; None when another stream already has it."""
    claimed = Message.objects.filter(pk=message_pk, status=Message.Status.PENDING).update(
        status=Message.Status.STREAMING
    )
    return _load_turn(message_pk) if claimed else None


def _load_turn(message_pk: int) -> Turn:
    message = Message.objects.select_related("conversation__movie", "reply_to").get(pk=message_pk)
    conversation = message.conversation
    question = message.reply_to.content if message.reply_to else ""
    earlier = (
        Message.objects.filter(conversation=conversation, created_at__lt=message.reply_to.created_at)
        .exclude(role=Message.Role.ASSISTANT, status__in=[Message.Status.FAILED, Message.Status.PENDING])
        .exclude(regenerations__isnull=False)
        .order_by("created_at", "id")
        .values_list("role", "content")
        if message.reply_to
        else []
    )
    movie = conversation.movie
    history = [(role, content) for role, content in earlier if content]
    return Turn(message, question, history, movie.pk if movie else None, movie.title if movie else None)


# Events.


def _sources_payload(hits: Sequence[Hit]) -> dict[str, Any]:
    return {
        "sources": [
            {
                "id": hit.section_id,
                "film": hit.movie_title,
                "year": hit.movie_year,
                "slug": hit.movie_slug,
                "url": f"/movies/{hit.movie_slug}/#section-{hit.section_id}",
                "heading": hit.heading,
                "snippet": _snippet(hit.content),
                "score": round(hit.score, 4),
            }
            for hit in hits
        ]
    }


def _snippet(text: str) -> str:
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS].rsplit(" ", 1)[0] + "…"


def _hits_for(section_ids: Sequence[int]) -> list[Hit]:
    """The stored sources of a message, in their original order (for replays)."""
    sections = MovieSection.objects.select_related("movie").in_bulk(section_ids)
    return [
        Hit(s.pk, s.movie_id, s.movie.title, s.movie.slug, s.movie.year, s.kind, s.heading, s.content, None, 0.0)
        for section_id in section_ids
        if (s := sections.get(section_id))
    ]


def _done_payload(message: Message, hits: Sequence[Hit]) -> dict[str, Any]:
    urls = {hit.section_id: f"/movies/{hit.movie_slug}/#section-{hit.section_id}" for hit in hits}
    return {
        "message": str(message.uuid),
        "status": message.status,
        "html": render_answer(message.content, section_urls=urls),
        "citations": [
            {"id": section_id, "url": urls[section_id]}
            for section_id in message.cited_section_ids
            if section_id in urls
        ],
        "cached": message.cached,
        "provider": message.provider,
        "model": message.model,
        "timings": message.timings,
    }


def _error_payload(message: Message) -> dict[str, Any]:
    return {
        "message": str(message.uuid),
        "status": message.status,
        "code": message.error_code,
        "message_text": message.error_text,
        "retryable": bool(message.timings.get("retryable", False)),
        "retry_after": message.timings.get("retry_after"),
    }


def _final_events(message: Message, hits: Sequence[Hit]) -> bytes:
    if message.status == Message.Status.FAILED:
        return sse_event("error", _error_payload(message))
    return sse_event("done", _done_payload(message, hits))


# The stream.


async def stream_message(*, message: Message, offset: int = 0) -> AsyncIterator[bytes]:
    """The SSE stream of one assistant message, starting after `offset` characters of its text."""
    opened = time.perf_counter()
    # First bytes at once, before any work: the browser and proxies see a live stream immediately.
    yield sse_event(retry=2000) + sse_comment("flickora")
    turn = await db(functools.partial(_claim, message.pk))
    if turn is None:
        async for chunk in _follow(message.pk, offset):
            yield chunk
        return
    # The answer is written by a task of its own, so that it can outlive this response for a moment: a reloaded
    # page follows it from the database and it goes on; if nobody does, it stops within a second.
    listener = _Listener()
    task = asyncio.create_task(_generate(turn, opened, listener))
    _writers.add(task)
    task.add_done_callback(_writers.discard)
    try:
        async for chunk in listener.chunks():
            yield chunk
    finally:
        listener.leave()


_writers: set[asyncio.Task[None]] = set()


class _Listener:
    """The response that opened the stream, as seen by the task writing the answer."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.left_at: float | None = None
        self.last_sent = time.monotonic()

    async def chunks(self) -> AsyncIterator[bytes]:
        """What the writer sends, until its end (None). Events that wait together (under load) go in one write."""
        ended = False
        while not ended:
            chunk = await self.queue.get()
            if chunk is None:
                return
            while not self.queue.empty():
                more = self.queue.get_nowait()
                if more is None:
                    ended = True
                    break
                chunk += more
            yield chunk

    def send(self, chunk: bytes | None) -> None:
        if self.left_at is None:
            self.queue.put_nowait(chunk)
            self.last_sent = time.monotonic()

    def leave(self) -> None:
        if self.left_at is None:
            self.left_at = time.monotonic()


@dataclass(eq=False)
class _Writing:
    """An answer being written by this process, as the watch sees it."""

    message_pk: int
    listener: _Listener
    state: _State
    task: asyncio.Task[None]
    flushed: int = 0  # characters of the text already in the database
    stopping: bool = False

    def stop(self) -> None:
        """Stop writing (the message was ended elsewhere, or abandoned): cancelling the task closes the upstream
        request at once, wherever the task is waiting."""
        if not self.stopping:
            self.stopping = True
            self.task.cancel()


class _Watch:
    """Looks after every answer this process is writing, with one task per event loop and one database round trip
    per tick for all of them, however many there are: it writes their growing texts (every CHAT_FLUSH_SECONDS),
    notices the ones the stop endpoint ended and the ones whose client left without anybody following, and sends
    pings on quiet streams. Per-answer timers and writes cost a thread hop and a query each, per answer; at a few
    hundred streams per worker those took more CPU than the tokens themselves."""

    def __init__(self) -> None:
        self.writing: dict[int, _Writing] = {}
        self.task: asyncio.Task[None] | None = None
        self.last_flush = time.monotonic()

    def add(self, writing: _Writing) -> None:
        self.writing[writing.message_pk] = writing
        if self.task is None or self.task.done():
            # A context of its own: not the request's, whose thread goes away with the request.
            self.task = asyncio.create_task(self._run(), context=contextvars.Context())

    def remove(self, writing: _Writing) -> None:
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
        now = time.monotonic()
        active = [w for w in self.writing.values() if not w.stopping]
        if not active:
            return
        ping = settings.SSE_PING_SECONDS
        for writing in active:
            listener = writing.listener
            if listener.left_at is None and now - listener.last_sent >= ping:
                listener.send(sse_comment("ping"))
        flush = now - self.last_flush >= settings.CHAT_FLUSH_SECONDS
        dirty = [(w, w.state.content) for w in active if flush and len(w.state.content) != w.flushed]
        grace = settings.CHAT_RECONNECT_GRACE_SECONDS
        left = [w.message_pk for w in active if w.listener.left_at is not None and now - w.listener.left_at >= grace]
        texts = [(w.message_pk, text) for w, text in dirty]
        ended = await db(functools.partial(_watch_round, [w.message_pk for w in active], texts, left, grace))
        if flush:
            self.last_flush = now
        for writing, text in dirty:
            writing.flushed = max(writing.flushed, len(text))
        for message_pk in ended:
            if writing := self.writing.get(message_pk):
                writing.stop()


def _watch_round(message_pks: list[int], texts: list[tuple[int, str]], left: list[int], grace: float) -> set[int]:
    """One round trip for all the answers being written: save the growing texts (of messages still streaming), and
    return the messages to stop: those no longer streaming (the stop endpoint ended them) and those whose client
    left over `grace` seconds ago with nobody following them since."""
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
            f"SELECT id FROM {table} WHERE id = ANY(%s::bigint[]) AND (status <> %s OR ("  # noqa: S608
            "id = ANY(%s::bigint[]) AND (watched_at IS NULL OR watched_at < now() - make_interval(secs => %s))))",
            [message_pks, streaming, left, grace],
        )
        return {row[0] for row in cursor.fetchall()}


_watches: dict[asyncio.AbstractEventLoop, _Watch] = {}


def _watch_of_loop() -> _Watch:
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    if watch is None:
        for other in [other for other in _watches if other.is_closed()]:
            del _watches[other]
        watch = _watches[loop] = _Watch()
    return watch


async def _follow(message_pk: int, offset: int) -> AsyncIterator[bytes]:
    """Replay a message another stream is writing (or has finished), from `offset` to its end."""
    sent_sources = False
    last_sent = last_growth = time.monotonic()
    seen = -1
    while True:
        message = await db(lambda: _watch(message_pk))
        if len(message.content) != seen:
            seen, last_growth = len(message.content), time.monotonic()
        elif message.status == Message.Status.STREAMING and time.monotonic() - last_growth > _stale_seconds():
            # The process writing it died (a restart mid-answer): nothing will finish it but us.
            await _update(
                message_pk,
                only_status=Message.Status.STREAMING,
                status=Message.Status.FAILED,
                error_code="stream_interrupted",
                error_text="The answer was interrupted. Please try again.",
                timings={"retryable": True},
                finished_at=timezone.now(),
            )
            continue
        if not sent_sources and message.source_section_ids:
            hits = await db(functools.partial(_hits_for, message.source_section_ids))
            yield sse_event("sources", _sources_payload(hits))
            sent_sources = True
        if len(message.content) > offset:
            yield sse_event("token", {"t": message.content[offset:]}, id=len(message.content))
            offset = len(message.content)
            last_sent = time.monotonic()
        if message.is_finished:
            hits = await db(functools.partial(_hits_for, message.source_section_ids))
            yield _final_events(message, hits)
            return
        if time.monotonic() - last_sent >= settings.SSE_PING_SECONDS:
            yield sse_comment("ping")
            last_sent = time.monotonic()
        await asyncio.sleep(FOLLOW_POLL_SECONDS)


@dataclass(frozen=True)
class TurnError:
    code: str
    message: str
    retryable: bool
    retry_after: float | None = None

    @classmethod
    def from_llm(cls, error: LLMError) -> TurnError:
        return cls(error.code, error.message, error.retryable, error.retry_after)


INTERNAL_ERROR = TurnError("internal_error", "Something went wrong while answering. Please try again.", True)


@dataclass
class _State:
    content: str = ""
    status: str = Message.Status.FAILED
    error: TurnError | None = None


async def _generate(turn: Turn, opened: float, listener: _Listener) -> None:
    state = _State()
    timings: dict[str, Any] = {}
    hits: list[Hit] = []
    watch = _watch_of_loop()
    task = asyncio.current_task()
    assert task is not None
    writing = _Writing(turn.message.pk, listener, state, task)
    watch.add(writing)
    try:
        async with contextlib.aclosing(_answer(turn, state, hits, timings, opened)) as events:
            async for chunk in events:
                listener.send(chunk)
    except LLMError as exc:
        state.error, state.status = TurnError.from_llm(exc), Message.Status.FAILED
    except asyncio.CancelledError:
        # Stopped by the watch (the upstream request was closed by the aclosing() above), or the server is
        # shutting down.
        state.status = Message.Status.STOPPED
        if not writing.stopping:
            raise
        task.uncancel()
    except Exception:
        logger.exception("Chat turn %s failed", turn.message.uuid)
        state.error = INTERNAL_ERROR
        state.status = Message.Status.FAILED
    finally:
        watch.remove(writing)
        timings["total_ms"] = _ms(opened)
        message, final = await _finish(turn.message, state=state, hits=hits, timings=timings)
        _log_turn(message, timings)
        listener.send(final)
        listener.send(None)


async def _answer(
    turn: Turn, state: _State, hits: list[Hit], timings: dict[str, Any], opened: float
) -> AsyncIterator[bytes]:
    message = turn.message
    config = config_from_settings(settings)  # None: the offline answerer
    query = await _search_query(turn, config)
    started = time.perf_counter()
    vector = await embed_query_async(query)
    timings["embed_ms"] = _ms(started)

    def retrieve() -> dict[str, Any] | None:
        """Find the sections, save them as the message's sources, and look the answer up in the cache."""
        hits.extend(_retrieve(turn, query, vector))
        timings["search_ms"] = round(_ms(started) - timings["embed_ms"], 2)
        message.source_section_ids = [hit.section_id for hit in hits]
        Message.objects.filter(pk=message.pk).update(source_section_ids=message.source_section_ids)
        return cache.get(cache_key) if (cache_key := _cache_key(turn, hits, config)) else None

    cached = await db(retrieve)
    yield sse_event("sources", _sources_payload(hits))
    if cached:
        state.content, message.cached = cached["content"], True
        message.provider, message.model = cached["provider"], cached["model"]
        timings["first_token_ms"] = _ms(opened)
        yield sse_event("token", {"t": state.content}, id=len(state.content))
        state.status = Message.Status.COMPLETE
        return

    message.provider, message.model = (config.provider, config.model) if config else ("offline", "")
    result = StreamResult()
    if config:
        llm_messages = prompts.build_messages(
            question=turn.question,
            hits=hits,
            history=turn.history,
            film_title=turn.movie_title,
            history_budget_chars=settings.CHAT_HISTORY_BUDGET_CHARS,
        )
        pieces = stream_chat(config=config, messages=llm_messages, result=result)
    else:
        pieces = _aiter(offline.offline_answer(question=turn.question, hits=hits))
    timings["upstream_ms"] = _ms(opened)
    # Stopping (the watch cancels this task) closes the upstream request at once.
    async with contextlib.aclosing(pieces):
        async for piece in pieces:
            if not state.content:
                timings["first_token_ms"] = _ms(opened)
            state.content += piece
            yield sse_event("token", {"t": piece}, id=len(state.content))
    if result.model:
        message.model = result.model
    state.status = Message.Status.COMPLETE
    if cache_key := _cache_key(turn, hits, config):
        entry = {"content": state.content, "provider": message.provider, "model": message.model}
        await db(lambda: cache.set(cache_key, entry, settings.RESPONSE_CACHE_TTL))


async def _finish(
    message: Message, *, state: _State, hits: Sequence[Hit], timings: dict[str, Any]
) -> tuple[Message, bytes]:
    """Write the terminal state once (a message the stop endpoint already ended stays `stopped`, with the text), and
    make its final event. The answer's Markdown is rendered there too, off the event loop: a few hundred answers
    ending together rendered on the loop held up the tokens of all the others."""
    fields: dict[str, Any] = {
        "content": state.content,
        "cited_section_ids": prompts.parse_citations(state.content, allowed_ids={hit.section_id for hit in hits}),
        "provider": message.provider,
        "model": message.model,
        "cached": message.cached,
        "timings": timings,
        "finished_at": timezone.now(),
    }
    if state.error:
        fields.update(error_code=state.error.code, error_text=state.error.message)
        fields["timings"] = {**timings, "retryable": state.error.retryable, "retry_after": state.error.retry_after}
    open_states = [Message.Status.STREAMING, Message.Status.PENDING]

    def write() -> tuple[Message, bytes]:
        updated = Message.objects.filter(pk=message.pk, status__in=open_states).update(status=state.status, **fields)
        if not updated:
            Message.objects.filter(pk=message.pk).update(**fields)
        finished = Message.objects.get(pk=message.pk)
        return finished, _final_events(finished, hits)

    return await db(write)


# Retrieval, the answer cache and helpers.


async def _search_query(turn: Turn, config: LLMConfig | None) -> str:
    """A follow-up ("and who directed it?") rewritten as a standalone search query."""
    if not turn.history:
        return turn.question
    if config:
        try:
            condensed = await asyncio.wait_for(
                complete_chat(
                    config=config,
                    messages=prompts.condense_messages(question=turn.question, history=turn.history),
                    max_tokens=60,
                    temperature=0.0,
                ),
                timeout=settings.LLM_TIMEOUT,
            )
            if condensed.strip():
                return " ".join(condensed.split())[:500]
        except (LLMError, TimeoutError) as exc:
            logger.info("Condensing the follow-up failed (%s); using the heuristic", getattr(exc, "code", exc))
    return prompts.condense_heuristic(question=turn.question, history=turn.history, film_title=turn.movie_title)


def _retrieve(turn: Turn, query: str, vector: Any) -> list[Hit]:
    if turn.movie_id is not None:
        return search_movie(movie_id=turn.movie_id, query=query, vector=vector).hits
    return search_all(query=query, vector=vector).hits


def _cache_key(turn: Turn, hits: Sequence[Hit], config: LLMConfig | None) -> str | None:
    """Only a first question is cached (a follow-up's answer depends on the conversation), keyed by the film, the
    normalised question, the answerer, and the exact sections given (so new report text means a new key)."""
    if turn.history or turn.message.regenerated_from_id or settings.RESPONSE_CACHE_TTL <= 0:
        return None
    answerer = f"{config.provider}:{config.model}" if config else "offline"
    sections = ",".join(f"{hit.section_id}:{text_hash(hit.content)[:16]}" for hit in hits)
    raw = f"{turn.movie_id}|{normalize_query(turn.question)}|{answerer}|{sections}"
    return "answer:" + hashlib.sha256(raw.encode()).hexdigest()


async def _aiter(pieces: Iterator[str]) -> AsyncIterator[str]:
    for piece in pieces:
        yield piece


async def db(work: Callable[[], T]) -> T:
    """Run ORM work on the streams' database threads and give the connection back to the pool at once.

    A stream lives for minutes and mostly waits: holding a pooled connection for its whole life capped a worker at
    the pool's size of open streams (measured: stream 11 of a 10-connection pool waited 10 s and failed). Each call
    stands alone (no transaction spans two), so any thread will do: a fixed set of them, as many as the pool has
    connections, rather than a new thread for every request as Django's thread-sensitive default makes."""

    def run() -> T:
        try:
            return work()
        finally:
            connection.close()

    return await sync_to_async(run, thread_sensitive=False, executor=_db_executor())()


_db_pool: ThreadPoolExecutor | None = None


def _db_executor() -> ThreadPoolExecutor:
    global _db_pool
    if _db_pool is None:
        _db_pool = ThreadPoolExecutor(max(1, settings.DB_POOL_MAX), thread_name_prefix="chat-db")
    return _db_pool


async def _update(message_pk: int, *, only_status: str | None = None, **fields: Any) -> int:
    """UPDATE one message (only while it has `only_status`, when given); the number of rows changed."""
    rows = Message.objects.filter(pk=message_pk)
    if only_status:
        rows = rows.filter(status=only_status)
    return await db(lambda: rows.update(**fields))


def _watch(message_pk: int) -> Message:
    """Read a message a follower relays, and mark it watched while it is still being written."""
    message = Message.objects.get(pk=message_pk)
    if not message.is_finished:
        Message.objects.filter(pk=message_pk).update(watched_at=Now())
    return message


def _stale_seconds() -> float:
    """How long a streaming message may stay unchanged before a follower declares its writer gone: longer than
    the writer itself waits for a silent upstream before failing."""
    return settings.LLM_TIMEOUT + 30


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


def _log_turn(message: Message, timings: dict[str, Any]) -> None:
    logger.info(
        "chat turn message=%s status=%s provider=%s model=%s cached=%s embed_ms=%s search_ms=%s upstream_ms=%s "
        "first_token_ms=%s total_ms=%s",
        message.uuid,
        message.status,
        message.provider or "-",
        message.model or "-",
        message.cached,
        timings.get("embed_ms"),
        timings.get("search_ms"),
        timings.get("upstream_ms"),
        timings.get("first_token_ms"),
        timings.get("total_ms"),
    )
