"""The catalogue imported in the background: a plan of parts on the task queue, each part one transaction.

`plan` decides what a run imports (the bundled Wikipedia films, then with `catalogue` the Wikidata films that no
other film is), deletes what the sources no longer hold, and queues one task per part (`reports.tasks`). `run_part`
imports a part's films, matches them to their facts and embeds their sections in one transaction, so a film
appears whole or not at all: the first films are searchable seconds after the worker starts, and a part cut short
(a worker killed) left nothing behind and runs again. A part run twice changes nothing the second time, and parts
run one at a time whatever the number of workers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from reports import facts, ingest, tmdb, wikidata
from reports.models import FilmFacts, ImportPart, ImportRun, Movie

logger = logging.getLogger(__name__)

# Changes when what a part writes changes, so that a finished run no longer counts as up to date.
PLAN_VERSION = 1
# Parts and plans take this transaction-level advisory lock: one at a time, whatever the number of workers.
IMPORT_LOCK = 0x666C6B01

WIKIPEDIA, CATALOGUE, TMDB = Movie.Source.WIKIPEDIA, Movie.Source.WIKIDATA, Movie.Source.TMDB


# The sources, read once per process (a worker runs hundreds of parts).


@functools.cache
def wikipedia_records() -> dict[str, ingest.FilmRecord]:
    records, _ = ingest.wikipedia_records()
    return {record.source_key: record for record in records}


@functools.cache
def wikidata_films() -> tuple[wikidata.WikidataFilm, ...] | None:
    try:
        return tuple(wikidata.load())
    except wikidata.FactsUnavailable as error:
        logger.warning("No film facts: %s", error)
        return None


@functools.cache
def _entries_by_id() -> dict[str, wikidata.WikidataFilm]:
    return {entry.imdb_id: entry for entry in wikidata_films() or ()}


@functools.cache
def _catalogue_records() -> dict[str, ingest.FilmRecord]:
    films = wikidata_films() or ()
    return {record.source_key: record for record in facts.catalogue_records(films, others=[])}


def records(source: str, keys: Sequence[str]) -> list[ingest.FilmRecord]:
    known = wikipedia_records() if source == WIKIPEDIA else _catalogue_records()
    return [known[key] for key in keys if key in known]


# Planning.


def plan(
    *, catalogue: int | None = None, limit: int | None = None, force: bool = False, part_films: int = 40
) -> ImportRun | None:
    """Plan a run and queue its parts. `catalogue`: also the Wikidata films no other film is (0: all of them, N:
    the first N); `limit`: only the first N Wikipedia films. Returns None when the last run planned the same films
    from the same data (unless `force`); an unfinished run is resumed instead (its parts with no task queue again)."""
    from reports import tasks

    with transaction.atomic():
        _lock()
        unfinished = ImportRun.objects.filter(finished_at=None).first()
        if unfinished is not None:
            resume(unfinished)
            return unfinished
        wikipedia = list(wikipedia_records().values())[:limit]
        entries = _catalogue(wikipedia, catalogue)
        fingerprint = _fingerprint(wikipedia, entries)
        last = ImportRun.objects.first()
        if last is not None and last.fingerprint == fingerprint and not force:
            return None
        # The whole of a source is the truth about it: its films that are not in it any more go.
        if limit is None:
            Movie.objects.filter(source=WIKIPEDIA).exclude(source_key__in=[r.source_key for r in wikipedia]).delete()
        if catalogue == 0:
            Movie.objects.filter(source=CATALOGUE).exclude(source_key__in=[r.source_key for r in entries]).delete()
        planned = [*wikipedia, *entries]
        present = sum(
            Movie.objects.filter(
                source=source, source_key__in=[r.source_key for r in planned if r.source == source]
            ).count()
            for source in (WIKIPEDIA, CATALOGUE)
        )
        run = ImportRun.objects.create(
            fingerprint=fingerprint,
            description=_describe(len(wikipedia), len(entries)),
            # The films planned, and those already here that it leaves as they are.
            films_total=Movie.objects.count() - present + len(planned),
        )
        parts = [
            ImportPart(run=run, number=number, source=source, keys=keys)
            for number, (source, keys) in enumerate(
                [(WIKIPEDIA, keys) for keys in _chunks([r.source_key for r in wikipedia], part_films)]
                + [(CATALOGUE, keys) for keys in _chunks([r.source_key for r in entries], part_films)],
                start=1,
            )
        ]
        ImportPart.objects.bulk_create(parts)
        for part in parts:
            tasks.import_part.enqueue(part.pk)
        if not parts:
            run.finished_at = timezone.now()
            run.save(update_fields=["finished_at"])
    logger.info("Import planned: %s, in %d parts.", run.description, len(parts))
    return run


def resume(run: ImportRun) -> int:
    """Queue again the parts of `run` that are not done and have no task waiting or running (their task failed,
    or the queue lost it); returns how many."""
    from reports import tasks

    live = tasks.parts_queued()
    lost = run.parts.filter(done_at=None).exclude(pk__in=live).values_list("pk", flat=True)
    for part_id in lost:
        tasks.import_part.enqueue(part_id)
    return len(lost)


def _catalogue(wikipedia: list[ingest.FilmRecord], catalogue: int | None) -> list[ingest.FilmRecord]:
    films = wikidata_films()
    if catalogue is None or films is None:
        return []
    # The films the catalogue must not repeat: the Wikipedia films about to be imported, and the films here (a film
    # in both only claims its entry twice).
    others = [facts.record_to_match(-number, record) for number, record in enumerate(wikipedia, start=1)]
    others += facts.films_to_match(exclude_sources=[CATALOGUE])
    entries = facts.catalogue_records(films, others=others)
    return entries[:catalogue] if catalogue else entries


def _fingerprint(wikipedia: list[ingest.FilmRecord], entries: list[ingest.FilmRecord]) -> str:
    digest = hashlib.sha256(json.dumps([PLAN_VERSION, wikidata.REQUIREMENT, wikidata_films() is not None]).encode())
    for record in [*wikipedia, *entries]:
        digest.update(f"{record.source}\0{record.source_key}\0{record.title}\0{record.text}\n".encode())
    return digest.hexdigest()


def _describe(wikipedia: int, catalogue: int) -> str:
    described = f"{wikipedia:,} Wikipedia films"
    return f"{described} and {catalogue:,} from the Wikidata catalogue" if catalogue else described


def _chunks(keys: list[str], size: int) -> list[list[str]]:
    return [keys[start : start + size] for start in range(0, len(keys), size)]


def _lock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [IMPORT_LOCK])


# Running a part.


@dataclass(frozen=True)
class PartResult:
    part: int
    films: int
    created: int
    embedded: int
    already_done: bool = False

    def __str__(self) -> str:
        if self.already_done:
            return f"part {self.part}: done already"
        return f"part {self.part}: {self.films} films ({self.created} new), {self.embedded} sections embedded"


def run_part(part_id: int) -> PartResult | None:
    """Import, match and embed one part's films in one transaction; None when its run is gone."""
    with transaction.atomic():
        _lock()
        part = ImportPart.objects.select_related("run").filter(pk=part_id).first()
        if part is None:
            return None
        if part.done_at is not None:
            return PartResult(part.number, len(part.keys), 0, 0, already_done=True)
        report = ingest.import_records(records(part.source, part.keys))
        movie_ids = list(
            Movie.objects.filter(source=part.source, source_key__in=part.keys).values_list("id", flat=True)
        )
        entries = wikidata_films()
        if entries is not None and part.source == CATALOGUE:
            # Each its own entry, which the plan left to it: no need to match every film of the catalogue again.
            own = _entries_by_id()
            facts.import_facts(
                [own[key] for key in part.keys if key in own],
                movie_ids=movie_ids,
                films=facts.films_to_match(movie_ids=movie_ids),
            )
        elif entries is not None:
            facts.import_facts(entries, movie_ids=movie_ids)
        embedded = ingest.embed_sections(movie_ids=movie_ids)
        part.done_at = timezone.now()
        part.save(update_fields=["done_at"])
        run = part.run
        finished = not run.parts.filter(done_at=None).exists()
        if finished:
            run.finished_at = part.done_at
            run.save(update_fields=["finished_at"])
        # The planner's statistics after the run's first part and its last (0.2 to 1.9 s each, too long for each of
        # the catalogue's 443 parts); between them autovacuum's ANALYZE follows the tables as they grow.
        analyze = finished or not run.parts.exclude(pk=part.pk).filter(done_at__isnull=False).exists()
    if analyze:
        ingest.analyze_imported()
    result = PartResult(part.number, len(movie_ids), report.created, embedded)
    logger.info("Import %s. %s", result, status().line())
    return result


# Progress.


@dataclass(frozen=True)
class ImportStatus:
    run: ImportRun | None
    films_ready: int
    films_total: int
    parts_done: int = 0
    parts_total: int = 0
    parts_failed: int = 0
    seconds_left: float | None = None

    @property
    def importing(self) -> bool:
        return self.run is not None and self.run.finished_at is None

    def line(self, width: int = 24) -> str:
        """One line for a log or a terminal: a bar, the films ready and, while importing, the time left."""
        fraction = self.films_ready / self.films_total if self.films_total else 1.0
        filled = round(min(fraction, 1.0) * width)
        text = f"[{'#' * filled}{'.' * (width - filled)}] {self.films_ready:,} of {self.films_total:,} films ready"
        if self.importing:
            text += f", part {self.parts_done:,} of {self.parts_total:,}"
            if self.seconds_left is not None:
                text += f", about {_duration(self.seconds_left)} left"
        if self.parts_failed:
            text += f"; {self.parts_failed} part(s) failed (python manage.py import_movies --background retries)"
        return text


# Films ready: every section of them has its vector (the partial index `section_not_embedded` holds the others).
FILMS_READY_SQL = """
(SELECT count(*) FROM reports_movie)
- (SELECT count(DISTINCT movie_id) FROM reports_moviesection WHERE embedding IS NULL)"""


def status() -> ImportStatus:
    """The latest run's progress, and how many films are ready of how many."""
    from reports import tasks

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {FILMS_READY_SQL}")
        (ready,) = cursor.fetchone()
    run = ImportRun.objects.first()
    if run is None:
        return ImportStatus(None, ready, ready)
    done = sorted(run.parts.exclude(done_at=None).values_list("done_at", flat=True))
    total = run.parts.count()
    seconds_left = None
    if run.finished_at is None and len(done) >= 2:
        recent = done[-10:]
        per_part = (recent[-1] - recent[0]).total_seconds() / (len(recent) - 1)
        seconds_left = per_part * (total - len(done))
    if run.finished_at is not None:
        return ImportStatus(run, ready, Movie.objects.count(), len(done), total)
    return ImportStatus(run, ready, run.films_total, len(done), total, tasks.failed_parts(run), seconds_left)


CATALOGUE_STATE_SQL = f"""
SELECT corpus.generation,
       run.films_total,
       CASE WHEN run.films_total IS NOT NULL AND %(count)s THEN {FILMS_READY_SQL} END
  FROM reports_corpus corpus
  LEFT JOIN LATERAL (SELECT films_total FROM reports_importrun WHERE finished_at IS NULL
                      ORDER BY started_at DESC LIMIT 1) run ON true
"""  # noqa: S608 (constant SQL)


@dataclass(frozen=True)
class CatalogueState:
    generation: int  # of the films and sections (`reports.models.Corpus`): what the catalogue may cache by
    importing: tuple[int, int] | None  # (films ready, films in all) while a background import runs


# While an import runs, each process counts the films ready at most this often (the count reads every film's
# row, tens of milliseconds at 17,000 films while a part is being written); the page shows the last count meanwhile.
READY_COUNT_SECONDS = 5.0
_last_count: tuple[float, int] = (-READY_COUNT_SECONDS, 0)  # (time.monotonic() of the count, films ready)


def catalogue_state(now: float | None = None) -> CatalogueState:
    """For the catalogue page, in one query: the corpus's generation and, while an import runs, its progress (a
    film is ready when every section of it has its vector)."""
    global _last_count
    now = time.monotonic() if now is None else now
    count = now - _last_count[0] >= READY_COUNT_SECONDS
    with connection.cursor() as cursor:
        cursor.execute(CATALOGUE_STATE_SQL, {"count": count})
        row = cursor.fetchone()
    if row is None:
        return CatalogueState(0, None)
    generation, total, ready = row
    if total is None:
        return CatalogueState(generation, None)
    if ready is None:
        ready = _last_count[1]
    else:
        _last_count = (now, ready)
    return CatalogueState(generation, (ready, total))


def forget_ready_count() -> None:
    global _last_count
    _last_count = (-READY_COUNT_SECONDS, 0)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


# A film from TMDB.


class AlreadyInCatalogue(ValueError):
    """The film asked for from TMDB is one the catalogue has, or will have, from Wikidata."""


@dataclass(frozen=True)
class TmdbImport:
    movie: Movie
    outcome: str  # imported, updated or unchanged
    embedded: int

    def __str__(self) -> str:
        film = f"{self.movie.title} ({self.movie.year or 'year unknown'})"
        return f"{film} {self.outcome} from TMDB, {self.embedded} sections embedded: {self.movie.get_absolute_url()}"


def import_tmdb_film(tmdb_id: int) -> TmdbImport:
    """Fetch a film's details and credits from TMDB (`reports.tmdb`), and import it as any film: its overview, its
    facts and their sections, embedded, in one transaction. Again, it changes only what changed on TMDB."""
    film = tmdb.fetch_film(tmdb_id)
    check_not_in_catalogue(film)
    as_facts = _tmdb_facts(film)
    record = ingest.FilmRecord(
        source=TMDB,
        source_key=str(film.tmdb_id),
        title=film.title,
        text=tmdb.overview_text(film) or (facts.overview(as_facts) if as_facts else film.title),
        year=film.year,
        director=facts.directors_line(film.directors),
        genres=film.genres,
        source_url=film.page_url,
        poster_url=film.poster_url,
        tmdb_id=film.tmdb_id,
    )
    with transaction.atomic():
        _lock()
        report = ingest.import_records([record])
        movie = Movie.objects.get(source=TMDB, source_key=record.source_key)
        if as_facts is not None:
            facts.store_facts(movie, as_facts, how="TMDB", source=facts.TMDB_FACTS)
        embedded = ingest.embed_sections(movie_ids=[movie.pk])
    outcome = "imported" if report.created else "updated" if report.updated or embedded else "unchanged"
    result = TmdbImport(movie, outcome, embedded)
    logger.info("%s", result)
    return result


def check_not_in_catalogue(film: tmdb.TmdbFilm) -> None:
    """AlreadyInCatalogue when another film has this one's IMDb id, or the Wikidata catalogue does."""
    if not film.imdb_id:
        return
    held = FilmFacts.objects.filter(imdb_id=film.imdb_id).exclude(movie__source=TMDB)
    if held.exists() or film.imdb_id in _entries_by_id():
        raise AlreadyInCatalogue(
            f"{film.title} ({film.year}) is in the Wikidata catalogue (IMDb {film.imdb_id}): "
            "python manage.py import_movies --catalogue imports it with the others."
        )


def _tmdb_facts(film: tmdb.TmdbFilm) -> wikidata.WikidataFilm | None:
    """A TMDB film's facts in the shape the fact sections are written from; None without a year."""
    if film.year is None:
        return None
    return wikidata.WikidataFilm(
        imdb_id=film.imdb_id or f"tmdb:{film.tmdb_id}",
        title=film.title,
        year=film.year,
        runtime=film.runtime,
        genres=film.genres,
        released=film.released,
        released_precision="day" if film.released else "",
        directors=film.directors,
        writers=film.writers,
        cast=film.cast,
        languages=film.languages,
        countries=film.countries,
        box_office=film.box_office,
        production=film.production,
    )
