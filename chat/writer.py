"""The writer: the task that runs a turn's pipeline for the stream that claimed its message, persists what it
yields, and sends it on, as Server-Sent Events, to the response that opened the stream.

The task outlives that response for a moment: a reloaded page follows the answer from the database and it goes on;
if nobody does, the watch stops it within a second. Every path ends the message in exactly one of `complete`,
`failed` or `stopped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass, field

from chat import payloads
from chat.citations import parse_citations
from chat.database import db
from chat.listener import Listener
from chat.models import Message
from chat.pipeline import INTERNAL_ERROR, Answering, Done, Error, Event, Sources, Text, Turn, TurnError, answer_turn
from chat.sse import sse_event
from chat.watch import Writing, watch_of_loop
from reports.search import Hit

logger = logging.getLogger(__name__)

_writers: set[asyncio.Task[None]] = set()


def start_writer(*, message: Message, turn: Turn, opened: float) -> Listener:
    """Start writing the answer of a claimed message; what it sends goes to the returned listener."""
    listener = Listener()
    task = asyncio.create_task(_write(message, turn, opened, listener))
    _writers.add(task)
    task.add_done_callback(_writers.discard)
    return listener


@dataclass
class _Answer:
    """What the writer knows of the answer so far (its text is on the `Writing`, where the watch saves it from)."""

    hits: tuple[Hit, ...] = ()
    provider: str = ""
    model: str = ""
    cached: bool = False
    status: str = Message.Status.FAILED
    error: TurnError | None = None
    timings: dict[str, float] = field(default_factory=dict)


async def _write(message: Message, turn: Turn, opened: float, listener: Listener) -> None:
    answer = _Answer()
    watch = watch_of_loop()
    task = asyncio.current_task()
    assert task is not None
    writing = Writing(message.pk, listener, task)
    watch.add(writing)
    try:
        async with contextlib.aclosing(answer_turn(turn=turn, opened=opened)) as events:
            async for event in events:
                if chunk := await _take(event, answer=answer, writing=writing, opened=opened):
                    listener.send(chunk)
    except asyncio.CancelledError:
        # Stopped by the watch (the upstream request was closed by the aclosing() above), or the server is
        # shutting down.
        answer.status = Message.Status.STOPPED
        if not writing.stopping:
            raise
        task.uncancel()
    except Exception:
        if await db(Message.objects.filter(pk=message.pk).exists):
            logger.exception("Chat turn %s failed", message.uuid)
        answer.error, answer.status = INTERNAL_ERROR, Message.Status.FAILED
    finally:
        watch.remove(writing)
        answer.timings["total_ms"] = _ms(opened)
        finished, final = await db(functools.partial(_finish, message, answer, writing.content))
        if finished is None:  # deleted with its conversation while it was written
            logger.info("chat turn message=%s status=deleted", message.uuid)
        else:
            _log_turn(finished, answer.timings)
        listener.send(final)
        listener.send(None)


async def _take(event: Event, *, answer: _Answer, writing: Writing, opened: float) -> bytes | None:
    """Record one event of the pipeline; the SSE bytes it sends, if any."""
    match event:
        case Sources(hits=hits):
            answer.hits = hits
            answer.timings.update(embed_ms=event.embed_ms, search_ms=event.search_ms)
            section_ids = [hit.section_id for hit in hits]
            await db(lambda: Message.objects.filter(pk=writing.message_pk).update(source_section_ids=section_ids))
            return sse_event("sources", {"sources": payloads.sources_payload(hits)})
        case Answering():
            answer.provider, answer.model, answer.cached = event.provider, event.model, event.cached
            if event.upstream_ms is not None:
                answer.timings["upstream_ms"] = event.upstream_ms
        case Text(text=text):
            if not writing.content:
                answer.timings["first_token_ms"] = _ms(opened)
            writing.content += text
            return sse_event("token", {"t": text}, id=len(writing.content))
        case Done():
            answer.model, answer.status = event.model, Message.Status.COMPLETE
        case Error():
            answer.error, answer.status = event.error, Message.Status.FAILED
    return None


def _finish(message: Message, answer: _Answer, content: str) -> tuple[Message | None, bytes]:
    """Write the terminal state once, and make the final event: the message as it ends (None when it was deleted
    meanwhile, with the `deleted` error). The answer's Markdown is rendered there too, off the event loop: a few
    hundred answers ending together rendered on the loop held up the tokens of all others."""
    fields = {
        "content": content,
        "cited_section_ids": parse_citations(content, allowed_ids={hit.section_id for hit in answer.hits}),
        "provider": answer.provider,
        "model": answer.model,
        "cached": answer.cached,
        "timings": answer.timings,
    }
    rows = Message.objects.filter(pk=message.pk)
    if answer.status == Message.Status.FAILED:
        error = answer.error or INTERNAL_ERROR
        rows.fail(
            code=error.code, text=error.message, retryable=error.retryable, retry_after=error.retry_after, **fields
        )
    else:
        rows.finish(status=answer.status, **fields)
    finished = rows.first()
    if finished is None:
        return None, payloads.deleted_event(message.uuid)
    return finished, payloads.final_event(finished, answer.hits)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


def _log_turn(message: Message, timings: dict[str, float]) -> None:
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
