"""Failed logins limited per account and per IP address, sign-ups per IP address, through the real server."""

from datetime import timedelta

import httpx
import pytest
from django.contrib.auth.models import User
from django.db.models import F

from accounts.throttling import wait_text
from chat.models import RateCounter
from tests.test_chat import committed

PASSWORD = "a-long-Passw0rd-for-tests"
DAY = 24 * 3600


@pytest.fixture
def limits(db, settings):
    """Failures and sign-ups counted from zero, in windows of a day (no test runs across a window's end unless it
    moves the window), and the accounts and counters the test made committed away afterwards."""
    settings.LOGIN_FAILURES_PER_ACCOUNT = 5
    settings.LOGIN_FAILURES_PER_IP = 20
    settings.LOGIN_FAILURE_WINDOW = DAY
    settings.SIGNUPS_PER_IP = 3
    settings.SIGNUP_WINDOW = DAY
    clear = lambda: RateCounter.objects.filter(key__regex=r"^(login|signup):").delete()  # noqa: E731
    committed(clear)
    yield
    committed(clear)
    committed(lambda: User.objects.filter(username__startswith="limited-").delete())


def account(username: str) -> str:
    committed(lambda: User.objects.create_user(username, password=PASSWORD))
    return username


def log_in(web: httpx.Client, username: str, password: str, *, ip: str = "203.0.113.1") -> httpx.Response:
    return web.post(
        "/accounts/login/", data={"username": username, "password": password}, headers={"X-Forwarded-For": ip}
    )


def refusal(response: httpx.Response) -> str:
    """The wait the page tells of, checked against Retry-After."""
    assert response.status_code == 429
    wait = int(response.headers["Retry-After"])
    assert 0 < wait <= DAY
    text = f"Too many failed attempts to log in. Please wait {wait_text(wait)} before trying again."
    assert text in response.text
    return text


def move_windows_back(prefix: str, seconds: int) -> None:
    """As if `seconds` had passed: the counters' windows are in the past."""
    committed(
        lambda: RateCounter.objects.filter(key__startswith=prefix).update(
            window_start=F("window_start") - timedelta(seconds=seconds),
            window_end=F("window_end") - timedelta(seconds=seconds),
        )
    )


def test_wrong_passwords_lock_the_account_until_the_window_ends_even_for_the_right_one(web, limits):
    username = account("limited-alice")
    responses = [log_in(web, username, f"wrong-{n}") for n in range(30)]
    assert [response.status_code for response in responses] == [200] * 5 + [429] * 25
    assert "Please enter a correct username and password." in responses[4].text
    assert refusal(responses[5]) not in responses[4].text
    refusal(log_in(web, username, "wrong-again"))
    refusal(log_in(web, username, PASSWORD))  # the right password, during the lock-out: refused too
    assert RateCounter.objects.get(key__startswith="login:user:").count == 5  # refused attempts are not counted
    move_windows_back("login:", DAY)
    response = log_in(web, username, PASSWORD)
    assert (response.status_code, response.headers["Location"]) == (302, "/")


def test_a_locked_account_stays_locked_from_every_address(web, limits):
    username = account("limited-bob")
    for n in range(5):
        assert log_in(web, username, "wrong", ip=f"198.51.100.{n}").status_code == 200
    refusal(log_in(web, username, PASSWORD, ip="192.0.2.77"))


def test_another_accounts_failures_do_not_block_a_login(web, live_server_asgi, limits):
    attacked, mine = account("limited-carol"), account("limited-dave")
    for _ in range(8):
        log_in(web, attacked, "wrong", ip="198.51.100.9")
    with httpx.Client(base_url=live_server_asgi.url, timeout=30) as other:
        other.get("/accounts/login/")
        other.headers["X-CSRFToken"] = other.cookies["csrftoken"]
        response = log_in(other, mine, PASSWORD, ip="203.0.113.50")
    assert (response.status_code, response.headers["Location"]) == (302, "/")


def test_failures_from_one_address_lock_it_out_across_accounts(web, limits):
    mine = account("limited-erin")
    statuses = [log_in(web, f"limited-nobody-{n}", "guess", ip="198.51.100.20").status_code for n in range(25)]
    assert statuses == [200] * 20 + [429] * 5
    refusal(log_in(web, mine, PASSWORD, ip="198.51.100.20"))
    response = log_in(web, mine, PASSWORD, ip="203.0.113.21")  # the account itself is not locked
    assert response.status_code == 302


def test_a_flood_of_sign_ups_from_one_address_is_refused(live_server_asgi, limits):
    def sign_up(n: int) -> httpx.Response:
        with httpx.Client(base_url=live_server_asgi.url, timeout=30) as visitor:
            visitor.get("/accounts/signup/")
            data = {"username": f"limited-new-{n}", "password1": PASSWORD, "password2": PASSWORD}
            headers = {"X-CSRFToken": visitor.cookies["csrftoken"], "X-Forwarded-For": "198.51.100.30"}
            return visitor.post("/accounts/signup/", data=data, headers=headers)

    assert [sign_up(n).status_code for n in range(3)] == [302, 302, 302]
    refused = sign_up(3)
    assert refused.status_code == 429
    wait = wait_text(int(refused.headers["Retry-After"]))
    assert f"Too many accounts were created from your network. Please wait {wait} and try again." in refused.text
    assert sorted(User.objects.filter(username__startswith="limited-new-").values_list("username", flat=True)) == [
        "limited-new-0",
        "limited-new-1",
        "limited-new-2",
    ]
    move_windows_back("signup:", DAY)
    assert sign_up(4).status_code == 302


def test_the_admins_login_counts_against_the_same_limits(web, limits):
    username = account("limited-frank")
    for _ in range(5):
        log_in(web, username, "wrong")
    web.get("/admin/login/")
    response = web.post(
        "/admin/login/?next=/admin/",
        data={"username": username, "password": PASSWORD, "next": "/admin/"},
        headers={"X-Forwarded-For": "203.0.113.1"},
    )
    assert response.status_code == 200
    assert "Too many failed attempts to log in. Please wait " in response.text
