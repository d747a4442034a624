"""Server-Sent Events framing (https://html.spec.whatwg.org/multipage/server-sent-events.html)."""

import json
from typing import Any


def sse_event(
    event: str | None = None, data: Any = None, *, id: str | int | None = None, retry: int | None = None
) -> bytes:
    """One event. `data` is sent as compact JSON; its newlines are escaped by JSON, so it is always one line."""
    lines = []
    if retry is not None:
        lines.append(f"retry: {int(retry)}")
    if id is not None:
        lines.append(f"id: {id}")
    if event:
        lines.append(f"event: {event}")
    if data is not None:
        lines.append("data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode()


def sse_comment(text: str) -> bytes:
    return f": {text}\n\n".encode()
