"""A client for TMDB's API v3 (https://developer.themoviedb.org/reference): a film's details and credits, and a title
search, for the management commands that import films and the reports written from them.

Settings, read at each call: TMDB_API_KEY (a v3 API key, or a v4 API Read Access Token, which is a JWT; default: the
TMDB_API_KEY environment variable), TMDB_API_URL and TMDB_TIMEOUT (seconds). Every failure is a `TmdbError` whose
message says what to do and never holds the credential. A v3 key travels in the query string, which httpx logs with
every request at INFO, so it is added by the transport, below the layer that logs (and keeps requests on responses).

TMDB's terms require ATTRIBUTION wherever its data is shown.
"""

from __future__ import annotations

import datetime
import logging
import os
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings

from llm.errors import parse_retry_after, short_detail

logger = logging.getLogger(__name__)

SOURCE_NAME = "TMDB"
ATTRIBUTION = "This product uses the TMDB API but is not endorsed or certified by TMDB."
DEFAULT_API_URL = "https://api.themoviedb.org/3"
DEFAULT_TIMEOUT = 10.0
KEYS_URL = "https://www.themoviedb.org/settings/api"
POSTER_BASE_URL = "https://image.tmdb.org/t/p/w342"
PAGE_BASE_URL = "https://www.themoviedb.org/movie"
MAX_CAST = 15

# On 429: how many times to wait and ask again, and the longest wait taken from Retry-After (a command waiting
# minutes looks hung; TMDB's own limit resets within seconds).
RATE_LIMIT_RETRIES = 3
MAX_RETRY_AFTER = 30.0
DEFAULT_RETRY_AFTER = 1.0
TIMEOUT_RETRIES = 1

Sleep = Callable[[float], None]


class TmdbError(RuntimeError):
    """A TMDB call failed; the message says why and what to do, and never contains the credential."""


class TmdbNotConfigured(TmdbError):
    """No TMDB credential is set."""


class TmdbUnauthorized(TmdbError):
    """TMDB refused the credential (HTTP 401)."""


class TmdbNotFound(TmdbError):
    """TMDB has no such film (HTTP 404)."""


class TmdbRateLimited(TmdbError):
    """TMDB still answered 429 after the retries."""


class TmdbUnavailable(TmdbError):
    """TMDB could not be reached, timed out, failed (5xx), or answered with something other than the JSON expected."""


@dataclass(frozen=True)
class TmdbConfig:
    credential: str = field(repr=False)
    api_url: str = DEFAULT_API_URL
    timeout: float = DEFAULT_TIMEOUT

    @property
    def is_read_access_token(self) -> bool:
        # A v4 token is a JWT, whose base64 header always starts with '{"', which encodes as "eyJ".
        return self.credential.startswith("eyJ")


@dataclass(frozen=True)
class TmdbFilm:
    tmdb_id: int
    imdb_id: str  # "" when TMDB has none
    title: str
    original_title: str
    year: int | None
    released: datetime.date | None
    runtime: int | None  # minutes
    genres: tuple[str, ...]
    overview: str
    tagline: str
    directors: tuple[str, ...]
    writers: tuple[str, ...]
    cast: tuple[str, ...]  # billing order, at most MAX_CAST
    countries: tuple[str, ...]
    languages: tuple[str, ...]
    production: tuple[str, ...]
    box_office: int | None  # US dollars
    poster_url: str
    page_url: str


@dataclass(frozen=True)
class TmdbHit:
    tmdb_id: int
    title: str
    year: int | None
    overview: str


def config() -> TmdbConfig:
    """The configured credential, API root and timeout; TmdbNotConfigured when no credential is set."""
    credential = str(getattr(settings, "TMDB_API_KEY", os.environ.get("TMDB_API_KEY", "")) or "").strip()
    if not credential:
        raise TmdbNotConfigured(
            "No TMDB credential is configured: set TMDB_API_KEY (environment or settings) to a v3 API key or a v4 "
            f"API Read Access Token from {KEYS_URL}"
        )
    api_url = str(getattr(settings, "TMDB_API_URL", "") or DEFAULT_API_URL).rstrip("/")
    return TmdbConfig(credential, api_url, float(getattr(settings, "TMDB_TIMEOUT", DEFAULT_TIMEOUT)))


def fetch_film(tmdb_id: int, *, sleep: Sleep = time.sleep) -> TmdbFilm:
    """A film's details and credits."""
    data = _get(
        f"/movie/{tmdb_id}",
        {"append_to_response": "credits", "language": "en-US"},
        not_found=f"TMDB has no film with id {tmdb_id}",
        sleep=sleep,
    )
    try:
        return _film(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TmdbUnavailable(f"TMDB's answer for film {tmdb_id} is not the JSON expected ({exc!r})") from exc


def search_films(query: str, year: int | None = None, *, sleep: Sleep = time.sleep) -> list[TmdbHit]:
    """The first page of TMDB's matches for a title (most popular first), optionally only films released in `year`."""
    params: dict[str, str | int] = {"query": query.strip(), "include_adult": "false", "language": "en-US", "page": 1}
    if year is not None:
        params["year"] = year
    data = _get(
        "/search/movie",
        params,
        not_found=f"TMDB has no search at {config().api_url}/search/movie: check TMDB_API_URL",
        sleep=sleep,
    )
    try:
        return [_hit(entry) for entry in data["results"]]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TmdbUnavailable(f"TMDB's search answer is not the JSON expected ({exc!r})") from exc


def overview_text(film: TmdbFilm) -> str:
    """The text a film's report is built from: TMDB's overview, then the tagline (if any) as a sentence of its own.
    Nothing is added but the full stops that make them sentences."""
    parts = [_sentence(film.overview)]
    if film.tagline.strip() and film.tagline.strip() not in film.overview:
        parts.append(_sentence(film.tagline))
    return " ".join(part for part in parts if part)


# --- HTTP ---------------------------------------------------------------------------------------------------------


class _CredentialTransport(httpx.BaseTransport):
    """Adds the credential to each request as it leaves. httpx logs the request it handed to its transport, and keeps
    that one on the response and on errors, so neither kind of credential appears there."""

    def __init__(self, config: TmdbConfig) -> None:
        self._config = config
        # A client given its own transport ignores HTTP(S)_PROXY and NO_PROXY: honour them here instead.
        self._inner = httpx.HTTPTransport(proxy=_environment_proxy(httpx.URL(config.api_url)))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url, headers = request.url, httpx.Headers(request.headers)
        if self._config.is_read_access_token:
            headers["Authorization"] = f"Bearer {self._config.credential}"
        else:
            url = url.copy_merge_params({"api_key": self._config.credential})
        signed = httpx.Request(
            request.method, url, headers=headers, stream=request.stream, extensions=request.extensions
        )
        return self._inner.handle_request(signed)

    def close(self) -> None:
        self._inner.close()


def _environment_proxy(url: httpx.URL) -> str | None:
    if urllib.request.proxy_bypass(url.host):
        return None
    return urllib.request.getproxies().get(url.scheme)


def _get(path: str, params: dict[str, str | int], *, not_found: str, sleep: Sleep) -> dict[str, Any]:
    config_ = config()
    with httpx.Client(
        base_url=config_.api_url,
        timeout=config_.timeout,
        transport=_CredentialTransport(config_),
        headers={"Accept": "application/json"},
    ) as client:
        response = _send(client, path, params, config_, sleep)
    return _json(response, config_, not_found)


def _send(
    client: httpx.Client, path: str, params: dict[str, str | int], config_: TmdbConfig, sleep: Sleep
) -> httpx.Response:
    """The first answer that is not a 429, waiting as TMDB asks between them; a timeout is tried once more."""
    rate_limited = timed_out = 0
    while True:
        try:
            response = client.get(path, params=params)
        except httpx.TimeoutException as exc:
            if timed_out < TIMEOUT_RETRIES:
                timed_out += 1
                continue
            raise TmdbUnavailable(
                f"TMDB did not answer within {config_.timeout:g} s ({timed_out + 1} tries): try again later, "
                "or raise TMDB_TIMEOUT"
            ) from exc
        except httpx.HTTPError as exc:
            detail = short_detail(str(exc) or type(exc).__name__, config_.credential)
            raise TmdbUnavailable(
                f"Could not reach TMDB at {config_.api_url} ({detail}): check the network and TMDB_API_URL"
            ) from exc
        if response.status_code != 429:
            return response
        if rate_limited == RATE_LIMIT_RETRIES:
            raise TmdbRateLimited(
                f"TMDB is still rate limiting after {RATE_LIMIT_RETRIES} waits (HTTP 429): try again in a minute, "
                "and look for another process using the same TMDB_API_KEY"
            )
        rate_limited += 1
        asked = parse_retry_after(response.headers.get("retry-after"))
        wait = min(DEFAULT_RETRY_AFTER if asked is None else asked, MAX_RETRY_AFTER)
        logger.warning("TMDB is rate limiting (HTTP 429): waiting %g s before asking again", wait)
        sleep(wait)


def _json(response: httpx.Response, config_: TmdbConfig, not_found: str) -> dict[str, Any]:
    status = response.status_code
    detail = _error_detail(response, config_)
    if status == 401:
        raise TmdbUnauthorized(
            f"TMDB refused the configured TMDB_API_KEY (HTTP 401{detail}): set it to a valid v3 API key or v4 API "
            f"Read Access Token from {KEYS_URL}"
        )
    if status == 404:
        raise TmdbNotFound(not_found)
    if status >= 500:
        raise TmdbUnavailable(f"TMDB is failing (HTTP {status}{detail}): try again later")
    if status != 200:
        raise TmdbError(f"TMDB refused the request (HTTP {status}{detail})")
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        kind = response.headers.get("content-type", "no content type")
        raise TmdbUnavailable(
            f"TMDB answered with something other than the JSON expected ({kind}): check TMDB_API_URL "
            f"({config_.api_url}), or try again later"
        )
    return data


def _error_detail(response: httpx.Response, config_: TmdbConfig) -> str:
    """TMDB's own explanation of an error (`status_message`), as ": <text>", or ""."""
    if response.status_code == 200:
        return ""
    try:
        message = response.json().get("status_message")
    except (ValueError, AttributeError):
        return ""
    return f": {short_detail(message, config_.credential)}" if isinstance(message, str) and message.strip() else ""


# --- mapping TMDB's JSON ------------------------------------------------------------------------------------------


def _film(data: dict[str, Any]) -> TmdbFilm:
    tmdb_id = int(data["id"])
    credits = data.get("credits") or {}
    crew = credits.get("crew") or []
    cast = sorted(credits.get("cast") or [], key=lambda member: member.get("order", float("inf")))
    released = _date(data.get("release_date"))
    poster_path = _text(data.get("poster_path"))
    return TmdbFilm(
        tmdb_id=tmdb_id,
        imdb_id=_text(data.get("imdb_id")),
        title=_text(data["title"]),
        original_title=_text(data.get("original_title")),
        year=released.year if released else None,
        released=released,
        runtime=int(data.get("runtime") or 0) or None,  # TMDB sends 0 for unknown
        genres=_unique(genre.get("name") for genre in data.get("genres") or []),
        overview=_text(data.get("overview")),
        tagline=_text(data.get("tagline")),
        directors=_unique(member.get("name") for member in crew if member.get("job") == "Director"),
        writers=_unique(member.get("name") for member in crew if member.get("department") == "Writing"),
        cast=_unique(member.get("name") for member in cast)[:MAX_CAST],
        countries=_unique(country.get("name") for country in data.get("production_countries") or []),
        languages=_unique(
            language.get("english_name") or language.get("name") for language in data.get("spoken_languages") or []
        ),
        production=_unique(company.get("name") for company in data.get("production_companies") or []),
        box_office=int(data.get("revenue") or 0) or None,  # TMDB sends 0 for unknown
        poster_url=f"{POSTER_BASE_URL}{poster_path}" if poster_path else "",
        page_url=f"{PAGE_BASE_URL}/{tmdb_id}",
    )


def _hit(entry: dict[str, Any]) -> TmdbHit:
    released = _date(entry.get("release_date"))
    return TmdbHit(
        tmdb_id=int(entry["id"]),
        title=_text(entry["title"]),
        year=released.year if released else None,
        overview=_text(entry.get("overview")),
    )


def _date(value: Any) -> datetime.date | None:
    """TMDB's "YYYY-MM-DD"; it sends "" (sometimes null) when the date is unknown."""
    try:
        return datetime.date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _text(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def _unique(names: Iterable[Any]) -> tuple[str, ...]:
    """Non-empty names, stripped, each once, in order."""
    return tuple(dict.fromkeys(name for name in map(_text, names) if name))


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?…\"'”’)" else f"{text}."
