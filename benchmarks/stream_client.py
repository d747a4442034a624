"""The stream benchmark's client, a process of its own (`python -m benchmarks.stream_client JOB`): asyncio, for
each stream a POST of a question to a film's chat (CSRF cookie and header, a new anonymous session each), then, once
every POST has answered, all the GETs of the streams at once, each read as an EventSource reads it. It records the
first byte of each stream and the arrival of every token, and writes them to the job's "out" file."""

from __future__ import annotations

import asyncio
import json
import random
import re
import resource
import string
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from benchmarks.measure import percentiles

TOKEN = re.compile(rb"r(\d+)t(\d+)")
SESSION_COOKIE = re.compile(rb"(?im)^set-cookie: sessionid=([^;\r\n]+)")
EVENT = re.compile(rb"^event: (\w+)$", re.MULTILINE)


def raise_open_files_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def run_client(job: dict[str, Any]) -> dict[str, Any]:
    lags: list[float] = []
    done = asyncio.Event()

    async def watch_loop() -> None:
        """How late this client's own event loop wakes up: its share of any delay it measures."""
        while not done.is_set():
            started = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append((time.monotonic() - started - 0.01) * 1000)

    # Plain asyncio, one connection per request as a browser opening a page's chat would use: httpx's own CPU per
    # request (a few ms) was a fifth of the machine's during a burst of questions, taken from the server it measures.
    # The CSRF cookie a film page would set: a 32-character secret, sent back as cookie and header. (The pages
    # themselves answer 500 with DEBUG off until collectstatic has written the static manifest, which this benchmark
    # does not do in the repository.)
    csrf = "".join(random.choices(string.ascii_letters + string.digits, k=32))
    host, port = job["url"].removeprefix("http://").split(":")

    async def ask(number: int) -> dict[str, Any]:
        slug = job["slugs"][number % len(job["slugs"])]
        body = urlencode({"question": job["questions"][number % len(job["questions"])]}).encode()
        request = (
            f"POST /movies/{slug}/chat/ HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: csrftoken={csrf}\r\n"
            f"X-CSRFToken: {csrf}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body
        started = time.monotonic()
        writer = None
        try:
            async with asyncio.timeout(120):
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(request)
                response = await reader.read()  # to the end: the server closes the connection after it
        except (OSError, TimeoutError) as exc:
            return {"error": f"ask: {type(exc).__name__}", "post_ms": (time.monotonic() - started) * 1000}
        finally:
            if writer is not None:
                writer.close()
        post_ms = (time.monotonic() - started) * 1000
        head, _, content = response.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        if status != 201:
            return {"error": f"ask: HTTP {status}", "post_ms": post_ms}
        if b"transfer-encoding: chunked" in head.lower():
            content = dechunk(content)[0]
        payload = json.loads(content)
        session = SESSION_COOKIE.search(head)
        return {
            "message": payload["message"],
            "stream": payload["stream"],
            "session": session.group(1).decode() if session else None,
            "post_ms": post_ms,
        }

    async def listen(stream: dict[str, Any]) -> None:
        """One stream as an EventSource reads it, over a connection of its own (with httpx, at 1,000 streams, its
        cost per read made this client the slowest part of the measurement)."""
        cookie = f"csrftoken={csrf}; sessionid={stream['session']}"
        stream["t0"] = started = time.monotonic()
        tokens: list[tuple[str, float]] = []
        stream["tokens"] = tokens
        events = b""
        writer = None
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                f"GET {stream['stream']} HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {cookie}\r\n"
                "Accept: text/event-stream\r\nConnection: close\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            now = time.monotonic()
            stream["headers_ms"] = (now - started) * 1000
            status = int(head.split(b" ", 2)[1])
            if status != 200:
                stream["error"] = f"stream: HTTP {status}"
                return
            chunked = b"transfer-encoding: chunked" in head.lower()
            raw = b""
            while True:
                data = await reader.read(65536)
                now = time.monotonic()
                if not data:
                    break
                if chunked:
                    raw += data
                    body, raw, finished = dechunk(raw)
                else:
                    body, finished = data, False
                if body and "ttfb_ms" not in stream:
                    stream["ttfb_ms"] = (now - started) * 1000
                events += body
                cut = events.rfind(b"\n\n")
                if cut >= 0:
                    complete, events = events[: cut + 2], events[cut + 2 :]
                    for event in complete.split(b"\n\n"):
                        name = EVENT.search(event)
                        if name is None:
                            continue
                        if name.group(1) == b"token":
                            tokens.extend((match.group(0).decode(), now) for match in TOKEN.finditer(event))
                        elif name.group(1) in (b"done", b"error"):
                            stream["final"] = name.group(1).decode()
                            payload = event.split(b"data: ", 1)[1].split(b"\n", 1)[0]
                            stream["status"] = json.loads(payload).get("status")
                if finished:
                    break
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            stream["error"] = f"stream: {type(exc).__name__}"
        finally:
            if writer is not None:
                writer.close()
        stream["end_ms"] = (time.monotonic() - started) * 1000

    watcher = asyncio.create_task(watch_loop())
    semaphore = asyncio.Semaphore(64)

    async def bounded_ask(number: int) -> dict[str, Any]:
        async with semaphore:
            return await ask(number)

    streams: list[dict[str, Any]] = []
    if job["sequential"]:
        for number in range(job["count"]):
            stream = await ask(number)
            streams.append(stream)
            if "error" not in stream:
                await listen(stream)
    else:
        posted = time.monotonic()
        streams = list(await asyncio.gather(*(bounded_ask(number) for number in range(job["count"]))))
        post_seconds = time.monotonic() - posted
        opened = time.monotonic()
        await asyncio.gather(*(listen(stream) for stream in streams if "error" not in stream))
        job["post_seconds"] = post_seconds
        job["stream_seconds"] = time.monotonic() - opened
    done.set()
    await watcher
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"streams": streams, "loop_lag_ms": percentiles(lags), "cpu_seconds": usage.ru_utime + usage.ru_stime, **job}


def dechunk(raw: bytes) -> tuple[bytes, bytes, bool]:
    """Decode what is complete of an HTTP/1.1 chunked body: (data, the undecoded rest, whether the body ended)."""
    data = []
    while True:
        line_end = raw.find(b"\r\n")
        if line_end < 0:
            return b"".join(data), raw, False
        size = int(raw[:line_end].split(b";", 1)[0], 16)
        if size == 0:
            return b"".join(data), b"", True
        start = line_end + 2
        if len(raw) < start + size + 2:
            return b"".join(data), raw, False
        data.append(raw[start : start + size])
        raw = raw[start + size + 2 :]


def client_main(job_path: str) -> None:
    import uvloop

    raise_open_files_limit()
    job = json.loads(Path(job_path).read_text())
    result = uvloop.run(run_client(job))
    Path(job["out"]).write_text(json.dumps(result))


if __name__ == "__main__":
    client_main(sys.argv[1])
