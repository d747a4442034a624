"""A real HTTP server on 127.0.0.1 that speaks TMDB's API v3 for a few films, with switches for its failures.

An `http.server.ThreadingHTTPServer` in a background thread: TMDB answers whole JSON documents, so unlike
benchmarks/fake_llm.py (which needs byte-level control of a stream) the standard library's server is enough.

    with FakeTmdbServer() as server:
        settings.TMDB_API_URL = server.base_url
        settings.TMDB_API_KEY = FAKE_API_KEY
        ...
        server.requests[-1].query["api_key"]          # the query string, one value per name
        server.requests[-1].headers["authorization"]  # header names are lower-case

It checks credentials as TMDB does: the `api_key` query parameter must be FAKE_API_KEY, or the Authorization header
"Bearer FAKE_READ_TOKEN"; anything else gets TMDB's 401.

Endpoints: GET /3/movie/{id} (the credits inside with append_to_response=credits; TMDB's 404 for an unknown id) and
GET /3/search/movie (query: a case-insensitive part of the title; year: the release year), over FILMS.

Scenarios (`server.set_scenario(name, **params)`):

- "ok": as above.
- "status_<code>" (401, 404, 429 with `Retry-After`, 500, 503, or any other): TMDB's JSON error body
  `{"success": false, "status_code": ..., "status_message": ...}`. Params: retry_after (seconds, default 2 for 429;
  None for no header), times (answer only the next `times` requests so, then go back to "ok").
- "hang": read the request, then answer nothing until the client gives up (or `seconds`, default 10, pass, or the
  server is reset or stopped).
- "not_json": 200 with an HTML page, as a captive portal or a misconfigured proxy would send.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

FAKE_API_KEY = "0123456789abcdef0123456789abcdef"  # v3 keys are 32 hex digits
FAKE_READ_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiIwMTIzNDU2Nzg5YWJjZGVmIiwic2NvcGVzIjpbImFwaV9yZWFkIl19.c2lnbmF0dXJl"
API_ROOT = "/3"

SCENARIOS = frozenset({"ok", "hang", "not_json"})
_STATUS_SCENARIO = re.compile(r"status_(\d{3})")

# TMDB's own error bodies: its status_code and status_message for each HTTP status.
STATUS_ERRORS: dict[int, tuple[int, str]] = {
    401: (7, "Invalid API key: You must be granted a valid key."),
    404: (34, "The resource you requested could not be found."),
    429: (25, "Your request count (#) is over the allowed limit of (40)."),
    500: (11, "Internal error: Something went wrong, contact TMDB."),
    503: (9, "Service offline: This service is temporarily offline, try again later."),
}

# The Matrix as TMDB describes it (details with credits, trimmed to a few people). Laurence Fishburne is listed
# before Keanu Reeves so that billing order has to come from `order`; Lana Wachowski is in Writing twice; Bill Pope's
# job is "Director of Photography", which does not make him a director.
THE_MATRIX: dict[str, Any] = {
    "adult": False,
    "backdrop_path": "/ncEsesgOJDNrTUED89hYbA117wo.jpg",
    "belongs_to_collection": {"id": 2344, "name": "The Matrix Collection"},
    "budget": 63000000,
    "genres": [{"id": 28, "name": "Action"}, {"id": 878, "name": "Science Fiction"}],
    "homepage": "http://www.warnerbros.com/matrix",
    "id": 603,
    "imdb_id": "tt0133093",
    "origin_country": ["US"],
    "original_language": "en",
    "original_title": "The Matrix",
    "overview": (
        "A computer hacker learns that the world he lives in is a simulation, and joins the rebels who fight the "
        "machines that run it.\n"
    ),
    "popularity": 85.2,
    "poster_path": "/f89U3ADr1oiB1s9GkdPOEpXUk5H.jpg",
    "production_companies": [
        {"id": 79, "logo_path": None, "name": "Village Roadshow Pictures", "origin_country": "US"},
        {"id": 372, "logo_path": None, "name": "Groucho II Film Partnership", "origin_country": ""},
        {"id": 1885, "logo_path": None, "name": "Silver Pictures", "origin_country": "US"},
        {"id": 174, "logo_path": None, "name": "Warner Bros. Pictures", "origin_country": "US"},
    ],
    "production_countries": [
        {"iso_3166_1": "AU", "name": "Australia"},
        {"iso_3166_1": "US", "name": "United States of America"},
    ],
    "release_date": "1999-03-30",
    "revenue": 463517383,
    "runtime": 136,
    "spoken_languages": [{"english_name": "English", "iso_639_1": "en", "name": "English"}],
    "status": "Released",
    "tagline": "Welcome to the Real World.",
    "title": "The Matrix",
    "video": False,
    "vote_average": 8.2,
    "vote_count": 26000,
    "credits": {
        "cast": [
            {"id": 2975, "name": "Laurence Fishburne", "character": "Morpheus", "order": 1, "cast_id": 35},
            {"id": 6384, "name": "Keanu Reeves", "character": "Thomas A. Anderson / Neo", "order": 0, "cast_id": 34},
            {"id": 530, "name": "Carrie-Anne Moss", "character": "Trinity", "order": 2, "cast_id": 36},
            {"id": 1331, "name": "Hugo Weaving", "character": "Agent Smith", "order": 3, "cast_id": 37},
            {"id": 9364, "name": "Gloria Foster", "character": "Oracle", "order": 4, "cast_id": 38},
            {"id": 532, "name": "Joe Pantoliano", "character": "Cypher", "order": 5, "cast_id": 39},
        ],
        "crew": [
            {"id": 9339, "name": "Lana Wachowski", "department": "Directing", "job": "Director"},
            {"id": 9340, "name": "Lilly Wachowski", "department": "Directing", "job": "Director"},
            {"id": 9339, "name": "Lana Wachowski", "department": "Writing", "job": "Writer"},
            {"id": 9340, "name": "Lilly Wachowski", "department": "Writing", "job": "Writer"},
            {"id": 9339, "name": "Lana Wachowski", "department": "Writing", "job": "Screenplay"},
            {"id": 1091, "name": "Joel Silver", "department": "Production", "job": "Producer"},
            {"id": 9341, "name": "Bill Pope", "department": "Camera", "job": "Director of Photography"},
            {"id": 9343, "name": "Don Davis", "department": "Sound", "job": "Original Music Composer"},
        ],
    },
}


def _film(tmdb_id: int, title: str, released: str, overview: str, **extra: Any) -> dict[str, Any]:
    """A film with TMDB's shape and nothing known but what is given: what TMDB sends for a sparse entry."""
    return {
        "adult": False,
        "genres": [],
        "id": tmdb_id,
        "imdb_id": None,
        "original_language": "en",
        "original_title": title,
        "overview": overview,
        "poster_path": None,
        "production_companies": [],
        "production_countries": [],
        "release_date": released,
        "revenue": 0,
        "runtime": 0,
        "spoken_languages": [],
        "tagline": "",
        "title": title,
        "credits": {"cast": [], "crew": []},
        **extra,
    }


# A film after the Wikidata catalogue's last year (2014), as `import_movies --tmdb` is for; the overview is ours.
PARASITE: dict[str, Any] = _film(
    496243,
    "Parasite",
    "2019-05-30",
    "A poor family talks its way, one job at a time, into the household of a rich one.",
    imdb_id="tt6751668",
    original_language="ko",
    original_title="기생충",
    genres=[{"id": 35, "name": "Comedy"}, {"id": 53, "name": "Thriller"}, {"id": 18, "name": "Drama"}],
    runtime=133,
    revenue=257591776,
    poster_path="/7IiTTgloJzvGI1TAYymCfbfl3vT.jpg",
    production_companies=[{"id": 4399, "logo_path": None, "name": "Barunson E&A", "origin_country": "KR"}],
    production_countries=[{"iso_3166_1": "KR", "name": "South Korea"}],
    spoken_languages=[{"english_name": "Korean", "iso_639_1": "ko", "name": "한국어/조선말"}],
    credits={
        "cast": [
            {"id": 20738, "name": "Song Kang-ho", "character": "Kim Ki-taek", "order": 0},
            {"id": 115290, "name": "Lee Sun-kyun", "character": "Park Dong-ik", "order": 1},
            {"id": 1251350, "name": "Cho Yeo-jeong", "character": "Choi Yeon-gyo", "order": 2},
        ],
        "crew": [
            {"id": 21684, "name": "Bong Joon-ho", "department": "Directing", "job": "Director"},
            {"id": 21684, "name": "Bong Joon-ho", "department": "Writing", "job": "Screenplay"},
            {"id": 1402019, "name": "Han Jin-won", "department": "Writing", "job": "Screenplay"},
        ],
    },
)

FILMS: dict[int, dict[str, Any]] = {
    603: THE_MATRIX,
    496243: PARASITE,
    604: _film(604, "The Matrix Reloaded", "2003-05-15", "Neo and the rebels fight on against the machines."),
    605: _film(605, "The Matrix Revolutions", "2003-11-05", "The war between humans and machines comes to Zion."),
    # Made up: an entry TMDB knows nothing about yet (no date, no runtime, no revenue, no poster, no IMDb id).
    900001: _film(
        900001,
        "The Matrix Untitled Test Entry",
        "",
        "",
        spoken_languages=[{"english_name": "", "iso_639_1": "xx", "name": "No Language"}],
    ),
}


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: dict[str, str]  # the last value of each name
    headers: dict[str, str]  # lower-case names
    scenario: str
    at: float  # time.monotonic() when the request was read


class FakeTmdbServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.requests: list[RecordedRequest] = []
        self._scenario = "ok"
        self.params: dict[str, Any] = {}
        self._cond = threading.Condition()
        self._release = threading.Event()  # set to end every "hang" in progress
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> FakeTmdbServer:
        self._server = _Server((self.host, 0), _Handler)
        self._server.fake = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-tmdb-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> FakeTmdbServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- test-facing API --------------------------------------------------------------------------------------

    def set_scenario(self, name: str, **params: Any) -> None:
        if name not in SCENARIOS and not _STATUS_SCENARIO.fullmatch(name):
            raise ValueError(f"unknown scenario {name!r}")
        with self._cond:
            self.params = params
            self._scenario = name

    def reset(self) -> None:
        """Back to "ok" with default params and no recorded requests; any hanging answer ends."""
        self._release.set()
        self._release = threading.Event()
        with self._cond:
            self.requests.clear()
        self.set_scenario("ok")

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API root to configure the client with (TMDB_API_URL)."""
        return f"{self.origin}{API_ROOT}"

    def wait_for_requests(self, count: int, timeout: float = 2.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.requests) >= count, timeout)

    # --- called by the handler threads ------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> tuple[str, dict[str, Any], threading.Event]:
        """Record a request; the scenario it gets (counting down `times`), its params and the current hang release."""
        with self._cond:
            scenario, params = self._scenario, dict(self.params)
            request.scenario = scenario
            self.requests.append(request)
            if params.get("times") is not None:
                self.params["times"] = params["times"] - 1
                if self.params["times"] <= 0:
                    self._scenario, self.params = "ok", {}
            self._cond.notify_all()
            return scenario, params, self._release


class _Server(ThreadingHTTPServer):
    fake: FakeTmdbServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as TMDB's servers do

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        request = RecordedRequest(
            method="GET",
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            scenario="",
            at=time.monotonic(),
        )
        scenario, params, release = self.server.fake._record(request)
        status_match = _STATUS_SCENARIO.fullmatch(scenario)
        if status_match:
            status = int(status_match.group(1))
            retry_after = params.get("retry_after", 2 if status == 429 else None)
            self._send_error(status, {} if retry_after is None else {"Retry-After": str(retry_after)})
        elif scenario == "hang":
            release.wait(params.get("seconds", 10))
            self.close_connection = True
        elif scenario == "not_json":
            self._send(200, b"<html><body>Please log in to this network.</body></html>", "text/html; charset=utf-8")
        else:
            self._answer(request)

    def _answer(self, request: RecordedRequest) -> None:
        authorization = request.headers.get("authorization", "")
        if request.query.get("api_key") != FAKE_API_KEY and authorization != f"Bearer {FAKE_READ_TOKEN}":
            self._send_error(401)
            return
        movie = re.fullmatch(rf"{API_ROOT}/movie/(\d+)", request.path)
        if movie and int(movie.group(1)) in FILMS:
            film = copy.deepcopy(FILMS[int(movie.group(1))])
            credits = film.pop("credits")
            if "credits" in request.query.get("append_to_response", "").split(","):
                film["credits"] = {"id": film["id"], **credits}
            self._send_json(200, film)
        elif request.path == f"{API_ROOT}/search/movie":
            self._send_json(200, _search(request.query))
        else:
            self._send_error(404)

    def _send_error(self, status: int, headers: dict[str, str] | None = None) -> None:
        code, message = STATUS_ERRORS.get(status, (0, f"HTTP {status}"))
        self._send_json(status, {"success": False, "status_code": code, "status_message": message}, headers)

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json;charset=utf-8", headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        with contextlib.suppress(ConnectionError):  # the client may have given up already
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the tests read `requests`; lines on stderr would only be noise


def _search(query: dict[str, str]) -> dict[str, Any]:
    """TMDB's first page of results for `query` (and `year`), in FILMS' order."""
    wanted, year = query.get("query", "").lower(), query.get("year", "")
    results = [
        {
            "adult": False,
            "genre_ids": [genre["id"] for genre in film["genres"]],
            "id": film["id"],
            "original_language": film["original_language"],
            "original_title": film["original_title"],
            "overview": film["overview"],
            "poster_path": film["poster_path"],
            "release_date": film["release_date"],
            "title": film["title"],
        }
        for film in FILMS.values()
        if wanted and wanted in film["title"].lower() and (not year or film["release_date"][:4] == year)
    ]
    return {"page": 1, "results": results, "total_pages": 1, "total_results": len(results)}
