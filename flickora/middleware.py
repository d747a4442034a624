"""Middleware of our own: WhiteNoise's static file middleware usable from async code without a thread hop per request,
and the security headers Django does not set.

Static files:

WhiteNoise's middleware is synchronous only, so under ASGI Django ran every request (a chat stream too) through a
thread of its own just to ask whether the path is a static file. Here the lookup (a dict, or the finders in DEBUG)
runs on the event loop, and only serving a file goes to a thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware

GetResponse = Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]


def _follow_the_mode(middleware: object, get_response: GetResponse) -> None:
    """Be a coroutine function when the next handler is one (ASGI), and a plain callable otherwise."""
    middleware.is_async = iscoroutinefunction(get_response)  # type: ignore[attr-defined]
    if middleware.is_async:  # type: ignore[attr-defined]
        markcoroutinefunction(middleware)


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)
        _follow_the_mode(self, get_response)

    def __call__(self, request: HttpRequest):
        return self.__acall__(request) if self.is_async else super().__call__(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        static_file = self.find_file(request.path_info) if self.autorefresh else self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)


class SecurityHeadersMiddleware:
    """Content-Security-Policy and Permissions-Policy on every response (Django 5.2 sets neither). The pages load
    their scripts and styles from our own origin only and have no inline ones, so the policy can be strict; a view
    that sets its own header keeps it."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        from django.conf import settings

        self.get_response = get_response
        policies = (
            ("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY),
            ("Permissions-Policy", settings.PERMISSIONS_POLICY),
        )
        self.headers = {name: value for name, value in policies if value}
        _follow_the_mode(self, get_response)

    def __call__(self, request: HttpRequest):
        return self.__acall__(request) if self.is_async else self._add(self.get_response(request))  # type: ignore[arg-type]

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        return self._add(await self.get_response(request))  # type: ignore[misc]

    def _add(self, response: HttpResponseBase) -> HttpResponseBase:
        for name, value in self.headers.items():
            response.headers.setdefault(name, value)
        return response
