"""The real ASGI app served by uvicorn on 127.0.0.1 in a background thread, and a small SSE reader."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn


class LiveASGIServer:
    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="live-asgi", daemon=True)
        self.url = ""

    def start(self) -> LiveASGIServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class Event:
    event: str
    data: Any
    id: str | None


def parse_sse(raw: bytes) -> list[Event]:
    """Events of an SSE body (comments and retry lines skipped); data is decoded JSON."""
    events = []
    for block in raw.decode().split("\n\n"):
        fields: dict[str, list[str]] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)
        if "data" in fields:
            data = "\n".join(fields["data"])
            events.append(Event(fields.get("event", ["message"])[0], json.loads(data), fields.get("id", [None])[0]))
    return events


def read_stream(client: httpx.Client, url: str, **kwargs: Any) -> tuple[httpx.Response, bytes, list[Event]]:
    with client.stream("GET", url, timeout=30, **kwargs) as response:
        raw = response.read()
    return response, raw, parse_sse(raw)


def iter_events(response: httpx.Response) -> Iterator[Event]:
    """Events as they arrive on an open streaming response."""
    buffer = b""
    for chunk in response.iter_raw():
        buffer += chunk
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            yield from parse_sse(block + b"\n\n")
