"""The per-process watch, tick by tick with an injected clock: no test here waits for time to pass."""

import asyncio

import pytest

from chat import watch as watch_module
from chat.listener import Listener
from chat.watch import Watch, Writing


@pytest.fixture(autouse=True)
def nothing_to_stop(monkeypatch):
    """The round trip answers that no answer is to be stopped: these tests are about the ticks (the round trip's
    own behaviour, a deletion included, is tested through the server in tests/test_chat.py)."""
    monkeypatch.setattr(watch_module, "watch_round", lambda message_pks, texts, left, grace: {})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watched(clock: Clock) -> tuple[Watch, Writing]:
    """A watch over one answer being written."""
    watch = Watch(clock=clock)
    writing = Writing(-1, Listener(clock=clock), asyncio.create_task(asyncio.sleep(3600)))
    watch.writing[writing.message_pk] = writing  # not add(): the test runs the ticks itself
    return watch, writing


def sent(listener: Listener) -> list[bytes | None]:
    return [listener.queue.get_nowait() for _ in range(listener.queue.qsize())]


def test_a_quiet_stream_gets_a_ping_once_the_ping_interval_has_passed(db, settings):
    settings.SSE_PING_SECONDS = 15

    async def scenario() -> list[list[bytes | None]]:
        clock = Clock()
        watch, writing = watched(clock)
        pings = []
        for step in (14.9, 0.2, 14.9, 0.2):
            clock.now += step
            await watch.tick()
            pings.append(sent(writing.listener))
        writing.task.cancel()
        return pings

    assert asyncio.run(scenario()) == [[], [b": ping\n\n"], [], [b": ping\n\n"]]


def test_a_stream_that_left_gets_no_ping(db, settings):
    settings.SSE_PING_SECONDS = 15

    async def scenario() -> list[bytes | None]:
        clock = Clock()
        watch, writing = watched(clock)
        writing.listener.leave()
        clock.now += 60
        await watch.tick()
        writing.task.cancel()
        return sent(writing.listener)

    assert asyncio.run(scenario()) == []


def test_the_growing_text_is_saved_once_per_flush_interval(db, settings):
    settings.CHAT_FLUSH_SECONDS = 1.0

    async def scenario() -> list[int]:
        clock = Clock()
        watch, writing = watched(clock)
        flushed = []
        for step, text in (
            (0.5, "Hitch"),
            (0.6, "Hitchcock"),
            (0.5, "Hitchcock directed"),
            (0.6, "Hitchcock directed"),
        ):
            clock.now += step
            writing.content = text
            await watch.tick()
            flushed.append(writing.flushed)
        writing.task.cancel()
        return flushed

    assert asyncio.run(scenario()) == [0, len("Hitchcock"), len("Hitchcock"), len("Hitchcock directed")]
