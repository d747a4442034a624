"""Whose X-Forwarded-For and X-Forwarded-Proto count is one setting, TRUSTED_PROXIES, passed by the Procfile to the
server: through the real gunicorn + uvicorn worker, a client that sets them itself changes neither its address (what
the rate limits count) nor its scheme; a trusted proxy's headers change both. And dropping the session cookie before
each question starts no fresh budget."""

import httpx
import pytest
from django.db import connection

from chat.models import RateCounter
from tests.live import procfile_server
from tests.test_chat import ask, committed

NEW_SESSIONS_FROM_HERE = "new-session-ip:127.0.0.1"

FORWARDED_PROTO = {"X-Forwarded-Proto": "https"}


@pytest.mark.parametrize(
    ("trusted", "forwarded_for", "counted", "scheme"),
    [
        ("", "198.51.100.8", "127.0.0.1", "http"),  # the default: no proxy is trusted
        ("127.0.0.1", "198.51.100.7", "198.51.100.7", "https"),
    ],
)
def test_forwarded_headers_count_only_from_a_trusted_proxy(db, trusted, forwarded_for, counted, scheme):
    with procfile_server(connection.settings_dict, DEBUG="1", TRUSTED_PROXIES=trusted) as (url, _):
        headers = {**FORWARDED_PROTO, "X-Forwarded-For": forwarded_for}
        with httpx.Client(base_url=url, timeout=30, headers=headers) as web:
            web.get("/")
            # Referer: Django checks it on requests that count as HTTPS.
            web.headers.update({"X-CSRFToken": web.cookies["csrftoken"], "Referer": f"https://{url[7:]}/"})
            started = web.post("/chat/", data={"question": "Where does this question come from?"})
            assert started.status_code == 201, started.text
            export = web.get(f"/chat/conversations/{started.json()['conversation']}/export.md")
    keys = set(RateCounter.objects.filter(key__startswith="ip:").values_list("key", flat=True))
    assert f"ip:{counted}" in keys
    if counted != forwarded_for:
        assert f"ip:{forwarded_for}" not in keys
    assert f" · {scheme}://127.0.0.1:{url.rsplit(':', 1)[1]}/" in export.text


def test_dropping_the_session_cookie_starts_no_fresh_budget(live_server_asgi, settings, db):
    settings.RATE_LIMIT_IP_NEW_SESSIONS = 3
    committed(lambda: RateCounter.objects.filter(key=NEW_SESSIONS_FROM_HERE).delete())  # a window of our own
    statuses = []
    for n in range(5):
        with httpx.Client(base_url=live_server_asgi.url, timeout=30) as fresh:  # no session cookie: a new session
            fresh.get("/")
            fresh.headers["X-CSRFToken"] = fresh.cookies["csrftoken"]
            statuses.append(ask(fresh, f"Cookie churn {n}").status_code)
    assert statuses == [201, 201, 201, 429, 429]


def test_a_session_that_exists_is_not_counted_as_new(web, settings):
    settings.RATE_LIMIT_IP_NEW_SESSIONS = 1
    committed(lambda: RateCounter.objects.filter(key=NEW_SESSIONS_FROM_HERE).delete())
    assert [ask(web, f"Same session {n}").status_code for n in range(3)] == [201, 201, 201]
