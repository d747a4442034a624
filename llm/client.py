"""Streaming chat completions against OpenRouter or any OpenAI-compatible server (Ollama, vLLM, ...).

Plain Python on purpose: nothing here imports Django, so settings arrive as an `LLMConfig` and the layer
can be tested against a fake server without a project around it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Required, TypedDict, Unpack
from urllib.parse import urlsplit

import aiohttp
import certifi

from .errors import (
    LLMError,
    error_from_chunk,
    error_from_status,
    error_from_transport,
    short_detail,
    upstream_error_detail,
)
from .loops import PerLoop
from .sse import SSEDecoder, SSELineTooLong

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
# Seconds: to connect, and the longest silence tolerated while reading. Django's settings default to these too.
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0

# Finish reasons that mean the model ended its answer on purpose; a stream that stops after one of these
# without `[DONE]` has still delivered everything.
NORMAL_FINISH_REASONS = frozenset({"stop", "length", "content_filter", "tool_calls", "function_call"})

# An error body is only read to extract a one-line detail; never buffer a whole HTML error page.
_MAX_ERROR_BODY = 64 * 1024
# A server that ignores `stream: true` sends the whole answer as one JSON document.
_MAX_JSON_ANSWER = 8 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class LLMConfig:
    model: str
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = field(default=None, repr=False)
    fallback_models: tuple[str, ...] = ()
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT  # the longest silence between two bytes, not a total deadline
    referer: str | None = None  # sent as HTTP-Referer: OpenRouter's app attribution
    title: str | None = None  # sent as X-Title

    def __post_init__(self) -> None:
        # Frozen, so normalise through object.__setattr__: settings often hold lists and trailing slashes.
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        object.__setattr__(self, "fallback_models", tuple(m for m in self.fallback_models if m))
        if self.api_key is not None and not self.api_key.strip():
            object.__setattr__(self, "api_key", None)

    @property
    def provider(self) -> str:
        host = (urlsplit(self.base_url).hostname or "").lower()
        return "openrouter" if host == "openrouter.ai" or host.endswith(".openrouter.ai") else "openai-compatible"

    @property
    def timeout(self) -> aiohttp.ClientTimeout:
        return _client_timeout(self.connect_timeout, self.read_timeout)

    def __repr__(self) -> str:
        # Written out by hand so that the key can never reach a log line or a traceback via repr().
        key = "'***'" if self.api_key else "None"
        return (
            f"LLMConfig(model={self.model!r}, base_url={self.base_url!r}, api_key={key}, "
            f"fallback_models={self.fallback_models!r}, connect_timeout={self.connect_timeout!r}, "
            f"read_timeout={self.read_timeout!r}, referer={self.referer!r}, title={self.title!r})"
        )


def config_from_settings(settings: Any) -> LLMConfig | None:
    """The LLM an app is configured with, read from an object with these attributes (Django's settings, say):
    OPENROUTER_API_KEY, LLM_BASE_URL, LLM_MODEL, LLM_FALLBACK_MODELS, LLM_CONNECT_TIMEOUT, LLM_TIMEOUT, LLM_REFERER,
    LLM_TITLE. None when neither a key nor a base URL is set: the app has no LLM."""
    api_key = getattr(settings, "OPENROUTER_API_KEY", "") or None
    base_url = getattr(settings, "LLM_BASE_URL", "") or None
    if not api_key and not base_url:
        return None
    return LLMConfig(
        model=settings.LLM_MODEL,
        base_url=base_url or DEFAULT_BASE_URL,
        api_key=api_key,
        fallback_models=tuple(getattr(settings, "LLM_FALLBACK_MODELS", ())),
        connect_timeout=float(getattr(settings, "LLM_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT)),
        read_timeout=float(getattr(settings, "LLM_TIMEOUT", DEFAULT_READ_TIMEOUT)),
        referer=getattr(settings, "LLM_REFERER", "") or None,
        title=getattr(settings, "LLM_TITLE", "") or None,
    )


@dataclass
class StreamResult:
    """Filled in by `stream_chat` while it runs; read it after the iteration ends.

    `done` is True only when the answer arrived complete (`[DONE]`, or a normal finish reason at EOF).
    """

    model: str | None = None
    generation_id: str | None = None
    finish_reason: str | None = None
    done: bool = False
    status: int | None = None


# --- the shared client -----------------------------------------------------------------------------------

# aiohttp rather than httpx: relaying a token cost 150 to 170 µs of CPU through httpx, httpcore and anyio, 60 to 70
# through aiohttp's C parser (300 streams of 200 tokens read in one process, `/tmp` script, 2026-11-27), and a web
# worker relays every token of every answer it streams.
#
# Every open chat stream holds one upstream connection for its whole answer: no cap on connections (a capped pool
# made the extra streams wait for a free connection and time out, measured at 100); idle ones kept 30 s.
_KEEPALIVE_SECONDS = 30.0


@cache
def _ssl_context() -> ssl.SSLContext:
    """The certificates trusted, as httpx (the client before) chose them: SSL_CERT_FILE or SSL_CERT_DIR when set (a
    proxy's own authority), else certifi's, the same on every host."""
    if cafile := os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=cafile)
    if capath := os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=capath)
    return ssl.create_default_context(cafile=certifi.where())


def _new_client() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=_KEEPALIVE_SECONDS, ssl=_ssl_context())
    timeout = _client_timeout(DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT)
    # The proxy comes from `_proxy_for`: aiohttp's trust_env would read the environment and stat ~/.netrc for every
    # request, on a thread of the default executor (profiled: a hop and 1 % of a worker in a burst of streams).
    return aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False)


@cache
def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY, upper or lower case), unless
    NO_PROXY leaves its host out, as httpx (the client before) chose it. Read once per URL: the environment of a
    running process does not change."""
    parts = urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


def _client_timeout(connect: float, read: float) -> aiohttp.ClientTimeout:
    """No total deadline (an answer may take minutes): `connect` to open the connection, and `read` for the
    longest silence, the wait for the headers included."""
    return aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect, sock_read=read)


# A client session is bound to the event loop its connections were opened on: one per running loop. Code that
# runs short-lived loops should call `aclose_shared_client()` before its loop ends, or pass its own client.
_clients: PerLoop[aiohttp.ClientSession] = PerLoop(_new_client, usable=lambda client: not client.closed)


def shared_client() -> aiohttp.ClientSession:
    """The pooled client session of the running event loop (must be called from inside a coroutine)."""
    return _clients.get()


async def aclose_shared_client() -> None:
    """Close the running loop's shared client (call on shutdown or at the end of a short-lived loop)."""
    client = _clients.pop()
    if client is not None:
        await client.close()


# --- streaming -------------------------------------------------------------------------------------------


def _headers(config: LLMConfig) -> dict[str, str]:
    headers = {"Accept": "text/event-stream", "Content-Type": "application/json"}
    if config.api_key:
        # Local servers (Ollama, llama.cpp) need no key; sending "Bearer None" would be worse than nothing.
        headers["Authorization"] = f"Bearer {config.api_key}"
    if config.referer:
        headers["HTTP-Referer"] = config.referer
    if config.title:
        headers["X-Title"] = config.title
    return headers


def _payload(
    config: LLMConfig, messages: Sequence[dict[str, str]], temperature: float, max_tokens: int | None
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": config.model,
        "messages": list(messages),
        "stream": True,
        "temperature": temperature,
    }
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    if config.fallback_models:
        # OpenRouter tries these in order when the primary model is down or refuses the request.
        payload["models"] = [config.model, *config.fallback_models]
    return payload


def _bad_response(reason: str, config: LLMConfig) -> LLMError:
    return LLMError(
        "bad_response",
        f"The model server sent a malformed stream ({short_detail(reason, config.api_key)}).",
        retryable=False,
    )


def _content_of(chunk: dict[str, Any], result: StreamResult, config: LLMConfig) -> str:
    """Record the metadata of one parsed chunk and return its text (possibly empty)."""
    if isinstance(chunk.get("model"), str):
        result.model = chunk["model"]
    if isinstance(chunk.get("id"), str):
        result.generation_id = chunk["id"]
    choices = chunk.get("choices")
    if choices and (not isinstance(choices, list) or not isinstance(choices[0], dict)):
        raise _bad_response("choices is not a list of objects", config)
    choice: dict[str, Any] = choices[0] if choices else {}
    finish_reason = choice.get("finish_reason")
    if isinstance(finish_reason, str) and finish_reason:
        result.finish_reason = finish_reason
    # OpenRouter reports a failure after a 200 (even after tokens) as a chunk with an `error` object and
    # finish_reason "error"; either one alone is enough to fail the answer.
    if chunk.get("error") is not None or (result.finish_reason or "").lower() == "error":
        raise error_from_chunk(chunk.get("error") or choice.get("error"), secret=config.api_key)
    if not choice:
        return ""  # e.g. the final usage-only chunk
    delta = choice.get("delta")
    if delta is None:
        delta = choice.get("message")  # a few servers put the full message in the last chunk
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


class ChatRequest(TypedDict, total=False):
    """The arguments of `complete_chat`: those of `stream_chat` (config and messages required)."""

    config: Required[LLMConfig]
    messages: Required[list[dict[str, str]]]
    temperature: float
    max_tokens: int | None
    client: aiohttp.ClientSession | None
    result: StreamResult | None


async def stream_chat(
    *,
    config: LLMConfig,
    messages: list[dict[str, str]],
    temperature: float = 0.3,
    max_tokens: int | None = None,
    client: aiohttp.ClientSession | None = None,
    result: StreamResult | None = None,
) -> AsyncIterator[str]:
    """Yield the text pieces of a streamed chat completion; raise LLMError on any failure.

    Pass a `StreamResult` to learn the model and finish reason once iteration is over. Consume it with
    `async with contextlib.aclosing(stream_chat(...)) as pieces:` so that stopping early (a break, a client
    disconnect) closes the upstream connection at once instead of whenever the generator is garbage collected;
    task cancellation closes it too.
    """
    http = client if client is not None else shared_client()
    result = result if result is not None else StreamResult()
    payload = _payload(config, messages, temperature, max_tokens)
    started = time.monotonic()
    outcome = "closed"  # what the log line reports if the consumer stops early
    pieces = 0
    try:
        async with contextlib.aclosing(_request(http, config, payload, result)) as texts:
            async for text in texts:
                pieces += 1
                yield text
        outcome = "ok"
    except LLMError as exc:
        outcome = exc.code
        raise
    finally:
        level = logging.WARNING if outcome not in ("ok", "closed") else logging.INFO
        logger.log(
            level,
            "LLM chat model=%s provider=%s status=%s outcome=%s pieces=%d duration_ms=%d",
            config.model,
            config.provider,
            result.status,
            outcome,
            pieces,
            (time.monotonic() - started) * 1000,
        )


async def _request(
    http: aiohttp.ClientSession, config: LLMConfig, payload: dict[str, Any], result: StreamResult
) -> AsyncIterator[str]:
    """The non-empty text pieces of one request, with transport failures mapped onto LLMError."""
    try:
        async with http.post(
            f"{config.base_url}/chat/completions",
            data=json.dumps(payload).encode(),
            headers=_headers(config),
            timeout=config.timeout,
            allow_redirects=False,
            proxy=_proxy_for(config.base_url),
        ) as response:
            result.status = response.status
            if not 200 <= response.status < 300:
                body = await _read_capped(response, _MAX_ERROR_BODY)
                raise error_from_status(
                    response.status, response.headers, body, provider=config.provider, secret=config.api_key
                )
            if response.headers.get("content-type", "").startswith("application/json"):
                # The server ignored `stream: true` and answered in one piece.
                if text := _whole_answer(await _read_capped(response, _MAX_JSON_ANSWER), result, config):
                    yield text
                result.done = True
                return
            async with contextlib.aclosing(_events(response, config)) as events:
                async for data in events:
                    if data.strip() == "[DONE]":
                        result.done = True
                        return
                    if text := _content_of(_parse(data, config), result, config):
                        yield text
            if (result.finish_reason or "").lower() not in NORMAL_FINISH_REASONS:
                raise LLMError(
                    "stream_interrupted",
                    "The model's answer was cut off before it finished. Please try again.",
                    retryable=True,
                )
            result.done = True  # ended on a normal finish reason; [DONE] is only a courtesy
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise error_from_transport(exc, got_response=result.status is not None, base_url=config.base_url) from exc


async def _events(response: aiohttp.ClientResponse, config: LLMConfig) -> AsyncIterator[str]:
    """The `data` of each SSE event of the response, to the end of its body."""
    decoder = SSEDecoder()
    async for raw in response.content.iter_any():
        for data in _decode(decoder, raw, config):
            yield data
    for data in decoder.close():
        yield data


def _decode(decoder: SSEDecoder, raw: bytes, config: LLMConfig) -> list[str]:
    try:
        return decoder.feed(raw)
    except SSELineTooLong as exc:
        raise _bad_response(str(exc), config) from exc


def _parse(data: str, config: LLMConfig) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise _bad_response(f"invalid JSON: {data[:80]}", config) from exc
    if not isinstance(chunk, dict):
        raise _bad_response("a chunk is not a JSON object", config)
    return chunk


def _whole_answer(body: bytes, result: StreamResult, config: LLMConfig) -> str:
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        detail = upstream_error_detail(body, config.api_key) or "invalid JSON"
        raise _bad_response(detail, config) from exc
    if not isinstance(parsed, dict):
        raise _bad_response("the answer is not a JSON object", config)
    return _content_of(parsed, result, config)


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    body = bytearray()
    async for raw in response.content.iter_any():
        body += raw
        if len(body) >= limit:
            break
    return bytes(body[:limit])


async def complete_chat(**request: Unpack[ChatRequest]) -> str:
    """The whole answer as one string, for callers that do not stream (reports, question condensing).

    It still streams underneath, so `read_timeout` bounds silences rather than the total generation time.
    """
    parts: list[str] = []
    async with contextlib.aclosing(stream_chat(**request)) as pieces:
        async for piece in pieces:
            parts.append(piece)
    return "".join(parts)
