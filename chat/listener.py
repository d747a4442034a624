"""The response that opened an answer's stream, as the task writing the answer sees it: a queue of SSE bytes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable


class Listener:
    """What the writer sends to the response that opened the stream, until its end (None). `left_at` is when that
    response went away (the browser left or reloaded): from then on nothing is queued. `clock`: seconds, as
    `time.monotonic` counts them (the watch reads both with the same clock)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.clock = clock
        self.left_at: float | None = None
        self.last_sent = clock()

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
            self.last_sent = self.clock()

    def leave(self) -> None:
        if self.left_at is None:
            self.left_at = self.clock()
