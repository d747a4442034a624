"""Following an answer another stream is writing (a reload, a reconnect with Last-Event-ID, a second tab), or has
finished: its stored text from an offset, then its end, read from the database."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator

from django.conf import settings
from django.db.models.functions import Now

from chat import payloads
from chat.database import db
from chat.models import Message
from chat.sse import sse_comment, sse_event

# How often a follower re-reads a message another stream is writing.
FOLLOW_POLL_SECONDS = 0.2


async def follow(message: Message, offset: int) -> AsyncIterator[bytes]:
    """Replay a message another stream is writing (or has finished), from `offset` to its end; the `deleted` error
    if its conversation is deleted meanwhile."""
    message_pk, message_uuid = message.pk, message.uuid
    sent_sources = False
    last_sent = last_growth = time.monotonic()
    seen = -1
    while True:
        found = await db(functools.partial(_read_and_mark_watched, message_pk))
        if found is None:
            yield payloads.deleted_event(message_uuid)
            return
        message = found
        if len(message.content) != seen:
            seen, last_growth = len(message.content), time.monotonic()
        elif message.status == Message.Status.STREAMING and time.monotonic() - last_growth > _stale_seconds():
            # The process writing it died (a restart mid-answer): nothing will finish it but us.
            await db(lambda: Message.objects.filter(pk=message_pk).expire())
            continue
        if not sent_sources and message.source_section_ids:
            hits = await db(functools.partial(payloads.load_stored_hits, message.source_section_ids))
            yield sse_event("sources", {"sources": payloads.sources_payload(hits, scored=False)})
            sent_sources = True
        if len(message.content) > offset:
            yield sse_event("token", {"t": message.content[offset:]}, id=len(message.content))
            offset = len(message.content)
            last_sent = time.monotonic()
        if message.is_finished:
            hits = await db(functools.partial(payloads.load_stored_hits, message.source_section_ids))
            yield payloads.final_event(message, hits)
            return
        if time.monotonic() - last_sent >= settings.SSE_PING_SECONDS:
            yield sse_comment("ping")
            last_sent = time.monotonic()
        await asyncio.sleep(FOLLOW_POLL_SECONDS)


def _read_and_mark_watched(message_pk: int) -> Message | None:
    """Read a message a follower relays (None when it was deleted), and mark it watched while it is still being
    written."""
    message = Message.objects.filter(pk=message_pk).first()
    if message is not None and not message.is_finished:
        Message.objects.filter(pk=message_pk).update(watched_at=Now())
    return message


def _stale_seconds() -> float:
    """How long a streaming message may stay unchanged before a follower declares its writer gone: longer than
    the writer itself waits for a silent upstream before failing."""
    return settings.LLM_TIMEOUT + 30
