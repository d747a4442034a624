"""Fixed-window rate limits shared by every process: one atomic upsert per check in PostgreSQL. The chat counts its
questions here, and the accounts app its failed logins and sign-ups."""

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection
from django.http import HttpRequest

from chat.models import RateCounter

# Every key of a request counted in one statement, in the order of the keys (so two requests that share keys lock
# their rows in the same order).
_UPSERT = f"""
INSERT INTO {RateCounter._meta.db_table} (key, window_start, window_end, count)
SELECT key, window_start, window_end, 1
FROM unnest(%(keys)s::text[], %(starts)s::timestamptz[], %(ends)s::timestamptz[]) AS k(key, window_start, window_end)
ORDER BY key
ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN {RateCounter._meta.db_table}.window_start = EXCLUDED.window_start
                 THEN {RateCounter._meta.db_table}.count + 1 ELSE 1 END,
    window_start = EXCLUDED.window_start,
    window_end = EXCLUDED.window_end
RETURNING key, count
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


def check_all(keys_and_limits: list[tuple[str, Limit]], *, now: float | None = None) -> Verdict:
    """Count one request for every key (distinct keys); it passes only when no key's window already held its
    `limit.requests` (the longest wait wins)."""
    now = time.time() if now is None else now
    limits = dict(keys_and_limits)
    if len(limits) != len(keys_and_limits):
        raise ValueError("each key may be counted once per request")
    starts = {key: _window_start(limit, now) for key, limit in limits.items()}
    with connection.cursor() as cursor:
        cursor.execute(
            _UPSERT,
            {
                "keys": list(limits),
                "starts": [datetime.fromtimestamp(starts[key], tz=UTC) for key in limits],
                "ends": [datetime.fromtimestamp(starts[key] + limits[key].seconds, tz=UTC) for key in limits],
            },
        )
        counts = dict(cursor.fetchall())
    return _longest_wait(
        [_refused(limit, starts[key], now) for key, limit in limits.items() if counts[key] > limit.requests]
    )


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
