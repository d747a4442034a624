"""Clear what piles up: unopened answers past their expiry, expired sessions, spent rate-limit windows and expired
answer-cache rows. Safe to run at any time and as often as wanted (hourly on a scheduler: README, "Deploy")."""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.core.management.base import BaseCommand
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from chat.models import Message, RateCounter
from chat.turns import pending_expiry


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args: Any, **options: Any) -> None:
        counts = prune()
        self.stdout.write(
            "Pruned: {expired} unopened answers expired, {sessions} sessions, {rate_counters} rate-limit rows, "
            "{cache} cache rows.".format(**counts)
        )


def prune() -> dict[str, int]:
    """Each kind of row cleared, by how many."""
    expired = Message.objects.expire_unopened(asked_before=pending_expiry())
    sessions = _clear_expired_sessions()
    # A counter whose window ended can only be reset by its next request: nothing reads it before then. A row
    # without its end was written by the chat alone, whose window is RATE_LIMIT_WINDOW.
    now = timezone.now()
    spent = Q(window_end__lte=now) | Q(
        window_end=None, window_start__lt=now - timedelta(seconds=settings.RATE_LIMIT_WINDOW)
    )
    rate_counters, _ = RateCounter.objects.filter(spent).delete()
    return {"expired": expired, "sessions": sessions, "rate_counters": rate_counters, "cache": _clear_cache()}


def _clear_expired_sessions() -> int:
    from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
    from django.contrib.sessions.models import Session

    store = import_module(settings.SESSION_ENGINE).SessionStore
    if issubclass(store, DatabaseSessionStore):  # Django's db and cached_db, and the chat's (chat.sessions)
        deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
        return deleted
    store.clear_expired()  # counts unknown: report none
    return 0


def _clear_cache() -> int:
    if not isinstance(caches["default"], DatabaseCache):
        return 0  # Redis expires its own keys
    table = connection.ops.quote_name(settings.CACHES["default"]["LOCATION"])
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE expires < %s", [timezone.now()])  # noqa: S608 (our table)
        return cursor.rowcount
