"""`manage.py prune` clears what piles up, and nothing that is still in use."""

from datetime import timedelta
from io import StringIO

from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from chat.models import Conversation, Message, RateCounter


def answer(asked_minutes_ago: float) -> Message:
    conversation = Conversation.objects.create(session_key="prune", title="Prune")
    message = Message.objects.create(conversation=conversation, role="assistant", status="pending")
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(minutes=asked_minutes_ago))
    return message


def session(expires_in: timedelta) -> str:
    store = SessionStore()
    store["chat"] = True
    store.create()
    Session.objects.filter(session_key=store.session_key).update(expire_date=timezone.now() + expires_in)
    return store.session_key


def prune() -> str:
    out = StringIO()
    call_command("prune", stdout=out)
    return out.getvalue().strip()


def test_prune_expires_unopened_answers_only_past_their_expiry(db, settings):
    settings.CHAT_PENDING_EXPIRY_SECONDS = 600
    old, recent = answer(asked_minutes_ago=11), answer(asked_minutes_ago=1)
    assert prune().startswith("Pruned: 1 unopened answers expired, ")
    old.refresh_from_db()
    recent.refresh_from_db()
    assert (old.status, old.error_code) == ("failed", "expired")
    assert recent.status == "pending"


def test_prune_clears_expired_sessions_only(db):
    gone, kept = session(timedelta(seconds=-1)), session(timedelta(days=1))
    assert ", 1 sessions, " in prune()
    assert list(Session.objects.filter(session_key__in=[gone, kept]).values_list("session_key", flat=True)) == [kept]


def test_prune_clears_rate_limit_rows_of_windows_that_ended(db, settings):
    settings.RATE_LIMIT_WINDOW = 60
    RateCounter.objects.all().delete()  # the live server's from earlier tests (committed; back after this test)
    now = timezone.now()
    RateCounter.objects.create(key="session:old", window_start=now - timedelta(minutes=5), count=3)
    RateCounter.objects.create(key="session:now", window_start=now - timedelta(seconds=10), count=1)
    assert ", 1 rate-limit rows, " in prune()
    assert list(RateCounter.objects.filter(key__startswith="session:").values_list("key", flat=True)) == ["session:now"]


def test_prune_keeps_rate_limit_rows_whose_longer_window_goes_on(db, settings):
    settings.RATE_LIMIT_WINDOW = 60
    now = timezone.now()
    for key, start in (
        ("login:user:locked", now - timedelta(minutes=5)),
        ("login:user:spent", now - timedelta(minutes=20)),
    ):
        RateCounter.objects.create(key=key, window_start=start, window_end=start + timedelta(minutes=15), count=5)
    prune()
    assert list(RateCounter.objects.filter(key__startswith="login:user:").values_list("key", flat=True)) == [
        "login:user:locked"
    ]


def test_prune_clears_expired_cache_rows(db):
    cache.set("prune:gone", "x", timeout=1)
    cache.set("prune:kept", "y", timeout=3600)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE flickora_cache SET expires = %s WHERE cache_key LIKE %s", [timezone.now(), "%prune:gone"]
        )
    assert prune().endswith(", 1 cache rows.")
    assert (cache.get("prune:gone"), cache.get("prune:kept")) == (None, "y")
