"""The stream of an assistant message: the stream that opens it first while it is `pending` claims it and writes
the answer (chat.writer); any other stream of it follows the stored text to its end (chat.following)."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator

from chat.database import db
from chat.following import follow
from chat.models import Message
from chat.pipeline import Turn, load_turn
from chat.sse import sse_comment, sse_event
from chat.turns import pending_expiry
from chat.writer import start_writer


async def stream_message(*, message: Message, offset: int = 0) -> AsyncIterator[bytes]:
    """The SSE stream of one assistant message, starting after `offset` characters of its text."""
    opened = time.perf_counter()
    # First bytes at once, before any work: the browser and proxies see a live stream immediately.
    yield sse_event(retry=2000) + sse_comment("flickora")
    claimed = await db(functools.partial(_claim, message.pk))
    if claimed is None:
        async for chunk in follow(message, offset):
            yield chunk
        return
    listener = start_writer(message=claimed[0], turn=claimed[1], opened=opened)
    try:
        async for chunk in listener.chunks():
            yield chunk
    finally:
        listener.leave()


def _claim(message_pk: int) -> tuple[Message, Turn] | None:
    """Take a pending message (pending → streaming) and load its turn; None when another stream already has it, or
    when it was asked too long ago and expires instead (its stream then shows that end)."""
    rows = Message.objects.filter(pk=message_pk)
    if not rows.claim(asked_since=pending_expiry()):
        rows.expire_unopened(asked_before=pending_expiry())
        return None
    message = Message.objects.select_related("conversation__movie", "reply_to").get(pk=message_pk)
    return message, load_turn(message)
