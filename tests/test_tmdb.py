"""The TMDB client (reports/tmdb.py) against a real HTTP server on loopback (tests/fake_tmdb.py). No database."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import socket

import pytest

from reports import tmdb
from reports.tmdb import (
    TmdbFilm,
    TmdbHit,
    TmdbNotConfigured,
    TmdbNotFound,
    TmdbRateLimited,
    TmdbUnauthorized,
    TmdbUnavailable,
)
from tests.fake_tmdb import FAKE_API_KEY, FAKE_READ_TOKEN

WRONG_KEY = "fedcba9876543210fedcba9876543210"
WRONG_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJub3QtYS1yZWFsLWtleSJ9.d3Jvbmc"

THE_MATRIX = TmdbFilm(
    tmdb_id=603,
    imdb_id="tt0133093",
    title="The Matrix",
    original_title="The Matrix",
    year=1999,
    released=datetime.date(1999, 3, 30),
    runtime=136,
    genres=("Action", "Science Fiction"),
    overview=(
        "A computer hacker learns that the world he lives in is a simulation, and joins the rebels who fight the "
        "machines that run it."
    ),
    tagline="Welcome to the Real World.",
    directors=("Lana Wachowski", "Lilly Wachowski"),
    writers=("Lana Wachowski", "Lilly Wachowski"),
    cast=("Keanu Reeves", "Laurence Fishburne", "Carrie-Anne Moss", "Hugo Weaving", "Gloria Foster", "Joe Pantoliano"),
    countries=("Australia", "United States of America"),
    languages=("English",),
    production=("Village Roadshow Pictures", "Groucho II Film Partnership", "Silver Pictures", "Warner Bros. Pictures"),
    box_office=463517383,
    poster_url="https://image.tmdb.org/t/p/w342/f89U3ADr1oiB1s9GkdPOEpXUk5H.jpg",
    page_url="https://www.themoviedb.org/movie/603",
)


@pytest.fixture
def waits():
    """The waits asked of the injected sleep (nothing actually sleeps)."""
    return []


def test_film_details_and_credits_mapped(fake_tmdb, waits):
    film = tmdb.fetch_film(603, sleep=waits.append)

    assert film == THE_MATRIX
    [request] = fake_tmdb.requests
    assert request.path == "/3/movie/603"
    assert request.query == {"append_to_response": "credits", "language": "en-US", "api_key": FAKE_API_KEY}
    assert waits == []


def test_unknowns_mapped_to_empty_and_none(fake_tmdb):
    film = tmdb.fetch_film(900001)

    assert (film.imdb_id, film.year, film.released, film.runtime, film.box_office) == ("", None, None, None, None)
    assert (film.poster_url, film.overview, film.tagline) == ("", "", "")
    assert (film.genres, film.directors, film.writers, film.cast) == ((), (), (), ())
    assert film.languages == ("No Language",)  # english_name empty: its own name instead
    assert film.page_url == "https://www.themoviedb.org/movie/900001"


def test_v3_key_sent_as_query_parameter(fake_tmdb):
    tmdb.fetch_film(603)

    [request] = fake_tmdb.requests
    assert request.query["api_key"] == FAKE_API_KEY
    assert "authorization" not in request.headers


def test_read_access_token_sent_as_bearer_header(fake_tmdb, settings):
    settings.TMDB_API_KEY = FAKE_READ_TOKEN

    assert tmdb.fetch_film(603).title == "The Matrix"
    [request] = fake_tmdb.requests
    assert request.headers["authorization"] == f"Bearer {FAKE_READ_TOKEN}"
    assert "api_key" not in request.query


def test_key_from_environment_when_no_setting(fake_tmdb, settings, monkeypatch):
    del settings.TMDB_API_KEY
    monkeypatch.setenv("TMDB_API_KEY", FAKE_API_KEY)

    assert tmdb.fetch_film(603).tmdb_id == 603
    assert fake_tmdb.requests[0].query["api_key"] == FAKE_API_KEY


def test_search_without_year(fake_tmdb):
    hits = tmdb.search_films("matrix")

    assert [hit.tmdb_id for hit in hits] == [603, 604, 605, 900001]
    assert hits[0] == TmdbHit(tmdb_id=603, title="The Matrix", year=1999, overview=THE_MATRIX.overview)
    assert hits[3] == TmdbHit(tmdb_id=900001, title="The Matrix Untitled Test Entry", year=None, overview="")
    [request] = fake_tmdb.requests
    assert request.path == "/3/search/movie"
    assert request.query == {
        "query": "matrix",
        "include_adult": "false",
        "language": "en-US",
        "page": "1",
        "api_key": FAKE_API_KEY,
    }


def test_search_with_year(fake_tmdb):
    hits = tmdb.search_films("Matrix", year=2003)

    assert hits == [
        TmdbHit(604, "The Matrix Reloaded", 2003, "Neo and the rebels fight on against the machines."),
        TmdbHit(605, "The Matrix Revolutions", 2003, "The war between humans and machines comes to Zion."),
    ]
    assert fake_tmdb.requests[0].query["year"] == "2003"
    assert fake_tmdb.requests[0].query["include_adult"] == "false"


@pytest.mark.parametrize("credential", [WRONG_KEY, WRONG_TOKEN], ids=["v3-key", "read-token"])
def test_refused_credential(fake_tmdb, settings, credential):
    settings.TMDB_API_KEY = credential

    with pytest.raises(TmdbUnauthorized) as caught:
        tmdb.fetch_film(603)

    message = str(caught.value)
    assert "HTTP 401" in message and "TMDB_API_KEY" in message
    assert credential not in message
    assert len(fake_tmdb.requests) == 1


def test_status_401_switch(fake_tmdb):
    fake_tmdb.set_scenario("status_401")

    with pytest.raises(TmdbUnauthorized, match="Invalid API key"):
        tmdb.search_films("matrix")


def test_unknown_film(fake_tmdb):
    with pytest.raises(TmdbNotFound) as caught:
        tmdb.fetch_film(424242)

    assert str(caught.value) == "TMDB has no film with id 424242"


def test_rate_limited_once_then_answered(fake_tmdb, waits):
    fake_tmdb.set_scenario("status_429", retry_after=2, times=1)

    assert tmdb.fetch_film(603, sleep=waits.append) == THE_MATRIX
    assert waits == [2.0]
    assert [request.scenario for request in fake_tmdb.requests] == ["status_429", "ok"]


def test_rate_limited_throughout(fake_tmdb, waits):
    fake_tmdb.set_scenario("status_429", retry_after=2)

    with pytest.raises(TmdbRateLimited, match="HTTP 429"):
        tmdb.fetch_film(603, sleep=waits.append)

    assert waits == [2.0, 2.0, 2.0]
    assert len(fake_tmdb.requests) == 4


def test_retry_after_capped(fake_tmdb, waits):
    fake_tmdb.set_scenario("status_429", retry_after=3600, times=2)

    assert tmdb.search_films("matrix", sleep=waits.append)
    assert waits == [30.0, 30.0]


def test_timeout_retried_once(fake_tmdb, settings, waits):
    settings.TMDB_TIMEOUT = 0.3
    fake_tmdb.set_scenario("hang")

    with pytest.raises(TmdbUnavailable, match=r"within 0\.3 s"):
        tmdb.fetch_film(603, sleep=waits.append)

    assert fake_tmdb.wait_for_requests(2)
    assert len(fake_tmdb.requests) == 2
    assert waits == []


def test_body_not_json(fake_tmdb):
    fake_tmdb.set_scenario("not_json")

    with pytest.raises(TmdbUnavailable, match="not the JSON expected|other than the JSON expected"):
        tmdb.fetch_film(603)
    assert len(fake_tmdb.requests) == 1


def test_server_error_not_retried(fake_tmdb):
    fake_tmdb.set_scenario("status_503")

    with pytest.raises(TmdbUnavailable, match="HTTP 503"):
        tmdb.fetch_film(603)
    assert len(fake_tmdb.requests) == 1


def test_connection_refused(fake_tmdb, settings):
    with socket.socket() as probe:  # a loopback port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.TMDB_API_URL = f"http://127.0.0.1:{port}/3"

    with pytest.raises(TmdbUnavailable, match="Could not reach TMDB"):
        tmdb.fetch_film(603)


@pytest.mark.parametrize("setting", ["", "   "])
def test_not_configured(fake_tmdb, settings, setting):
    settings.TMDB_API_KEY = setting

    with pytest.raises(TmdbNotConfigured, match="set TMDB_API_KEY"):
        tmdb.fetch_film(603)
    with pytest.raises(TmdbNotConfigured):
        tmdb.search_films("matrix")
    assert fake_tmdb.requests == []


@pytest.mark.parametrize("credential", [FAKE_API_KEY, FAKE_READ_TOKEN], ids=["v3-key", "read-token"])
def test_credential_never_logged(fake_tmdb, settings, caplog, waits, credential):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "reports.tmdb"):  # the settings hold httpx at WARNING
        caplog.set_level(logging.DEBUG, logger=name)
    settings.TMDB_API_KEY = credential

    tmdb.fetch_film(603)
    tmdb.search_films("matrix", year=1999)
    fake_tmdb.set_scenario("status_429", retry_after=1, times=1)
    tmdb.fetch_film(603, sleep=waits.append)
    with pytest.raises(TmdbNotFound):
        tmdb.fetch_film(424242)
    fake_tmdb.set_scenario("status_401")
    with pytest.raises(TmdbUnauthorized):
        tmdb.fetch_film(603)

    logged = [f"HTTP Request: GET {fake_tmdb.base_url}/movie/603", "TMDB is rate limiting", "send_request_headers"]
    assert all(any(text in record.getMessage() for record in caplog.records) for text in logged)
    assert len(fake_tmdb.requests) == 6
    for record in caplog.records:
        assert credential not in record.getMessage()
    assert credential not in caplog.text
    assert credential not in repr(tmdb.config())


def test_overview_text():
    assert tmdb.overview_text(THE_MATRIX) == f"{THE_MATRIX.overview} Welcome to the Real World."
    assert tmdb.overview_text(dataclasses.replace(THE_MATRIX, tagline="Free your mind")).endswith(
        "machines that run it. Free your mind."
    )
    assert tmdb.overview_text(dataclasses.replace(THE_MATRIX, tagline="")) == THE_MATRIX.overview
    untitled = dataclasses.replace(THE_MATRIX, overview="", tagline="")
    assert tmdb.overview_text(untitled) == ""


def test_attribution():
    assert tmdb.ATTRIBUTION == "This product uses the TMDB API but is not endorsed or certified by TMDB."
    assert tmdb.SOURCE_NAME == "TMDB"
