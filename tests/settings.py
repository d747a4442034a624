"""Settings for the test run: production-like (DEBUG off), over plain HTTP on loopback, with the embedded
PostgreSQL in its own data directory (var/test) so tests never touch the development database."""

import os
from pathlib import Path

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-not-used-anywhere-else-0123456789")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("FLICKORA_DATA_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test"))
os.environ.pop("DATABASE_URL", None)
os.environ.pop("DEBUG", None)

from flickora.settings import *  # noqa: F403

# No collectstatic before tests: serve from the finders instead of the hashed manifest.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Tests share one database between the test process and the live ASGI server: no answer cache unless a test turns
# it on, and rate limits no test reaches unless it lowers them.
RESPONSE_CACHE_TTL = 0
RATE_LIMIT_REQUESTS = 10_000
RATE_LIMIT_IP_REQUESTS = 10_000
RATE_LIMIT_IP_NEW_SESSIONS = 10_000  # every test client starts sessions from 127.0.0.1
# Every test client comes from 127.0.0.1: the limits per IP address are set where a test is about them.
LOGIN_FAILURES_PER_IP = 10_000
SIGNUPS_PER_IP = 10_000
# Many tests ask several questions in one session and open no stream: the in-flight limit is tested on its own.
CHAT_MAX_IN_FLIGHT = 10_000
# Plain HTTP on loopback: cookies marked Secure would never come back.
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False

# A test database per run, so that runs side by side (two terminals, a benchmark) never collide.
DATABASES["default"]["TEST"] = {"NAME": f"test_flickora_{os.getpid()}"}  # noqa: F405
