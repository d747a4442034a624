"""The web process's ASGI application (flickora/handlers.py): sync views whole on the page threads, async views on
the event loop, through the real middleware. Its URLconf is this module's `urlpatterns`."""

import asyncio
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core import signals
from django.http import HttpResponse, StreamingHttpResponse
from django.urls import path

from flickora.handlers import Application


def sync_view(request):
    return HttpResponse(threading.current_thread().name)


async def async_view(request):
    return HttpResponse(threading.current_thread().name)


def sync_stream(request):
    return StreamingHttpResponse(iter(["one ", "two ", "three"]), headers={"X-Kind": "stream"})


def sync_view_with_async_stream(request):
    async def parts():
        yield "never"

    return StreamingHttpResponse(parts())


def failing_view(request):
    raise ValueError("a bug")


urlpatterns = [
    path("sync", sync_view),
    path("async", async_view),
    path("stream", sync_stream),
    path("async-stream", sync_view_with_async_stream),
    path("fails", failing_view),
]


@pytest.fixture
def app(settings):
    settings.ROOT_URLCONF = __name__
    settings.ALLOWED_HOSTS = ["testserver"]
    return Application(threads=2)


def get(app, path: str, **scope) -> tuple[int, dict[bytes, bytes], bytes]:
    async def run():
        communicator = ApplicationCommunicator(
            app,
            {
                "type": "http",
                "method": "GET",
                "path": path,
                "query_string": b"",
                "headers": [(b"host", b"testserver")],
                **scope,
            },
        )
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(5)
        body = b""
        while True:
            message = await communicator.receive_output(5)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await communicator.wait(5)
        return start["status"], dict(start["headers"]), body

    return asyncio.run(run())


def test_a_sync_view_runs_on_a_page_thread_and_an_async_one_on_the_event_loop(app):
    loop_thread = threading.current_thread().name  # asyncio.run runs the loop on this thread
    assert get(app, "/sync")[0] == 200
    assert get(app, "/sync")[2].decode().startswith("page_")
    assert get(app, "/async")[2].decode() == loop_thread


def test_with_no_page_threads_every_view_takes_djangos_path(settings):
    settings.ROOT_URLCONF = __name__
    settings.ALLOWED_HOSTS = ["testserver"]
    name = get(Application(threads=0), "/sync")[2].decode()
    assert not name.startswith("page_")
    assert name != threading.current_thread().name


def test_the_request_starts_and_finishes_on_the_view_thread(app):
    seen = []

    def started(**kwargs):
        seen.append(("started", threading.current_thread().name))

    def finished(**kwargs):
        seen.append(("finished", threading.current_thread().name))

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        body = get(app, "/sync")[2].decode()
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    # request_finished closes the thread's database connection (gives it back to the pool): it must be the thread
    # that used it.
    assert seen == [("started", body), ("finished", body)]


def test_a_streaming_response_of_a_sync_view_arrives_whole_with_its_headers(app):
    status, headers, body = get(app, "/stream")
    assert (status, body, headers[b"X-Kind"]) == (200, b"one two three", b"stream")


def test_a_sync_view_that_returns_an_async_stream_is_an_error(app):
    with pytest.raises(TypeError, match="make the view async"):
        get(app, "/async-stream")


def test_a_failing_sync_view_is_a_500_from_the_middleware(app, settings):
    settings.DEBUG = False
    assert get(app, "/fails")[0] == 500


def test_a_path_no_view_answers_is_a_404_rendered_on_a_page_thread(app):
    assert get(app, "/no-such-page")[0] == 404


def test_static_files_stay_on_djangos_path(app):
    assert not app.served_in_thread("/static/js/chat.js")
    assert app.served_in_thread("/sync")
    assert not app.served_in_thread("/async")
