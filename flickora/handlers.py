"""The web process's ASGI application: sync views served the way a threaded WSGI server serves them, async views
(the chat's streams) by Django's ASGI handler.

Under Django's ASGI handler a sync view costs a new thread per request (its thread-sensitive context) and two hops
between the event loop and that thread for every middleware: about 2.5 ms of a worker's CPU for `/healthz`, more
than the view itself. Here a request for a sync view runs whole (middleware, view, template, the response read
out) on one of a fixed set of threads, in one hop, through the same middleware loaded in sync mode, as
`WSGIHandler` loads it. The event loop only reads the request and writes the response, so streams keep flowing
while pages render. Async views and static files take Django's path unchanged.

A sync view may return an async stream (the chat's SSE streams do): the thread runs the middleware and the view, and
finishes the request there (request_finished gives its database connection back), then the event loop sends the
stream, and cancels it when the client goes away, as Django's handler does. Opening a stream this way takes one hop
to a thread instead of two for each middleware. The stream's own database work must not use the request's
connection, since it is given back before the first byte: it goes through `chat.database.db`.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import HttpResponse, HttpResponseBase
from django.urls import Resolver404, get_resolver, set_script_prefix


class PagesHandler(BaseHandler):
    """The middleware chain in sync mode, for the sync views."""

    def __init__(self) -> None:
        super().__init__()
        self.load_middleware(is_async=False)


class Application(ASGIHandler):
    """`WEB_THREADS` threads for the sync views; 0 leaves every request to Django's ASGI handler (as before, and
    what the benchmark compares with)."""

    def __init__(self, threads: int | None = None) -> None:
        super().__init__()
        threads = settings.WEB_THREADS if threads is None else threads
        self.pages = PagesHandler() if threads else None
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="page") if threads else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.pages and scope["type"] == "http" and self.served_in_thread(_path_info(scope)):
            await self.handle_in_thread(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    def served_in_thread(self, path: str) -> bool:
        """Whether the view at `path` is a sync one (a path no view answers renders its 404 in a thread too); static
        files stay on the event loop, which hands only the file's reading to a thread."""
        if settings.STATIC_URL and path.startswith(settings.STATIC_URL):
            return False
        return _is_sync_view(get_resolver(), path)

    async def handle_in_thread(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            loop = asyncio.get_running_loop()
            response = await loop.run_in_executor(self.executor, self.respond, scope, body_file)
        finally:
            body_file.close()
        if response.streaming:
            await self.send_stream(response, receive, send)
        else:
            await self.send_response(response, send)

    async def send_stream(self, response: HttpResponseBase, receive: Any, send: Any) -> None:
        """Send an async stream until it ends or the client disconnects (then it is cancelled, its generator closed:
        what Django's handler does for an async view's stream)."""
        sending = asyncio.create_task(self.send_response(response, send))
        listening = asyncio.create_task(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait([sending, listening], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (listening, sending):
                task.cancel()
            for outcome in await asyncio.gather(sending, listening, return_exceptions=True):
                if isinstance(outcome, Exception) and not isinstance(outcome, RequestAborted):
                    raise outcome

    def respond(self, scope: dict[str, Any], body_file: Any) -> HttpResponseBase:
        """The whole request on this thread, as WSGIHandler runs it: request_started, the middleware and the view,
        the body read out, then request_finished (which gives the database connection back) from `close()`."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.pages.get_response(request)
        try:
            return _read_out(response)
        finally:
            response.close()


def _path_info(scope: dict[str, Any]) -> str:
    """The path the URLconf sees, as `ASGIRequest` computes it."""
    return scope["path"].removeprefix(get_script_prefix(scope))


@functools.lru_cache(maxsize=4096)
def _view_is_sync(view: Any) -> bool:
    return not iscoroutinefunction(view)


def _is_sync_view(resolver: Any, path: str) -> bool:
    try:
        match = resolver.resolve(path)
    except Resolver404:
        return True
    return _view_is_sync(match.func)


def _read_out(response: HttpResponseBase) -> HttpResponseBase:
    """A response that sending needs no thread for: bytes, or an async stream (sent from the event loop). A sync
    stream from a sync view is read out here, on its own thread (such views stream little)."""
    if not response.streaming or response.is_async:  # type: ignore[attr-defined]
        return response
    plain = HttpResponse(b"".join(response.streaming_content), status=response.status_code)  # type: ignore[attr-defined]
    plain.headers = response.headers
    plain.cookies = response.cookies
    return plain
