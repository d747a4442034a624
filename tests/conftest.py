"""Test set-up: the embedded PostgreSQL (its own data directory under var/), real films, the real embedder."""

import pytest

# Real films every database test can rely on (their Wikipedia entries, imported and embedded once a session).
SAMPLE_TITLES = [
    "Vertigo (film)",
    "Citizen Kane",
    "Tokyo Story",
    "2001: A Space Odyssey",
    "Atanarjuat: The Fast Runner",
    "The Thin Red Line",
    "Duck Soup",
    "Pyaasa",
    "The Crowd",
    "All That Heaven Allows",
    "Seven Samurai",
    "The Godfather",
    "Bicycle Thieves",
    "Singin' in the Rain",
]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the embedded PostgreSQL when this run started it (one already running, say for `make run`, goes on)."""
    from flickora.db import stop_servers_started_here

    stop_servers_started_here()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    from reports import ingest

    records, _ = ingest.wikipedia_records()
    sample = [record for record in records if record.source_key in SAMPLE_TITLES]
    with django_db_blocker.unblock():
        ingest.import_records(sample)
        ingest.embed_sections()


@pytest.fixture(autouse=True)
def _no_generation_cache_across_tests():
    """Each test starts with this process's caches by corpus generation empty (search results, rendered pages): a
    rolled-back test leaves the generation where it found it, with whatever the test cached under it."""
    from reports import generations

    generations.forget_all()


@pytest.fixture(scope="session")
def tmdb_server():
    from tests.fake_tmdb import FakeTmdbServer

    with FakeTmdbServer() as server:
        yield server


@pytest.fixture
def fake_tmdb(tmdb_server, settings, monkeypatch):
    """The fake TMDB on loopback (tests/fake_tmdb.py), reset for each test, configured as the app's TMDB with a v3
    key."""
    from tests.fake_tmdb import FAKE_API_KEY

    monkeypatch.delenv("TMDB_API_KEY", raising=False)
    tmdb_server.reset()
    settings.TMDB_API_URL = tmdb_server.base_url
    settings.TMDB_API_KEY = FAKE_API_KEY
    settings.TMDB_TIMEOUT = 2.0
    yield tmdb_server
    tmdb_server.reset()


@pytest.fixture
def sample_movies(db):
    from reports.models import Movie

    return {movie.source_key: movie for movie in Movie.objects.all()}


def synthetic_sections(count: int, *, per_film: int = 10, seed: int = 7) -> None:
    """Fill the table to a realistic size: `count` sections whose vectors are real section vectors perturbed and
    re-normalised (so they cluster like real ones), `per_film` to a synthetic film."""
    import numpy as np

    from reports.models import Movie, MovieSection

    real = np.array([s.embedding for s in MovieSection.objects.exclude(embedding=None)], dtype=np.float32)
    rng = np.random.default_rng(seed)
    base = real[rng.integers(0, len(real), count)]
    vectors = base + rng.normal(0, 0.35 / np.sqrt(real.shape[1]), base.shape).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    movies = Movie.objects.bulk_create(
        [
            Movie(slug=f"synthetic-{n}", title=f"Synthetic {n}", source_text="-", source_hash="-")
            for n in range(0, count, per_film)
        ]
    )
    MovieSection.objects.bulk_create(
        [
            MovieSection(
                movie=movies[i // per_film],
                position=i % per_film,
                heading=f"Synthetic {i}",
                content=f"Synthetic section number {i}.",
                content_hash=f"h{i}",
                embedded_hash=f"h{i}",
                embedding=vector,
            )
            for i, vector in enumerate(vectors)
        ],
        batch_size=1000,
    )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reports_moviesection")


@pytest.fixture
def populated(db):
    """A table of ~3,000 sections (rolled back after the test)."""
    return synthetic_sections(3000)


from benchmarks.fake_llm import FakeLLMServer  # noqa: E402


@pytest.fixture(scope="session")
def fake_llm_server():
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def fake_llm(fake_llm_server):
    """The fake OpenRouter server (benchmarks/fake_llm.py), reset for each test."""
    fake_llm_server.reset()
    yield fake_llm_server
    fake_llm_server.reset()


@pytest.fixture(scope="session")
def live_server_asgi(django_db_setup):
    from flickora.asgi import application
    from tests.live import LiveASGIServer

    server = LiveASGIServer(application).start()
    yield server
    server.stop()


@pytest.fixture
def web(live_server_asgi, db):
    """An HTTP client of the live app with a CSRF cookie, like a browser that opened a page."""
    import httpx

    with httpx.Client(base_url=live_server_asgi.url, timeout=30) as client:
        assert client.get("/").status_code == 200
        client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
        yield client


@pytest.fixture
def llm(request, settings):
    """The fake OpenRouter server (reset for each test), configured as the app's LLM."""
    server = request.getfixturevalue("fake_llm")
    settings.LLM_BASE_URL = server.base_url
    settings.OPENROUTER_API_KEY = "sk-or-test-secret-key-0000"
    settings.LLM_MODEL = "test/model"
    settings.LLM_TIMEOUT = 2.0
    settings.LLM_CONNECT_TIMEOUT = 1.0
    return server


# Browser tests: Playwright for Python driving Debian's Chromium against the live ASGI server.

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (`item.rep_call`), so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def browser(live_server_asgi, db):
    """Chromium, started per test. Playwright's sync API keeps an event loop running in this thread while it is
    open, and Django refuses synchronous database calls there: a browser per test (about a second) keeps that
    window to the test's own body, after `db` is set up and before it is torn down. (Database reads in between
    go through a worker thread.)"""
    import os
    from pathlib import Path

    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (make system-packages)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(request, browser, live_server_asgi):
    """A page of a fresh browser context (its own cookies) on the live app; a screenshot in test-artifacts/ when
    the test fails."""
    from pathlib import Path

    context = browser.new_context(base_url=live_server_asgi.url, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:
        artifacts = Path(__file__).resolve().parent.parent / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in request.node.nodeid)
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
    context.close()
