"""Fixed-window rate limits shared by every process: one atomic upsert per check in PostgreSQL. The chat counts its
questions here, and the accounts app its failed logins and sign-ups."""

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection
from django.http import HttpRequest

from chat.models import RateCounter

_UPSERT = f"""
INSERT INTO {RateCounter._meta.db_table} (key, window_start, window_end, count)
VALUES (%(key)s, %(window)s, %(window_end)s, 1)
ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN {RateCounter._meta.db_table}.window_start = EXCLUDED.window_start
                 THEN {RateCounter._meta.db_table}.count + 1 ELSE 1 END,
    window_start = EXCLUDED.window_start,
    window_end = EXCLUDED.window_end
RETURNING count
"""  # noqa: S608 (constant: the table name comes from the model)


@dataclass(frozen=True)
class Limit:
    requests: int
    seconds: int


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # seconds until the window resets; 0 when allowed


def _window_start(limit: Limit, now: float) -> float:
    return math.floor(now / limit.seconds) * limit.seconds


def _refused(limit: Limit, window_start: float, now: float) -> Verdict:
    return Verdict(False, max(1, math.ceil(window_start + limit.seconds - now)))


def hit(key: str, limit: Limit, *, now: float | None = None) -> Verdict:
    """Count one request for `key`; refuse it when the window already holds `limit.requests`."""
    now = time.time() if now is None else now
    window_start = _window_start(limit, now)
    window = {
        "key": key,
        "window": datetime.fromtimestamp(window_start, tz=UTC),
        "window_end": datetime.fromtimestamp(window_start + limit.seconds, tz=UTC),
    }
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, window)
        (count,) = cursor.fetchone()
    if count <= limit.requests:
        return Verdict(True, 0)
    return _refused(limit, window_start, now)


def check_all(keys_and_limits: list[tuple[str, Limit]], *, now: float | None = None) -> Verdict:
    """Every key is counted; the request passes only when all of them allow it (the longest wait wins)."""
    verdicts = [hit(key, limit, now=now) for key, limit in keys_and_limits]
    return _longest_wait(verdicts)


def peek_all(keys_and_limits: list[tuple[str, Limit]], *, now: float | None = None) -> Verdict:
    """Whether one more request would pass, counting nothing: refused when any key's current window already holds
    its `limit.requests` (for limits on outcomes, counted with `hit` only once the outcome is known)."""
    now = time.time() if now is None else now
    counters = RateCounter.objects.in_bulk([key for key, _ in keys_and_limits])
    verdicts = []
    for key, limit in keys_and_limits:
        window_start = _window_start(limit, now)
        counter = counters.get(key)
        current = counter is not None and counter.window_start.timestamp() == window_start
        if current and counter.count >= limit.requests:
            verdicts.append(_refused(limit, window_start, now))
    return _longest_wait(verdicts)


def _longest_wait(verdicts: list[Verdict]) -> Verdict:
    refused = [verdict for verdict in verdicts if not verdict.allowed]
    return max(refused, key=lambda v: v.retry_after) if refused else Verdict(True, 0)


def client_ip(request: HttpRequest) -> str:
    """The address a request counts against, as the ASGI server gives it: the peer's, or, when the peer is one of
    TRUSTED_PROXIES, the address that proxy put in X-Forwarded-For (the server resolves it; the app never reads the
    header)."""
    return request.META.get("REMOTE_ADDR", "unknown")
