from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import UserCreationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from accounts import throttling
from accounts.forms import LoginForm


class LoginView(auth_views.LoginView):
    """Django's login view, answering 429 with Retry-After when the form was refused for too many failures."""

    form_class = LoginForm
    redirect_authenticated_user = True

    def form_invalid(self, form: LoginForm) -> HttpResponse:
        response = super().form_invalid(form)
        if form.retry_after:
            response.status_code = 429
            response["Retry-After"] = str(form.retry_after)
        return response


def _next_url(request: HttpRequest) -> str:
    """Where to go after signing up: the page the visitor came from when it is ours, else the default."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return resolve_url(settings.LOGIN_REDIRECT_URL)


@sensitive_post_parameters("password1", "password2")
@never_cache
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(_next_url(request))
    form = UserCreationForm(request.POST if request.method == "POST" else None)
    context = {"form": form, "next": _next_url(request)}
    verdict = throttling.check_signup(request) if form.is_bound else None
    if verdict and not verdict.allowed:
        wait = throttling.wait_text(verdict.retry_after)
        form.add_error(None, f"Too many accounts were created from your network. Please wait {wait} and try again.")
        response = render(request, "accounts/signup.html", context, status=429)
        response["Retry-After"] = str(verdict.retry_after)
        return response
    if form.is_valid():
        user = form.save()
        throttling.count_signup(request)
        # The same login() as the login page: the receiver in accounts.signals moves this visit's conversations.
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(_next_url(request))
    return render(request, "accounts/signup.html", context)
