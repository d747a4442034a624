"""Limits on logging in and signing up: failed logins per account (username) and per IP address, accounts created
per IP address. Counted in the fixed windows the chat's question limits use (chat.ratelimit), and counted only once
the outcome is known: a login that succeeds and a sign-up form with errors use up nothing."""

import hashlib
import math

from django.conf import settings
from django.http import HttpRequest

from chat import ratelimit


def _login_limits(request: HttpRequest, username: str) -> list[tuple[str, ratelimit.Limit]]:
    window = settings.LOGIN_FAILURE_WINDOW
    # Hashed: a username is whatever was typed, up to any length; a key holds 200 characters.
    account = hashlib.sha256(username.encode()).hexdigest()
    return [
        (f"login:user:{account}", ratelimit.Limit(settings.LOGIN_FAILURES_PER_ACCOUNT, window)),
        (f"login:ip:{ratelimit.client_ip(request)}", ratelimit.Limit(settings.LOGIN_FAILURES_PER_IP, window)),
    ]


def _signup_limits(request: HttpRequest) -> list[tuple[str, ratelimit.Limit]]:
    return [
        (f"signup:ip:{ratelimit.client_ip(request)}", ratelimit.Limit(settings.SIGNUPS_PER_IP, settings.SIGNUP_WINDOW))
    ]


def check_login(request: HttpRequest, *, username: str) -> ratelimit.Verdict:
    """Refused while the account or the address has used up its failed logins, whatever the password."""
    return ratelimit.peek_all(_login_limits(request, username))


def count_failed_login(request: HttpRequest, *, username: str) -> None:
    ratelimit.check_all(_login_limits(request, username))


def check_signup(request: HttpRequest) -> ratelimit.Verdict:
    return ratelimit.peek_all(_signup_limits(request))


def count_signup(request: HttpRequest) -> None:
    ratelimit.check_all(_signup_limits(request))


def wait_text(seconds: int) -> str:
    """How long to wait, as a person would say it, rounded up."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    if seconds <= 2 * 3600:
        minutes = math.ceil(seconds / 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{math.ceil(seconds / 3600)} hours"
