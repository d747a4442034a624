"""The response that opened an answer's stream, as the task writing the answer sees it: a queue of SSE bytes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator


class Listener:
    """What the writer sends to the response that opened the stream, until its end (None). `left_at` is when that
    response went away (the browser left or reloaded): from then on nothing is queued."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.left_at: float | None = None
        self.last_sent = time.monotonic()

    async def chunks(self) -> AsyncIterator[bytes]:
        """What the writer sends, until its end. Events that wait together (under load) go in one write."""
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
