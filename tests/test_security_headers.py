"""Headers and settings a careful operator expects: a strict Content-Security-Policy the pages live with, a
Permissions-Policy, X-Forwarded-Proto trusted only where a proxy sets it, a development key per data directory, and
one warning line for a request that is too large."""

import logging
import stat

import pytest
from django.conf import settings
from playwright.sync_api import expect

from flickora.settings import development_secret_key
from tests.test_browser import STREAM_TIMEOUT
from tests.test_deploy import production_env, run_python

VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(
    e.violatedDirective + ' ' + (e.blockedURI || e.sourceFile || '')));
"""


def test_every_response_carries_the_policies(web):
    for path in ("/", "/movies/vertigo/", "/static/css/site.css", "/healthz"):
        response = web.get(path)
        assert response.status_code == 200, path
        assert response.headers["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY, path
        assert response.headers["Permissions-Policy"] == settings.PERMISSIONS_POLICY, path
    assert "script-src 'self';" in settings.CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in settings.CONTENT_SECURITY_POLICY


@pytest.mark.browser
def test_the_pages_and_the_chat_work_under_the_policy_without_a_violation(page):
    page.add_init_script(VIOLATIONS)
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto("/")
    assert page.evaluate("window.__violations") == []
    for path, question in (("/chat/", "Which film has a detective afraid of heights?"), ("/movies/vertigo/", "Who?")):
        page.goto(path)
        page.get_by_label("Your question").fill(question)
        page.get_by_label("Your question").press("Enter")
        answer = page.locator(".msg-assistant").last
        expect(answer).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT)
        expect(answer.locator("a.cite").first).to_be_visible()
        assert page.evaluate("window.__violations") == [], path
    page.goto("/chat/history/")
    assert page.evaluate("window.__violations") == []
    assert [text for text in console if "Content Security Policy" in text or "Permissions-Policy" in text] == []


SCHEME_SCRIPT = (
    "import django; django.setup(); from django.test import Client; "
    "r = Client().get('/nowhere/', headers={'X-Forwarded-Proto': 'https'}); print(r.status_code)"
)


@pytest.mark.parametrize("env", [{}, {"RAILWAY_ENVIRONMENT_NAME": "production"}])
def test_django_itself_never_believes_x_forwarded_proto(env):
    """The scheme comes from the ASGI server, which reads the header from TRUSTED_PROXIES only (tests/test_proxies.py):
    sent straight to Django it still gets the HTTPS redirect."""
    result = run_python(SCHEME_SCRIPT, production_env(**env))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "301"


def test_the_development_key_is_made_once_per_data_directory_and_kept_private(tmp_path):
    first = development_secret_key(tmp_path / "a" / "secret-key")
    assert development_secret_key(tmp_path / "a" / "secret-key") == first
    assert development_secret_key(tmp_path / "b" / "secret-key") != first
    assert len(first) >= 60
    assert stat.S_IMODE((tmp_path / "a" / "secret-key").stat().st_mode) == 0o600


def test_a_request_too_large_is_one_warning_line_not_an_error_with_a_traceback(web, settings, caplog):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    caplog.set_level(logging.INFO, logger="django")
    response = web.post("/chat/", data={"question": "x" * 5000})
    assert response.status_code == 400
    [record] = [r for r in caplog.records if r.name == "django.security.RequestDataTooBig"]
    assert (record.levelname, record.exc_info) == ("WARNING", None)
    assert record.getMessage() == "Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE."
