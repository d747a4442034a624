"""Fixed-window rate limits shared by every process: one atomic upsert per check in PostgreSQL."""

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection

from chat.models import RateCounter

_UPSERT = f"""
INSERT INTO {RateCounter._meta.db_table} (key, window_start, count) VALUES (%(key)s, %(window)s, 1)
ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN {RateCounter._meta.db_table}.window_start = EXCLUDED.window_start
                 THEN {RateCounter._meta.db_table}.count + 1 ELSE 1 END,
    window_start = EXCLUDED.window_start
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


def hit(key: str, limit: Limit, *, now: float | None = None) -> Verdict:
    """Count one request for `key`; refuse it when the window already holds `limit.requests`."""
    now = time.time() if now is None else now
    window_start = math.floor(now / limit.seconds) * limit.seconds
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, {"key": key, "window": datetime.fromtimestamp(window_start, tz=UTC)})
        (count,) = cursor.fetchone()
    if count <= limit.requests:
        return Verdict(True, 0)
    return Verdict(False, max(1, math.ceil(window_start + limit.seconds - now)))


def check_all(keys_and_limits: list[tuple[str, Limit]], *, now: float | None = None) -> Verdict:
    """Every key is counted; the request passes only when all of them allow it (the longest wait wins)."""
    verdicts = [hit(key, limit, now=now) for key, limit in keys_and_limits]
    refused = [verdict for verdict in verdicts if not verdict.allowed]
    return max(refused, key=lambda v: v.retry_after) if refused else Verdict(True, 0)
