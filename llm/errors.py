"""The one exception type of the LLM layer and the mapping from HTTP outcomes onto it.

Callers (views, background jobs) only ever see `LLMError`, so they can decide what to show and whether
to retry from `code` and `retryable` without knowing anything about the HTTP client or the upstream's quirks.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

# Longest upstream detail we are willing to repeat to a user: provider bodies can be huge HTML pages or
# carry raw provider payloads (OpenRouter's `metadata.raw`) that make no sense to an end user.
MAX_DETAIL_CHARS = 200

# Things that look like credentials, in case a provider echoes them back in an error message (OpenAI's
# "Incorrect API key provided: sk-...") — the configured key is redacted separately and exactly.
_SECRET_PATTERNS = re.compile(r"(?i)\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{6,}|\bBearer\s+\S+")

CODES = frozenset(
    {
        "unauthorized",
        "payment_required",
        "rate_limited",
        "upstream_unavailable",
        "upstream_error",
        "timeout",
        "connection",
        "stream_interrupted",
        "bad_response",
    }
)


class LLMError(Exception):
    """A failed LLM call, described for humans (`message`) and for code (`code`, `retryable`, ...)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        if code not in CODES:
            raise ValueError(f"unknown LLMError code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"LLMError(code={self.code!r}, message={self.message!r}, retryable={self.retryable!r}, "
            f"retry_after={self.retry_after!r}, status={self.status!r})"
        )


def redact(text: str, secret: str | None) -> str:
    """Remove the configured key and anything credential-shaped from text bound for users or logs."""
    if secret:
        text = text.replace(secret, "[redacted]")
    return _SECRET_PATTERNS.sub("[redacted]", text)


def short_detail(text: str, secret: str | None) -> str:
    """One line of at most MAX_DETAIL_CHARS characters, safe to show."""
    text = " ".join(redact(text, secret).split())
    if len(text) > MAX_DETAIL_CHARS:
        text = text[: MAX_DETAIL_CHARS - 1].rstrip() + "…"
    return text


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header, which is either delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            # RFC 9110 dates are always GMT; a naive result means a "-0000" zone, which is GMT too.
            when = when.replace(tzinfo=datetime.UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf from a hostile header
        return None
    return max(0.0, seconds)


def upstream_error_detail(body: bytes | str, secret: str | None) -> str:
    """The short human part of an error body: OpenRouter/OpenAI `{"error": {"message": ...}}` if present."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return short_detail(error["message"], secret)
        if isinstance(error, str):
            return short_detail(error, secret)
        if isinstance(parsed.get("message"), str):
            return short_detail(parsed["message"], secret)
        return ""
    # Plain-text or HTML bodies (proxies, load balancers): only worth showing when short and textual.
    if "<" in text or len(text.strip()) > MAX_DETAIL_CHARS:
        return ""
    return short_detail(text, secret)


def _with_detail(message: str, detail: str) -> str:
    return f"{message} ({detail})" if detail else message


def error_from_status(
    status: int, headers: Mapping[str, str], body: bytes, *, provider: str, secret: str | None
) -> LLMError:
    """Map a non-2xx response onto an LLMError."""
    detail = upstream_error_detail(body, secret)
    retry_after = parse_retry_after(headers.get("retry-after"))
    who = "OpenRouter" if provider == "openrouter" else "The LLM server"
    if status in (401, 403):
        code, retryable = "unauthorized", False
        text = f"{who} rejected the API key (HTTP {status}). Check the configured key."
    elif status == 402:
        code, retryable = "payment_required", False
        text = f"{who} refused the request for lack of credits (HTTP 402)."
    elif status in (408, 504):
        code, retryable = "timeout", True
        text = f"{who} timed out waiting for the model (HTTP {status}). Please try again."
    elif status == 429:
        code, retryable = "rate_limited", True
        wait = f" Try again in {retry_after:.0f} s." if retry_after is not None else " Try again shortly."
        text = f"{who} is rate limiting requests (HTTP 429).{wait}"
    elif status == 503:
        code, retryable = "upstream_unavailable", True
        text = f"{who} or its model provider is temporarily unavailable (HTTP 503). Please try again."
    elif status >= 500:
        code, retryable = "upstream_error", True
        text = f"{who} had an internal error (HTTP {status}). Please try again."
    else:
        code, retryable = "bad_response", False
        text = f"{who} rejected the request (HTTP {status})."
    return LLMError(code, _with_detail(text, detail), retryable=retryable, retry_after=retry_after, status=status)


def error_from_chunk(error: Any, *, secret: str | None) -> LLMError:
    """Map an in-stream error object (sent after a 200, possibly after tokens) onto an LLMError."""
    detail = ""
    status: int | None = None
    if isinstance(error, dict):
        if isinstance(error.get("message"), str):
            detail = short_detail(error["message"], secret)
        if isinstance(error.get("code"), int) and not isinstance(error.get("code"), bool):
            status = error["code"]
    elif isinstance(error, str):
        detail = short_detail(error, secret)
    # A numeric code in the 4xx range (other than timeouts/limits) means this request cannot succeed.
    retryable = status is None or not (400 <= status < 500) or status in (408, 429)
    text = _with_detail("The model provider stopped with an error mid-answer.", detail)
    return LLMError("upstream_error", text, retryable=retryable, status=status)


def error_from_transport(exc: aiohttp.ClientError | TimeoutError, *, got_response: bool, base_url: str) -> LLMError:
    """Map a transport failure of the HTTP client (aiohttp) onto an LLMError; `got_response` says whether headers
    had arrived."""
    host = urlsplit(base_url).hostname or base_url
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return LLMError("timeout", f"Could not connect to {host} in time. Please try again.", retryable=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return LLMError("connection", f"Could not connect to {host}. Please try again.", retryable=True)
    if isinstance(exc, TimeoutError):  # a silence longer than the read timeout (aiohttp.SocketTimeoutError)
        text = (
            "The model stopped sending data mid-answer (timed out). Please try again."
            if got_response
            else f"{host} accepted the request but did not answer in time. Please try again."
        )
        return LLMError("timeout", text, retryable=True)
    if isinstance(exc, aiohttp.ClientPayloadError) and "content-encoding" in str(exc).lower():
        return LLMError("bad_response", f"{host} sent a response that could not be decoded.", retryable=False)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientConnectionError) and got_response:
        return LLMError(
            "stream_interrupted",
            "The connection to the model broke mid-answer. Please try again.",
            retryable=True,
        )
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientResponseError | aiohttp.InvalidURL):
        return LLMError("connection", f"The connection to {host} failed. Please try again.", retryable=True)
    return LLMError("bad_response", f"The request to {host} failed unexpectedly.", retryable=False)
