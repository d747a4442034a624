"""Import films and their source text, split the text into sections, and embed the sections in batches.

Import is idempotent: a film is matched by its source and key, unchanged text changes nothing, changed text is
re-split and only sections whose text changed lose their embedding. Everything to import is validated before the
first write, and the writes run in one transaction, so a bad file never leaves a half-import behind.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils.text import slugify

from reports import shipped_vectors, wikipedia
from reports.embeddings import MAX_TOKENS, embed_texts, get_embedder
from reports.models import Movie, MovieSection, text_hash
from reports.splitting import split_into_chunks

logger = logging.getLogger(__name__)

Progress = Callable[[Sequence[Any], str], Any]


class ImportFileError(ValueError):
    """The file cannot be imported; the message names the entry and the problem."""


@dataclass(frozen=True)
class FilmRecord:
    source: str
    source_key: str
    title: str
    text: str
    year: int | None = None
    director: str = ""
    genres: tuple[str, ...] = ()
    source_url: str = ""
    poster_url: str = ""
    tmdb_id: int | None = None


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    sections_created: int = 0
    sections_updated: int = 0
    sections_deleted: int = 0
    skipped: list[wikipedia.Rejection] = field(default_factory=list)


def _no_progress(items: Sequence[Any], description: str) -> Any:
    return items


# Reading the sources.


def wikipedia_records(path: Path | None = None) -> tuple[list[FilmRecord], list[wikipedia.Rejection]]:
    films, rejections = wikipedia.load_films(path)
    records = [
        FilmRecord(
            source=Movie.Source.WIKIPEDIA,
            source_key=film.key,
            title=film.title,
            text=film.text,
            year=film.year,
            director=film.director or "",
            source_url="https://en.wikipedia.org/wiki/" + quote(film.key.replace(" ", "_")),
        )
        for film in films
    ]
    return records, rejections


FILE_FORMAT = """A JSON list of objects (or {"films": [...]}), one per film:
  title      string, required
  text       string, required: what the film's report is built from
  year       integer, optional (taken from the text when it states it)
  director   string, optional (taken from the text when it states it)
  genres     list of strings, optional
  key        string, optional: a stable identifier for re-imports (default: the title and year)
  source_url, poster_url  strings, optional
  tmdb_id    integer, optional"""


def file_records(path: Path) -> list[FilmRecord]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file") from None
    except UnicodeDecodeError as error:
        raise ImportFileError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise ImportFileError(f"{path}: not valid JSON: {error.msg} at {where}") from None
    if isinstance(data, dict) and isinstance(data.get("films"), list):
        data = data["films"]
    if not isinstance(data, list):
        raise ImportFileError(f'{path}: expected a list of films or {{"films": [...]}}')
    records = [_file_record(index, entry) for index, entry in enumerate(data, start=1)]
    seen: dict[str, int] = {}
    for index, record in enumerate(records, start=1):
        if record.source_key in seen:
            raise ImportFileError(
                f"entry {index} ({record.title!r}): same key as entry {seen[record.source_key]} ({record.source_key!r})"
            )
        seen[record.source_key] = index
    return records


def _file_record(index: int, entry: Any) -> FilmRecord:
    label = f"entry {index}"
    if not isinstance(entry, dict):
        raise ImportFileError(f"{label}: expected an object, got {type(entry).__name__}")
    title = entry.get("title")
    if isinstance(title, str) and title.strip():
        label = f"entry {index} ({title.strip()!r})"
    else:
        raise ImportFileError(f"{label}: 'title' must be a non-empty string")
    title = " ".join(title.split())
    if len(title) > 300:
        raise ImportFileError(f"{label}: 'title' is longer than 300 characters")
    text = entry.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ImportFileError(f"{label}: 'text' must be a non-empty string")
    unknown = set(entry) - {"title", "text", "year", "director", "genres", "key", "source_url", "poster_url", "tmdb_id"}
    if unknown:
        raise ImportFileError(f"{label}: unknown field(s) {', '.join(sorted(unknown))}")
    year = entry.get("year")
    if year is not None and (not isinstance(year, int) or isinstance(year, bool) or not 1870 <= year <= 2100):
        raise ImportFileError(f"{label}: 'year' must be a whole number between 1870 and 2100")
    director = entry.get("director")
    if director is not None and not isinstance(director, str):
        raise ImportFileError(f"{label}: 'director' must be a string")
    genres = entry.get("genres", [])
    if not isinstance(genres, list) or not all(isinstance(genre, str) for genre in genres):
        raise ImportFileError(f"{label}: 'genres' must be a list of strings")
    for name in ("key", "source_url", "poster_url"):
        if entry.get(name) is not None and not isinstance(entry[name], str):
            raise ImportFileError(f"{label}: '{name}' must be a string")
    tmdb_id = entry.get("tmdb_id")
    if tmdb_id is not None and (not isinstance(tmdb_id, int) or isinstance(tmdb_id, bool) or tmdb_id <= 0):
        raise ImportFileError(f"{label}: 'tmdb_id' must be a positive whole number")
    if year is None:
        year = wikipedia.extract_year(text)
    return FilmRecord(
        source=Movie.Source.FILE,
        source_key=entry.get("key") or (f"{title} ({year})" if year else title),
        title=title,
        text=text.strip(),
        year=year,
        director=(director or wikipedia.extract_director(text) or "").strip(),
        genres=tuple(genres),
        source_url=entry.get("source_url") or "",
        poster_url=entry.get("poster_url") or "",
        tmdb_id=tmdb_id,
    )


# Sections.


@dataclass(frozen=True)
class SectionDraft:
    kind: str
    heading: str
    content: str


def draft_sections(title: str, text: str, *, count_tokens: Callable[[str], int]) -> list[SectionDraft]:
    """The overview sections of a film's source text, each short enough for the embedder to read whole."""
    # Budget for the content: the model's window less what the title and the longest heading take.
    prefix_tokens = count_tokens(f"{title}. Overview, part 99.") - 2
    budget = MAX_TOKENS - prefix_tokens - 2
    chunks = split_into_chunks(text, budget=budget, count_tokens=count_tokens)
    return [
        SectionDraft(
            kind=MovieSection.Kind.OVERVIEW,
            heading="Overview" if number == 1 else f"Overview, part {number}",
            content=chunk,
        )
        for number, chunk in enumerate(chunks, start=1)
    ]


def section_hash(title: str, heading: str, content: str) -> str:
    """The hash of what the embedder reads for a section (`MovieSection.embedding_text`)."""
    return text_hash(f"{title}. {heading}. {content}")


# The order of a report's sections.
KIND_ORDER = {kind: index for index, kind in enumerate(MovieSection.Kind.values)}


def _sync_sections(movie: Movie, drafts: list[SectionDraft], report: ImportReport, *, source_changed: bool) -> None:
    """Make the film's overview sections match `drafts`. Generated sections were written from the source text: when
    it changed they are deleted. The others (facts, and generated ones of an unchanged text) are kept and placed
    after the overview again."""
    sections = MovieSection.objects.filter(movie=movie)
    if source_changed:
        report.sections_deleted += sections.filter(origin=MovieSection.Origin.GENERATED).delete()[0]
    # Out of the way of the re-split overview (past every position in use), placed back below.
    sections.exclude(origin=MovieSection.Origin.SOURCE).update(position=F("position") + 10_000)
    existing = {section.position: section for section in sections.filter(origin=MovieSection.Origin.SOURCE)}
    to_create: list[MovieSection] = []
    to_update: list[MovieSection] = []
    for position, draft in enumerate(drafts):
        section = existing.pop(position, None) or MovieSection(movie=movie, position=position)
        section.movie = movie
        content_hash = section_hash(movie.title, draft.heading, draft.content)
        if section.pk and section.content_hash == content_hash and section.kind == draft.kind:
            continue
        section.kind, section.heading, section.content, section.content_hash = (
            draft.kind,
            draft.heading,
            draft.content,
            content_hash,
        )
        (to_update if section.pk else to_create).append(section)
    if existing:
        MovieSection.objects.filter(pk__in=[section.pk for section in existing.values()]).delete()
    MovieSection.objects.bulk_create(to_create)
    MovieSection.objects.bulk_update(to_update, ["kind", "heading", "content", "content_hash"])
    report.sections_created += len(to_create)
    report.sections_updated += len(to_update)
    report.sections_deleted += len(existing)
    place_generated_sections(movie)


def place_generated_sections(movie: Movie) -> None:
    """Number the film's other sections (facts, generated) right after its overview, in report order (of a kind,
    the facts first), and refresh their content hash (it includes the film's title, so a renamed film's sections
    get re-embedded).

    Called after re-splitting the overview, after generation and after writing the facts.
    """
    sections = list(MovieSection.objects.filter(movie=movie).order_by("position"))
    if not sections:
        return
    source = MovieSection.Origin.SOURCE
    first = max((s.position for s in sections if s.origin == source), default=-1) + 1
    generated = sorted(
        (s for s in sections if s.origin != source),
        key=lambda s: (KIND_ORDER[s.kind], s.origin != MovieSection.Origin.FACTS, s.position),
    )
    targets = list(range(first, first + len(generated)))
    hashes = [section_hash(movie.title, s.heading, s.content) for s in generated]
    if [s.position for s in generated] == targets and [s.content_hash for s in generated] == hashes:
        return
    # (movie, position) is unique and Postgres checks it row by row, so sections that trade places stop on free
    # positions first, past every section of the film.
    parked = max(s.position for s in sections) + 1
    for offset, section in enumerate(generated):
        section.position = parked + offset
    MovieSection.objects.bulk_update(generated, ["position"])
    for section, position, content_hash in zip(generated, targets, hashes, strict=True):
        section.position, section.content_hash = position, content_hash
    MovieSection.objects.bulk_update(generated, ["position", "content_hash"])


# Import.


def import_records(
    records: Sequence[FilmRecord],
    *,
    prune_source: str | None = None,
    progress: Progress = _no_progress,
    count_tokens: Callable[[str], int] | None = None,
) -> ImportReport:
    """Create or update the films in `records` (one transaction). With `prune_source`, films of that source that
    are no longer in `records` are deleted: they were dropped from the source, or found not to be about a film."""
    count_tokens = count_tokens or get_embedder().count_tokens
    report = ImportReport()
    keys = {record.source_key for record in records}
    with transaction.atomic():
        # Only the films these records are, and those the prune may remove: a part of a large catalogue loads its
        # own films, not every film's text.
        wanted = Q(source__in={record.source for record in records}, source_key__in=keys)
        existing = Movie.objects.filter(wanted | Q(source=prune_source) if prune_source else wanted)
        movies = {(movie.source, movie.source_key): movie for movie in existing}
        taken_slugs = set(Movie.objects.values_list("slug", flat=True))
        if prune_source:
            stale = [m for (source, key), m in movies.items() if source == prune_source and key not in keys]
            for movie in stale:
                taken_slugs.discard(movie.slug)
            Movie.objects.filter(pk__in=[movie.pk for movie in stale]).delete()
            report.removed = len(stale)
        created: list[tuple[Movie, list[SectionDraft]]] = []
        for record in progress(records, "Films"):
            movie = movies.get((record.source, record.source_key))
            fields = _movie_fields(record)
            if movie is None:
                movie = Movie(slug=_unique_slug(record, taken_slugs), **fields)
                created.append((movie, draft_sections(movie.title, movie.source_text, count_tokens=count_tokens)))
                continue
            if all(getattr(movie, name) == value for name, value in fields.items()):
                report.unchanged += 1
                continue
            source_changed = movie.source_hash != fields["source_hash"]
            for name, value in fields.items():
                setattr(movie, name, value)
            movie.save()
            report.updated += 1
            drafts = draft_sections(movie.title, movie.source_text, count_tokens=count_tokens)
            _sync_sections(movie, drafts, report, source_changed=source_changed)
        _create_films(created, report)
    return report


# The tables an import fills. Retrieval's statements are planned once per connection, generically, from their
# statistics (reports.search.run_prepared). Planned before any ANALYZE, on the 761 films, a film's sections' BM25 read
# every posting (66,336 rows, 6.4 ms) rather than the question's few through the index (0.26 ms for the statement).
IMPORTED_TABLES = ("reports_movie", "reports_moviesection", "reports_posting", "reports_lexeme", "reports_corpus")


def analyze_imported() -> None:
    """Refresh the planner's statistics of the imported tables (a new database has none, and a copy of one never
    gets them from autovacuum, whose counts of changed rows start again at zero). The statements prepared since
    are planned again."""
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {', '.join(IMPORTED_TABLES)}")


def _create_films(films: list[tuple[Movie, list[SectionDraft]]], report: ImportReport) -> None:
    """Insert new films and their sections in bulk: a new film has no sections to reconcile, and a query or five
    per film cost more than splitting its text (a first import creates every film)."""
    Movie.objects.bulk_create([movie for movie, _ in films], batch_size=500)
    sections = [
        MovieSection(
            movie=movie,
            position=position,
            kind=draft.kind,
            heading=draft.heading,
            content=draft.content,
            content_hash=section_hash(movie.title, draft.heading, draft.content),
        )
        for movie, drafts in films
        for position, draft in enumerate(drafts)
    ]
    MovieSection.objects.bulk_create(sections, batch_size=500)
    report.created += len(films)
    report.sections_created += len(sections)


def _movie_fields(record: FilmRecord) -> dict[str, Any]:
    return {
        "title": record.title,
        "year": record.year,
        "director": record.director,
        "genres": list(record.genres),
        "source": record.source,
        "source_key": record.source_key,
        "source_text": record.text,
        "source_hash": text_hash(record.text),
        "source_url": record.source_url,
        "poster_url": record.poster_url,
        "tmdb_id": record.tmdb_id,
    }


def _unique_slug(record: FilmRecord, taken: set[str]) -> str:
    base = slugify(record.title)[:180] or "film"
    candidates = [base, f"{base}-{record.year}"] if record.year else [base]
    candidates += [f"{candidates[-1]}-{number}" for number in range(2, 1000)]
    slug = next(candidate for candidate in candidates if candidate not in taken)
    taken.add(slug)
    return slug


# Embedding.


def embed_sections(
    *,
    batch_size: int | None = None,
    everything: bool = False,
    movie_ids: Collection[int] | None = None,
    progress: Progress = _no_progress,
) -> int:
    """Embed the sections whose text changed since they were last embedded (all of them with `everything`), of
    every film or of the films `movie_ids`."""
    sections = MovieSection.objects.all() if everything else MovieSection.objects.needing_embedding()
    if movie_ids is not None:
        sections = sections.filter(movie_id__in=movie_ids)
    pending = list(sections.select_related("movie").only("id", "heading", "content", "content_hash", "movie__title"))
    total = len(pending)
    pending = _take_shipped_vectors(pending)
    # Texts of a like length share a model batch and pad less: measured 3-5% more sections per second.
    pending.sort(key=lambda section: len(section.embedding_text))
    # Written back 256 at a time; the model itself reads `batch_size` texts at once (settings by default).
    for batch in progress(list(_batches(pending, 256)), "Embedding batches"):
        vectors = embed_texts([section.embedding_text for section in batch], batch_size=batch_size)
        for section, vector in zip(batch, vectors, strict=True):
            section.embedding = vector
            section.embedded_hash = section.content_hash
        MovieSection.objects.bulk_update(batch, ["embedding", "embedded_hash"])
    return total


def _take_shipped_vectors(sections: list[MovieSection]) -> list[MovieSection]:
    """Give the sections whose text the shipped file holds their vector from it (written back here); return the
    others, still to embed."""
    known = shipped_vectors.shipped() if settings.EMBEDDING_SHIPPED_VECTORS else None
    if known is None:
        return sections
    found, rest = [], []
    for section in sections:
        vector = known.get(text_hash(section.embedding_text))
        if vector is None:
            rest.append(section)
            continue
        section.embedding, section.embedded_hash = vector, section.content_hash
        found.append(section)
    MovieSection.objects.bulk_update(found, ["embedding", "embedded_hash"], batch_size=256)
    if found:
        logger.info("%d section vector(s) from the shipped file, %d to embed", len(found), len(rest))
    return rest


def _batches(items: Sequence[MovieSection], size: int) -> Iterator[Sequence[MovieSection]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
