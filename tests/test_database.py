"""The streams' database threads (chat.database): few, each call a round trip to the real PostgreSQL that gives its
connection back at once."""

import asyncio
import threading

import pytest
from django.db import connection

from chat import database

pytestmark = pytest.mark.django_db


@pytest.fixture
def new_threads():
    """The threads made anew from the settings of the test, and stopped after it."""
    database._executor.cache_clear()
    yield
    database._executor().shutdown(wait=True)
    database._executor.cache_clear()


@pytest.mark.parametrize(("threads", "pool", "expected"), [(3, 10, 3), (20, 10, 10), (0, 10, 1), (1, 10, 1)])
def test_the_threads_are_as_many_as_set_within_the_pool(settings, threads, pool, expected):
    settings.CHAT_DB_THREADS, settings.DB_POOL_MAX = threads, pool
    assert database.database_threads() == expected


def test_the_default_is_three_threads(settings):
    assert settings.CHAT_DB_THREADS == 3


@pytest.mark.usefixtures("new_threads")
def test_eight_calls_at_once_share_the_three_threads(settings):
    settings.CHAT_DB_THREADS = 3
    release = threading.Event()

    def work(number: int) -> tuple[int, str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s", [number])
            (answer,) = cursor.fetchone()
        release.wait(timeout=30)
        return answer, threading.current_thread().name

    async def scenario() -> list[tuple[int, str]]:
        calls = [asyncio.ensure_future(database.db(lambda number=number: work(number))) for number in range(8)]
        await asyncio.sleep(0)
        release.set()
        return await asyncio.gather(*calls)

    results = asyncio.run(scenario())
    assert [answer for answer, _ in results] == list(range(8))
    assert sorted({name for _, name in results}) == ["chat-db_0", "chat-db_1", "chat-db_2"]


@pytest.mark.usefixtures("new_threads")
def test_a_call_gives_its_connection_back(settings):
    settings.CHAT_DB_THREADS = 1  # one thread: the second call runs where the first did

    def query() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone()[0]

    async def scenario() -> tuple[int, bool]:
        return await database.db(query), await database.db(lambda: connection.connection is None)

    assert asyncio.run(scenario()) == (1, True)


@pytest.mark.usefixtures("new_threads")
def test_an_error_reaches_the_caller(settings):
    settings.CHAT_DB_THREADS = 1

    def broken() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")

    async def scenario() -> str:
        try:
            await database.db(broken)
        except Exception as exc:  # the test reads its type and message
            return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        return "no error"

    assert asyncio.run(scenario()) == "DataError: division by zero"
