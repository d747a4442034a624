from typing import Any

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from accounts import throttling


class ThrottledLogin:
    """Login form behaviour: refused, with how long to wait, while the account or the address has had too many
    failed logins; each failed login counted against both."""

    retry_after = 0  # seconds, when refused for that

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        if username is None or not self.cleaned_data.get("password"):
            return super().clean()  # a field is missing: nothing is checked against a password
        verdict = throttling.check_login(self.request, username=username)
        if not verdict.allowed:
            self.retry_after = verdict.retry_after
            wait = throttling.wait_text(verdict.retry_after)
            raise ValidationError(
                f"Too many failed attempts to log in. Please wait {wait} before trying again.", code="throttled"
            )
        try:
            return super().clean()
        except ValidationError as error:
            if error.code == "invalid_login":
                throttling.count_failed_login(self.request, username=username)
            raise


class LoginForm(ThrottledLogin, AuthenticationForm):
    pass


class AdminLoginForm(ThrottledLogin, AdminAuthenticationForm):
    pass
