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


# What the async stream of the view below saw: the thread each part was made on, and whether it was closed.
stream_log: list[str] = []


def sync_view_with_async_stream(request):
    async def parts():
        try:
            for number in range(int(request.GET.get("parts", 3))):
                stream_log.append(threading.current_thread().name)
                yield f"part {number} "
                await asyncio.sleep(float(request.GET.get("pause", 0)))
        finally:
            stream_log.append("closed")

    return StreamingHttpResponse(parts(), headers={"X-Kind": "async stream"})


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


def communicator(app, path: str, **scope) -> ApplicationCommunicator:
    return ApplicationCommunicator(
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


def get(app, path: str, **scope) -> tuple[int, dict[bytes, bytes], bytes]:
    async def run():
        client = communicator(app, path, **scope)
        await client.send_input({"type": "http.request", "body": b""})
        start = await client.receive_output(5)
        body = b""
        while True:
            message = await client.receive_output(5)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await client.wait(5)
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


def test_an_async_stream_of_a_sync_view_is_sent_from_the_event_loop_once_its_thread_finished(app):
    loop_thread = threading.current_thread().name
    finished = []

    def on_finished(**kwargs):
        finished.append((threading.current_thread().name, len(stream_log)))

    stream_log.clear()
    signals.request_finished.connect(on_finished)
    try:
        status, headers, body = get(app, "/async-stream")
    finally:
        signals.request_finished.disconnect(on_finished)
    assert (status, body, headers[b"X-Kind"]) == (200, b"part 0 part 1 part 2 ", b"async stream")
    # The request finished on its page thread (its database connection given back) before the first part.
    [(thread, parts_then)] = finished
    assert (thread.startswith("page_"), parts_then) == (True, 0)
    assert stream_log == [loop_thread, loop_thread, loop_thread, "closed"]


def test_a_client_that_goes_away_ends_the_async_stream_of_a_sync_view(app):
    stream_log.clear()

    async def run():
        client = communicator(app, "/async-stream", query_string=b"parts=1000&pause=0.01")
        await client.send_input({"type": "http.request", "body": b""})
        start = await client.receive_output(5)
        first = await client.receive_output(5)
        await client.send_input({"type": "http.disconnect"})
        await client.wait(5)  # the application returns: the stream was cancelled
        return start["status"], first["body"]

    assert asyncio.run(run()) == (200, b"part 0 ")
    assert stream_log[-1] == "closed"
    assert len(stream_log) < 100


def test_a_failing_sync_view_is_a_500_from_the_middleware(app, settings):
    settings.DEBUG = False
    assert get(app, "/fails")[0] == 500


def test_a_path_no_view_answers_is_a_404_rendered_on_a_page_thread(app):
    assert get(app, "/no-such-page")[0] == 404


def test_static_files_stay_on_djangos_path(app):
    assert not app.served_in_thread("/static/js/chat.js")
    assert app.served_in_thread("/sync")
    assert not app.served_in_thread("/async")
