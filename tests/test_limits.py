"""Work in flight per requester, through the real server: at most CHAT_MAX_IN_FLIGHT answers being written at once,
and pending answers nobody opens expire."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import ratelimit
from chat.models import Message, RateCounter
from tests.live import read_stream
from tests.test_chat import ask, committed, message_of


def test_an_ask_past_the_answers_in_flight_is_refused_with_their_ids(web, settings):
    settings.CHAT_MAX_IN_FLIGHT = 2
    first, second = (ask(web, f"Question {n}").json() for n in (1, 2))
    refused = ask(web, "Question 3")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.json() == {
        "error": {
            "code": "too_many_in_flight",
            "message": "You already have 2 answers being written. Wait for one to finish, or stop it, then ask again.",
            "in_flight": [first["message"], second["message"]],
        }
    }
    assert Message.objects.filter(conversation__uuid=refused.json().get("conversation")).count() == 0
    _, _, events = read_stream(web, first["stream"])  # the offline answer ends: a place is free again
    assert events[-1].event == "done"
    third = ask(web, "Question 3, again")
    assert third.status_code == 201
    refused_regeneration = web.post(first["regenerate"])
    assert (refused_regeneration.status_code, refused_regeneration.json()["error"]["code"]) == (
        429,
        "too_many_in_flight",
    )


def test_another_session_has_its_own_places(web, live_server_asgi, settings):
    settings.CHAT_MAX_IN_FLIGHT = 1
    assert ask(web, "Mine").status_code == 201
    with httpx.Client(base_url=live_server_asgi.url, timeout=30) as other:
        other.get("/")
        other.headers["X-CSRFToken"] = other.cookies["csrftoken"]
        assert ask(other, "Theirs").status_code == 201


def test_asks_arriving_together_take_no_more_places_than_there_are(web, settings):
    settings.CHAT_MAX_IN_FLIGHT = 3
    assert ask(web, "First, alone").status_code == 201  # the session exists before the asks race
    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(lambda n: ask(web, f"Together {n}").status_code, range(6)))
    assert statuses == [201, 201, 429, 429, 429, 429]


def test_an_unopened_answer_expires_and_frees_its_place(web, settings):
    settings.CHAT_MAX_IN_FLIGHT = 1
    settings.CHAT_PENDING_EXPIRY_SECONDS = 600
    old = ask(web, "Asked and never opened").json()
    assert ask(web, "Too soon").status_code == 429
    eleven_minutes_ago = timezone.now() - timedelta(minutes=11)
    committed(lambda: Message.objects.filter(uuid=old["message"]).update(created_at=eleven_minutes_ago))
    assert ask(web, "Later").status_code == 201
    expired = message_of(old)
    assert (expired.status, expired.error_code, expired.retryable) == ("failed", "expired", True)


def test_opening_an_answer_after_it_expired_shows_that_it_expired(web, settings):
    old = ask(web, "Opened too late").json()
    long_ago = timezone.now() - timedelta(seconds=settings.CHAT_PENDING_EXPIRY_SECONDS + 60)
    committed(lambda: Message.objects.filter(uuid=old["message"]).update(created_at=long_ago))
    _, _, events = read_stream(web, old["stream"])
    assert [event.event for event in events] == ["error"]
    assert events[0].data["error"] == {
        "code": "expired",
        "message": "This answer was never opened, so it was not written. Please ask again.",
        "retryable": True,
        "retry_after": None,
    }
    assert message_of(old).status == "failed"


def test_every_key_of_a_request_is_counted_in_one_statement_and_the_longest_wait_wins(db):
    # Keys no other test uses (the live server's tests leave their own counters behind).
    short, long = ratelimit.Limit(2, 60), ratelimit.Limit(3, 3600)
    now = 7200.0 + 30  # 30 s into a 60-second window and into an hour's window
    keys = [("ip:192.0.2.1", long), ("session:abc", short)]
    with CaptureQueriesContext(connection) as queries:
        verdicts = [ratelimit.check_all(keys, now=now) for _ in range(4)]
    assert len(queries) == 4
    # The session's window refuses the third (30 s left), the IP's the fourth (3,570 s left, the longer wait).
    assert verdicts == [
        ratelimit.Verdict(True, 0),
        ratelimit.Verdict(True, 0),
        ratelimit.Verdict(False, 30),
        ratelimit.Verdict(False, 3570),
    ]
    counted = RateCounter.objects.filter(key__in=["ip:192.0.2.1", "session:abc"])
    assert dict(counted.values_list("key", "count")) == {"ip:192.0.2.1": 4, "session:abc": 4}
    # A new window starts the count again.
    assert ratelimit.check_all([("session:abc", short)], now=now + 60) == ratelimit.Verdict(True, 0)
    assert RateCounter.objects.get(key="session:abc").count == 1
    with pytest.raises(ValueError, match="each key may be counted once per request"):
        ratelimit.check_all([("ip:192.0.2.1", long), ("ip:192.0.2.1", short)], now=now)
