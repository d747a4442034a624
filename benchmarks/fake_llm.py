"""A real HTTP server on 127.0.0.1 that speaks OpenRouter's streaming chat format, with scripted faults.

It is a raw asyncio TCP server running in a background thread, because the faults we need (a TCP reset
mid-stream, a hang after the headers, a UTF-8 character split across two TCP writes) need byte-level
control that http.server does not give.

    with FakeLLMServer() as server:
        server.set_scenario("ok", tokens=["Hi", "!"], delay=0.01)
        config = LLMConfig(model="test/model", base_url=server.base_url, api_key="sk-test")
        ...
        server.requests[-1].headers["authorization"]   # header names are lower-case

The tests use it through their `fake_llm` fixture (tests/conftest.py), `make bench` through `BenchLLMServer`
(below: the "bench" scenario with numbered tokens and the time each was written), scripts/screenshots.py as it is.

Scenarios (`server.set_scenario(name, **params)`, or `server.scenario = name` for default params):

- "ok": `: OPENROUTER PROCESSING` comments, one chunk per token, a `finish_reason: "stop"` chunk, a
  usage-only chunk with empty `choices`, then `data: [DONE]`. Params: tokens, delay (seconds between
  tokens), model, newline ("\\n", "\\r\\n" or "\\r"), comments (how many processing lines),
  send_finish, send_usage, send_done, multiline_data (split each JSON over two `data:` lines).
- "crlf": "ok" with every line ending in CRLF.
- "empty_choices_usage": "ok" (which always ends with the usage-only chunk); named for the test.
- "split_utf8": tokens with multi-byte characters, each chunk written in two TCP writes that cut a
  character in half, with a flush and a pause between them.
- "echo": streams back the last user message word by word (whitespace kept, so the join is exact).
- "scripted": streams `tokens` exactly as given (required param).
- "bench": `n` tokens at `tokens_per_second`.
- "status_<code>" (401, 402, 429 with `Retry-After: 7`, 500, 503, or any other): an OpenRouter-style
  JSON error body `{"error": {"code": ..., "message": ...}}`. Params: message, retry_after.
- "connect_timeout": `base_url` then points at a second loopback socket whose accept queue is full and
  which never accepts, so the kernel drops further SYNs and a connect attempt times out.
- "hang_after_headers": 200 and the headers (plus `tokens_before` tokens, default 0), then silence until
  the client gives up.
- "reset_mid_stream": `after` tokens (default 3), then a TCP RST (SO_LINGER 0 and close).
- "error_chunk_after_tokens": `after` tokens, then a chunk with an `error` object and
  `finish_reason: "error"`, then EOF.
- "no_done": the tokens, then a clean end of the body without finish_reason, usage or [DONE].
- "raw": writes `chunks` (a list of bytes or str) as they are, one TCP write each, after a 200 with
  `content_type` (default text/event-stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_TOKENS: tuple[str, ...] = ("Hello", ",", " this", " is", " a", " fake", " reply", ".")
SPLIT_UTF8_TOKENS: tuple[str, ...] = ("Le", " café", " à", " 日本", " 🎬")
DEFAULT_MODEL = "fake/model"
CHAT_PATH = "/api/v1/chat/completions"

STATUS_ERRORS: dict[int, tuple[str, str]] = {
    400: ("Bad Request", "Invalid request"),
    401: ("Unauthorized", "No auth credentials found"),
    402: ("Payment Required", "Insufficient credits. Add more using https://openrouter.ai/credits"),
    403: ("Forbidden", "Key is disabled"),
    404: ("Not Found", "No endpoints found for this model"),
    408: ("Request Timeout", "Request timed out"),
    429: ("Too Many Requests", "Rate limit exceeded: free-models-per-min"),
    500: ("Internal Server Error", "Internal Server Error"),
    502: ("Bad Gateway", "Provider returned error"),
    503: ("Service Unavailable", "No available model provider that meets your routing requirements"),
    504: ("Gateway Timeout", "Upstream timed out"),
}

SCENARIOS = frozenset(
    {
        "ok",
        "crlf",
        "empty_choices_usage",
        "split_utf8",
        "echo",
        "scripted",
        "bench",
        "connect_timeout",
        "hang_after_headers",
        "reset_mid_stream",
        "error_chunk_after_tokens",
        "no_done",
        "raw",
    }
)
_STATUS_SCENARIO = re.compile(r"status_(\d{3})")

# How often a waiting handler checks whether the client went away: bounds how late `closed_early` is.
_POLL = 0.01


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None when the body was empty or not JSON
    raw_body: bytes
    scenario: str
    at: float  # time.monotonic() when the request was fully read


@dataclass
class ClosedEarly:
    path: str
    scenario: str
    tokens_sent: int
    at: float  # time.monotonic() when the server noticed the client had gone


class _ClientGone(Exception):
    """The client closed the connection while a response was still being written."""


@dataclass
class _Response:
    """Per-request state for the streaming writers."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    request: RecordedRequest
    params: dict[str, Any]
    newline: str = "\n"
    tokens_sent: int = 0
    chunk_id: str = field(default_factory=lambda: f"gen-{time.time_ns()}")


class FakeLLMServer:
    def __init__(self, host: str = "127.0.0.1", *, tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.tls = tls  # a server context: HTTPS, as OpenRouter speaks it
        self.port = 0
        self.requests: list[RecordedRequest] = []
        self.closed_early: list[ClosedEarly] = []
        self._scenario = "ok"
        self.params: dict[str, Any] = {}
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._startup_error: BaseException | None = None
        self._blackhole: socket.socket | None = None
        self._blackhole_fillers: list[socket.socket] = []

    # --- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        self._thread = threading.Thread(target=self._run, name="fake-llm-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("fake LLM server did not start")
        if self._startup_error is not None:
            raise RuntimeError("fake LLM server failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may already be shutting down
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for sock in [*self._blackhole_fillers, *([self._blackhole] if self._blackhole else [])]:
            sock.close()
        self._blackhole_fillers = []
        self._blackhole = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- test-facing API --------------------------------------------------------------------------------

    @property
    def scenario(self) -> str:
        return self._scenario

    @scenario.setter
    def scenario(self, name: str) -> None:
        self.set_scenario(name)

    def set_scenario(self, name: str, **params: Any) -> None:
        if name not in SCENARIOS and not _STATUS_SCENARIO.fullmatch(name):
            raise ValueError(f"unknown scenario {name!r}")
        if name == "scripted" and "tokens" not in params:
            raise ValueError("the scripted scenario needs tokens=[...]")
        if name == "connect_timeout":
            self._ensure_blackhole()
        self.params = params
        self._scenario = name

    def reset(self) -> None:
        """Back to "ok" with default params and no recorded requests or disconnects."""
        with self._cond:
            self.requests.clear()
            self.closed_early.clear()
        self.set_scenario("ok")

    @property
    def origin(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API root to configure the client with (the black-hole socket under "connect_timeout")."""
        if self._scenario == "connect_timeout" and self._blackhole is not None:
            host, port = self._blackhole.getsockname()[:2]
            return f"http://{host}:{port}/api/v1"
        return f"{self.origin}/api/v1"

    def wait_for_closed_early(self, timeout: float = 2.0) -> ClosedEarly | None:
        """Block until the server has seen a client leave mid-response; the first such event, or None."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self.closed_early), timeout)
            return self.closed_early[0] if self.closed_early else None

    def wait_for_requests(self, count: int, timeout: float = 2.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.requests) >= count, timeout)

    # --- server thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced by start() instead of dying silently in the thread
            self._startup_error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._on_connection, self.host, 0, backlog=4096, ssl=self.tls)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await server.wait_closed()

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Each write must leave as its own segment, or the split_utf8 halves would be coalesced.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            keep_alive = True
            while keep_alive:
                request = await self._read_request(reader)
                if request is None:
                    break
                keep_alive = await self._respond(request, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, _ClientGone):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("fake LLM server handler failed")
        finally:
            self._handlers.discard(task)
            if not writer.is_closing():
                writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_request(self, reader: asyncio.StreamReader) -> RecordedRequest | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None  # the client closed an idle keep-alive connection
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        # Absolute form ("POST http://host/api/...") is what a client sends through a proxy: the fake then plays
        # the proxy and the server both (HTTP/1.1 servers accept it too).
        target = re.sub(r"^https?://[^/]+", "", target)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        length = int(headers.get("content-length", "0"))
        raw = await reader.readexactly(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = RecordedRequest(method, target, headers, body, raw, self._scenario, time.monotonic())
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()
        return request

    # --- responses --------------------------------------------------------------------------------------

    async def _respond(
        self, request: RecordedRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; returns whether the connection can be kept for the next one."""
        if request.path.split("?")[0] != CHAT_PATH:
            return await self._send_json(writer, 404, {"error": {"code": 404, "message": "Not Found"}})
        if request.method != "POST":
            return await self._send_json(writer, 405, {"error": {"code": 405, "message": "Use POST"}})
        scenario, params = request.scenario, dict(self.params)
        status_match = _STATUS_SCENARIO.fullmatch(scenario)
        if status_match:
            return await self._send_status_error(writer, int(status_match.group(1)), params)
        if scenario == "connect_timeout":
            # The client was pointed at the black hole, so a request here means the test is miswired.
            return await self._send_json(writer, 500, {"error": {"code": 500, "message": "miswired test"}})
        body = request.body if isinstance(request.body, dict) else {}
        if scenario == "raw":
            return await self._send_raw(reader, writer, request, params)
        resp = _Response(reader, writer, request, params)
        await self._send_stream_headers(resp)
        try:
            if scenario == "hang_after_headers":
                await self._send_tokens(
                    resp, list(params.get("tokens", DEFAULT_TOKENS))[: params.get("tokens_before", 0)]
                )
                await self._hang(resp)
                return False
            if scenario == "reset_mid_stream":
                await self._send_tokens(resp, list(params.get("tokens", DEFAULT_TOKENS))[: params.get("after", 3)])
                # Let the client read those tokens first: data still unread when an RST lands is discarded.
                await self._sleep_watching(resp, params.get("pause", 0.2))
                self._reset(writer)
                return False
            if scenario == "error_chunk_after_tokens":
                await self._send_tokens(resp, list(params.get("tokens", DEFAULT_TOKENS))[: params.get("after", 3)])
                await self._send_event(resp, self._error_chunk(resp, params))
                await self._end_body(resp)
                return True
            if scenario == "no_done":
                await self._send_tokens(resp, list(params.get("tokens", DEFAULT_TOKENS)))
                await self._end_body(resp)
                return True
            tokens, delay = self._tokens_for(scenario, params, body)
            resp.newline = params.get("newline", "\r\n" if scenario == "crlf" else "\n")
            for _ in range(params.get("comments", 2)):
                await self._write_chunk(resp, f": OPENROUTER PROCESSING{resp.newline}{resp.newline}")
            await self._send_tokens(resp, tokens, delay=delay, split=scenario == "split_utf8")
            if params.get("send_finish", True):
                await self._send_event(resp, self._chunk(resp, content="", finish_reason="stop"))
            if params.get("send_usage", True):
                await self._send_event(resp, self._usage_chunk(resp, body))
            if params.get("send_done", True):
                await self._send_data(resp, "[DONE]")
            await self._end_body(resp)
            return True
        except _ClientGone:
            self._record_closed_early(resp)
            return False

    def _tokens_for(self, scenario: str, params: dict[str, Any], body: dict[str, Any]) -> tuple[list[str], float]:
        delay = float(params.get("delay", 0.0))
        if scenario == "echo":
            messages = body.get("messages") or []
            last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
            return re.findall(r"\s*\S+\s*$|\s*\S+", str(last)), delay
        if scenario == "split_utf8":
            return list(params.get("tokens", SPLIT_UTF8_TOKENS)), delay
        if scenario == "bench":
            n = int(params.get("n", 100))
            rate = float(params.get("tokens_per_second", 50.0))
            return [f" tok{i}" for i in range(n)], (1.0 / rate if rate > 0 else 0.0)
        return list(params.get("tokens", DEFAULT_TOKENS)), delay

    def _chunk(self, resp: _Response, *, content: str | None, finish_reason: str | None) -> dict[str, Any]:
        delta: dict[str, Any] = {"role": "assistant", "content": content} if content is not None else {}
        return {
            "id": resp.chunk_id,
            "provider": "FakeProvider",
            "model": resp.params.get("model") or self._requested_model(resp),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish_reason, "native_finish_reason": finish_reason}
            ],
        }

    def _usage_chunk(self, resp: _Response, body: dict[str, Any]) -> dict[str, Any]:
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])
        usage = resp.params.get("usage") or {
            "prompt_tokens": prompt,
            "completion_tokens": resp.tokens_sent,
            "total_tokens": prompt + resp.tokens_sent,
            "cost": 0.0,
        }
        chunk = self._chunk(resp, content=None, finish_reason=None)
        chunk["choices"] = []
        chunk["usage"] = usage
        return chunk

    def _error_chunk(self, resp: _Response, params: dict[str, Any]) -> dict[str, Any]:
        chunk = self._chunk(resp, content="", finish_reason="error")
        chunk["error"] = {
            "code": params.get("code", "server_error"),
            "message": params.get("message", "Provider disconnected unexpectedly"),
        }
        return chunk

    def _requested_model(self, resp: _Response) -> str:
        body = resp.request.body if isinstance(resp.request.body, dict) else {}
        return str(body.get("model") or DEFAULT_MODEL)

    async def _send_tokens(
        self, resp: _Response, tokens: list[str], *, delay: float = 0.0, split: bool = False
    ) -> None:
        for index, token in enumerate(tokens):
            if index and delay:
                await self._sleep_watching(resp, delay)
            chunk = self._chunk(resp, content=token, finish_reason=None)
            if split:
                await self._send_split_utf8(resp, chunk)
            else:
                await self._send_event(resp, chunk)
            resp.tokens_sent += 1

    async def _send_event(self, resp: _Response, chunk: dict[str, Any]) -> None:
        data = json.dumps(chunk, ensure_ascii=False)
        if resp.params.get("multiline_data"):
            # Two data lines joined by "\n" are still the same JSON (a newline is whitespace there).
            cut = data.index(",") + 1
            nl = resp.newline
            await self._write_chunk(resp, f"data: {data[:cut]}{nl}data: {data[cut:]}{nl}{nl}")
            return
        await self._send_data(resp, data)

    async def _send_data(self, resp: _Response, data: str) -> None:
        await self._write_chunk(resp, f"data: {data}{resp.newline}{resp.newline}")

    async def _send_split_utf8(self, resp: _Response, chunk: dict[str, Any]) -> None:
        raw = f"data: {json.dumps(chunk, ensure_ascii=False)}{resp.newline}{resp.newline}".encode()
        # Cut one byte into the first multi-byte character (lead bytes are >= 0xC0).
        lead = next((i for i, b in enumerate(raw) if b >= 0xC0), None)
        if lead is None:
            await self._write_chunk(resp, raw)
            return
        await self._write_chunk(resp, raw[: lead + 1])
        await self._sleep_watching(resp, 0.02)  # so the halves arrive in separate reads
        await self._write_chunk(resp, raw[lead + 1 :])

    async def _send_stream_headers(self, resp: _Response) -> None:
        content_type = resp.params.get("content_type", "text/event-stream")
        head = (
            "HTTP/1.1 200 OK\r\n"
            f"Content-Type: {content_type}\r\n"
            "Cache-Control: no-cache\r\n"
            "Transfer-Encoding: chunked\r\n"
            "Connection: keep-alive\r\n"
            "\r\n"
        )
        await self._write(resp.writer, head.encode())

    async def _write_chunk(self, resp: _Response, data: str | bytes) -> None:
        raw = data.encode() if isinstance(data, str) else data
        if not raw:
            return
        await self._write(resp.writer, b"%x\r\n%s\r\n" % (len(raw), raw))

    async def _end_body(self, resp: _Response) -> None:
        await self._write(resp.writer, b"0\r\n\r\n")

    async def _write(self, writer: asyncio.StreamWriter, raw: bytes) -> None:
        if writer.is_closing():
            raise _ClientGone
        try:
            writer.write(raw)
            await writer.drain()
        except (ConnectionError, OSError) as exc:
            raise _ClientGone from exc

    async def _sleep_watching(self, resp: _Response, seconds: float) -> None:
        """Sleep, but notice within _POLL seconds if the client hangs up meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            if self._client_gone(resp):
                raise _ClientGone
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(_POLL, remaining))

    async def _hang(self, resp: _Response) -> None:
        while not self._client_gone(resp):
            await asyncio.sleep(_POLL)
        self._record_closed_early(resp)

    @staticmethod
    def _client_gone(resp: _Response) -> bool:
        # The transport keeps reading in the background, so EOF (FIN) or a reset shows up here even though
        # nobody awaits the reader while a response is being written.
        return resp.reader.at_eof() or resp.writer.is_closing()

    def _record_closed_early(self, resp: _Response) -> None:
        event = ClosedEarly(resp.request.path, resp.request.scenario, resp.tokens_sent, time.monotonic())
        with self._cond:
            self.closed_early.append(event)
            self._cond.notify_all()

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Linger on with a zero timeout: close() then sends RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def _send_json(
        self, writer: asyncio.StreamWriter, status: int, payload: dict[str, Any], extra: str = ""
    ) -> bool:
        reason = STATUS_ERRORS.get(status, ("Error", ""))[0]
        body = json.dumps(payload).encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: keep-alive\r\n\r\n"
        )
        await self._write(writer, head.encode() + body)
        return True

    async def _send_status_error(self, writer: asyncio.StreamWriter, status: int, params: dict[str, Any]) -> bool:
        message = params.get("message", STATUS_ERRORS.get(status, ("", f"HTTP {status}"))[1])
        retry_after = params.get("retry_after", 7 if status == 429 else None)
        extra = f"Retry-After: {retry_after}\r\n" if retry_after is not None else ""
        payload = {"error": {"code": status, "message": message, "metadata": {"provider_name": "Fake"}}}
        return await self._send_json(writer, status, payload, extra)

    async def _send_raw(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: RecordedRequest,
        params: dict[str, Any],
    ) -> bool:
        resp = _Response(reader, writer, request, params)
        await self._send_stream_headers(resp)
        try:
            for piece in params.get("chunks", []):
                await self._write_chunk(resp, piece)
                await self._sleep_watching(resp, float(params.get("delay", 0.0)))
            await self._end_body(resp)
        except _ClientGone:
            self._record_closed_early(resp)
            return False
        return True

    # --- connect timeout --------------------------------------------------------------------------------

    def _ensure_blackhole(self) -> None:
        """A loopback listener that never accepts and whose accept queue is full.

        Linux drops a SYN aimed at a listener with a full accept queue (it does not refuse it), so the
        client keeps retransmitting and its connect attempt times out — without leaving the machine.
        """
        if self._blackhole is not None:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((self.host, 0))
        listener.listen(0)
        address = listener.getsockname()
        self._blackhole = listener
        for _ in range(16):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            filler.connect_ex(address)
            self._blackhole_fillers.append(filler)
            time.sleep(0.02)
            if self._connect_times_out(address):
                return
        raise RuntimeError("cannot simulate a connect timeout: the kernel keeps accepting connections")

    @staticmethod
    def _connect_times_out(address: tuple[str, int]) -> bool:
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.settimeout(0.1)
        try:
            probe.connect(address)
        except TimeoutError:
            return True
        except OSError:
            return False
        finally:
            probe.close()
        return False


class BenchLLMServer(FakeLLMServer):
    """The "bench" scenario for `python -m benchmarks streams`: every token numbered (" r<request>t<index>"), the
    time each was written and when each request arrived recorded (time.monotonic is one clock for the machine), and
    two endpoints of its own: POST /bench/config (the scenario's n and tokens_per_second) and GET /bench/dump (what
    was recorded since the last dump, then forgotten). Its sleeps between tokens are plain sleeps: the base server
    polls every 10 ms for a client that left, which at 1,000 streams is 100,000 wake-ups a second of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers = itertools.count()
        self.sent: dict[str, float] = {}
        self.arrivals: dict[int, float] = {}

    async def _respond(
        self, request: RecordedRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        path = request.path.split("?")[0]
        if path == "/bench/config":
            self.set_scenario("bench", **(request.body or {}))
            return await self._send_json(writer, 200, {"ok": True})
        if path == "/bench/dump":
            data = {"sent": self.sent, "arrivals": self.arrivals, "requests": len(self.requests)}
            self.sent, self.arrivals = {}, {}
            self.requests.clear()
            self.closed_early.clear()
            return await self._send_json(writer, 200, data)
        return await super()._respond(request, reader, writer)

    async def _send_tokens(
        self, resp: _Response, tokens: list[str], *, delay: float = 0.0, split: bool = False
    ) -> None:
        number = next(self.numbers)
        self.arrivals[number] = resp.request.at
        for index in range(len(tokens)):
            if index and delay:
                if self._client_gone(resp):
                    raise _ClientGone
                await asyncio.sleep(delay)
            token = f" r{number}t{index}"
            await self._send_event(resp, self._chunk(resp, content=token, finish_reason=None))
            self.sent[token.strip()] = time.monotonic()
            resp.tokens_sent += 1
