"""A film's facts from Wikidata (`reports.wikidata`): matched to the imported films, stored (`FilmFacts`) and written
as report sections ("Cast and crew", "Production", "Reception") that state only what the data holds.

Matching, most certain first; a film is never given another film's facts, so a doubt is a miss:
1. The same title (compared without case, accents or punctuation) within a year either way. Where the film's
   director is known, a candidate whose directors do not share a surname with it is not that film; of several, the
   one of the same year, else none.
2. No such title: a candidate within a year either way whose directors share a surname with the film's, and whose
   title is the film's written without spaces or punctuation ("Blowup" for "Blow-Up"), begins or ends it at a word
   ("Dr. Strangelove" for "Dr. Strangelove or: How I Learned ..."), or is named where the film's lead gives its
   titles, before it says what the film is ("Band of Outsiders (French: Bande à part) is a 1964 ..."; a later
   sentence may name another film by the same director).
A Wikidata entry matched by two films goes to the surer match; the other is a miss.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Count, Max, Q
from django.db.models.functions import Left

from reports import ingest
from reports.models import FilmFacts, Movie, MovieSection
from reports.wikidata import WikidataFilm

Kind = MovieSection.Kind
Origin = MovieSection.Origin

BY_TITLE = "title and year"
BY_TITLE_AND_DIRECTOR = "title, year and director"
BY_SPELLING = "title spelling, year and director"
BY_PART_OF_TITLE = "part of the title, year and director"
BY_LEAD = "title in the lead, year and director"
BY_ENTRY = "its own entry"
# Surest first: which of two films claiming one entry keeps it.
_CERTAINTY = [BY_ENTRY, BY_TITLE_AND_DIRECTOR, BY_TITLE, BY_SPELLING, BY_PART_OF_TITLE, BY_LEAD]

# Letters Unicode does not decompose into a base letter and a mark.
_LETTERS = str.maketrans({"ı": "i", "ł": "l", "Ł": "l", "ø": "o", "Ø": "o", "đ": "d", "ß": "ss", "æ": "ae", "œ": "oe"})
_NAME_SUFFIXES = {"jr", "sr", "ii", "iii"}
_LEAD_CHARACTERS = 400
_NAMING_END = re.compile(r"\s(?:is|was|are|were)\s+(?:a|an|the)\b")


def fold(text: str) -> str:
    """Lower case, without accents, punctuation as spaces: "Amélie" and "amelie", "Head-On" and "head on" alike."""
    text = unicodedata.normalize("NFKD", text.translate(_LETTERS))
    text = "".join(char for char in text if not unicodedata.combining(char)).casefold().replace("&", " and ")
    return " ".join(re.sub(r"[^\w\s]|_", " ", text).split())


def surnames(people: Iterable[str]) -> set[str]:
    """The last word of each name ("George A. Romero" → romero), several names in one string split at commas and
    "and"."""
    return set().union(*(_surnames(names) for names in people))


@functools.lru_cache(maxsize=65536)
def _surnames(names: str) -> frozenset[str]:
    # Cached: matching a film tries every film of its years by its director, the same names again and again.
    found = set()
    for name in re.split(r",|&|\band\b", names):
        words = [word for word in fold(name).split() if word not in _NAME_SUFFIXES]
        if words:
            found.add(words[-1])
    return frozenset(found)


@dataclass(frozen=True)
class FilmToMatch:
    movie_id: int
    title: str
    year: int | None
    director: str = ""
    lead: str = ""  # the start of the film's text, where an original title is given
    imdb_id: str = ""  # a film imported from its Wikidata entry (`catalogue_records`) is matched to it


@dataclass(frozen=True)
class Match:
    movie_id: int
    film: WikidataFilm
    how: str


@dataclass
class Matching:
    matches: list[Match] = field(default_factory=list)
    misses: list[tuple[int, str]] = field(default_factory=list)  # (movie id, why)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for match in self.matches:
            counts[match.how] += 1
        return dict(counts)


def match_films(films: Sequence[FilmToMatch], wikidata: Sequence[WikidataFilm]) -> Matching:
    by_title: dict[str, list[WikidataFilm]] = defaultdict(list)
    by_year: dict[int, list[WikidataFilm]] = defaultdict(list)
    by_id = {entry.imdb_id: entry for entry in wikidata}
    for entry in wikidata:
        by_title[fold(entry.title)].append(entry)
        by_year[entry.year].append(entry)
    first, last = min(by_year, default=0), max(by_year, default=0)
    found: dict[str, Match] = {}  # imdb id → the film it went to
    misses: list[tuple[int, str]] = []
    for film in films:
        if film.imdb_id:
            entry = by_id.get(film.imdb_id)
            match, why = (Match(film.movie_id, entry, BY_ENTRY), "") if entry else (None, "its entry is gone")
        else:
            match, why = _match_one(film, by_title, by_year)
        if match is None:
            if film.year is not None and not first - 1 <= film.year <= last + 1:
                why = f"no Wikidata entry here from {film.year} (the data covers {first} to {last})"
            misses.append((film.movie_id, why))
            continue
        other = found.get(match.film.imdb_id)
        if other is None:
            found[match.film.imdb_id] = match
            continue
        keep, lose = sorted([other, match], key=lambda m: (_CERTAINTY.index(m.how), m.movie_id))
        found[match.film.imdb_id] = keep
        misses.append((lose.movie_id, f"its Wikidata entry ({match.film.imdb_id}) matches another film better"))
    return Matching(sorted(found.values(), key=lambda m: m.movie_id), sorted(misses))


def _match_one(
    film: FilmToMatch, by_title: dict[str, list[WikidataFilm]], by_year: dict[int, list[WikidataFilm]]
) -> tuple[Match | None, str]:
    directors = surnames([film.director]) if film.director else set()

    def near(entry: WikidataFilm) -> bool:
        return film.year is None or abs(entry.year - film.year) <= 1

    def directed(entry: WikidataFilm) -> bool:
        return bool(directors & surnames(entry.directors))

    titled = [entry for entry in by_title.get(fold(film.title), []) if near(entry)]
    if titled:
        how = BY_TITLE
        if directors and any(entry.directors for entry in titled):
            titled = [entry for entry in titled if directed(entry)]
            how = BY_TITLE_AND_DIRECTOR
            if not titled:
                return None, "a Wikidata entry has its title and year, but another director"
        exact = [entry for entry in titled if entry.year == film.year]
        if len(titled) > 1 and len(exact) != 1:
            return None, f"{len(titled)} Wikidata entries have its title and year"
        return Match(film.movie_id, exact[0] if len(titled) > 1 else titled[0], how), ""
    if not directors or film.year is None:
        return None, "no Wikidata entry has its title (and its director is unknown)"
    candidates = [
        entry
        for year in (film.year - 1, film.year, film.year + 1)
        for entry in by_year.get(year, [])
        if directed(entry)
    ]
    title = fold(film.title)
    lead = f" {fold(_naming_part(film.lead))} "
    for how, test in (
        (BY_SPELLING, lambda other: other.replace(" ", "") == title.replace(" ", "")),
        (BY_PART_OF_TITLE, lambda other: _part_of(other, title)),
        (BY_LEAD, lambda other: len(other) >= 4 and f" {other} " in lead),
    ):
        found = [entry for entry in candidates if test(fold(entry.title))]
        if len(found) == 1:
            return Match(film.movie_id, found[0], how), ""
        if len(found) > 1:
            return None, f"{len(found)} Wikidata entries by its director could be it"
    return None, "no Wikidata entry has its title, or a form of it, by its director"


def _naming_part(lead: str) -> str:
    """The lead's words before it says what the film is ("Caché (French: [kaʃe]), also known as Hidden (UK)" of
    "... is a 2005 psychological thriller"), where its other titles are given; empty when it never says."""
    end = _NAMING_END.search(lead[:_LEAD_CHARACTERS])
    return lead[: end.start()] if end else ""


def _part_of(shorter: str, longer: str) -> bool:
    """Whether one title begins or ends the other at a word, and is not a single short word."""
    if len(shorter) > len(longer):
        shorter, longer = longer, shorter
    if len(shorter) < 6:
        return False
    return longer.startswith(shorter + " ") or longer.endswith(" " + shorter)


# Writing the sections.


@dataclass(frozen=True)
class FactSection:
    kind: str
    heading: str
    content: str


@dataclass(frozen=True)
class FactSource:
    """Where a film's facts come from, as its sections say it."""

    name: str
    cast_order: str  # how the source orders a cast
    box_office: str  # what its box office figure is


WIKIDATA_FACTS = FactSource("Wikidata", "in alphabetical order", "the largest gross reported, often worldwide")
TMDB_FACTS = FactSource("TMDB", "in billing order", "worldwide, as TMDB reports it")


def write_sections(title: str, film: WikidataFilm, source: FactSource = WIKIDATA_FACTS) -> list[FactSection]:
    """The film's facts as plain sentences, one section per kind that has any; a field the data leaves empty is
    left out. `title` is the film's title in flickora."""
    sections = [
        FactSection(Kind.CAST_CREW, Kind.CAST_CREW.label, _cast_and_crew(title, film, source)),
        FactSection(Kind.PRODUCTION, Kind.PRODUCTION.label, _production(title, film, source)),
        FactSection(Kind.RECEPTION, Kind.RECEPTION.label, _reception(title, film)),
    ]
    return [section for section in sections if section.content]


def _cast_and_crew(title: str, film: WikidataFilm, source: FactSource) -> str:
    sentences = []
    if film.directors and film.writers:
        sentences.append(f"{title} was directed by {_and(film.directors)} and written by {_and(film.writers)}.")
    elif film.directors:
        sentences.append(f"{title} was directed by {_and(film.directors)}.")
    elif film.writers:
        sentences.append(f"{title} was written by {_and(film.writers)}.")
    if film.cast:
        people = "one person" if len(film.cast) == 1 else f"{len(film.cast)} people"
        order = "" if len(film.cast) == 1 else f", {source.cast_order}"
        sentences.append(f"{source.name} lists {people} in its cast{order}: {_and(film.cast)}.")
    return " ".join(sentences)


def _production(title: str, film: WikidataFilm, source: FactSource) -> str:
    sentences = []
    if film.genres:
        sentences.append(f"{title} is {_a(_and([genre.lower() for genre in film.genres]))} film.")
    if film.runtime:
        sentences.append(f"It runs {film.runtime} minutes.")
    if film.countries:
        sentences.append(f"It was made in {_and([_country(country) for country in film.countries])}.")
    if film.languages:
        noun = "language is" if len(film.languages) == 1 else "languages are"
        sentences.append(f"Its {noun} {_and(film.languages)}.")
    if film.released and film.released_precision == "day":
        sentences.append(f"It was released on {film.released.day} {film.released:%B %Y}.")
    elif film.released:
        sentences.append(f"It was released in {film.released.year}.")
    if film.rating:
        sentences.append(f"It is rated {film.rating}.")
    if film.production:
        sentences.append(f"It was produced by {_and(film.production)}.")
    if film.box_office:
        sentences.append(f"Its box office gross was ${film.box_office:,} ({source.box_office}).")
    return " ".join(sentences)


def _reception(title: str, film: WikidataFilm) -> str:
    sentences = []
    if film.tomatometer is not None:
        reviews = f" of {film.tomatoes_reviews:,} critics' reviews" if film.tomatoes_reviews else " of critics' reviews"
        sentence = f"On Rotten Tomatoes, {film.tomatometer}%{reviews} of {title} are positive"
        if film.tomatoes_rating is not None:
            sentence += f", with an average rating of {film.tomatoes_rating:g} out of 10"
        sentences.append(sentence + ".")
    if film.metacritic is not None:
        sentences.append(f"Its Metacritic score is {film.metacritic} out of 100.")
    won = re.search(r"\bWon (\d+) Oscars?\b", film.awards)
    nominated = re.search(r"\bNominated for (\d+) Oscars?\b", film.awards)
    if won or nominated:
        parts = [f"won {_oscars(won[1])}"] if won else []
        parts += [f"was nominated for {_oscars(nominated[1])}"] if nominated else []
        sentences.append(f"It {' and '.join(parts)}.")
    elif film.awards:
        sentences.append(f"Awards: {film.awards}")
    return " ".join(sentences)


def _oscars(count: str) -> str:
    return f"{count} Oscar" if count == "1" else f"{count} Oscars"


def _and(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _a(phrase: str) -> str:
    return f"an {phrase}" if phrase[:1] in "aeiou" else f"a {phrase}"


def _country(name: str) -> str:
    """Country names that take "the" in a sentence ("the United States", "the Netherlands")."""
    plural = re.search(r"\b(United|Republic|Union|Kingdom|Netherlands|Philippines|Emirates|Bahamas)\b", name)
    return f"the {name}" if plural and not name.startswith("the ") else name


# Storing them.


@dataclass
class FactsReport:
    matched: int = 0
    missed: int = 0
    by: dict[str, int] = field(default_factory=dict)
    misses: list[tuple[str, str]] = field(default_factory=list)  # (film, why)
    facts_created: int = 0
    facts_updated: int = 0
    facts_removed: int = 0
    sections_created: int = 0
    sections_updated: int = 0
    sections_deleted: int = 0


_FACT_FIELDS = [
    "imdb_id", "title", "year", "rating", "runtime", "genres", "released", "released_precision", "directors",
    "writers", "cast", "metacritic", "languages", "countries", "awards", "oscars", "tomatometer", "tomatoes_rating",
    "tomatoes_reviews", "box_office", "production",
]  # fmt: skip


def films_to_match(
    exclude_sources: Collection[str] = (), movie_ids: Collection[int] | None = None
) -> list[FilmToMatch]:
    movies = Movie.objects.exclude(source__in=exclude_sources)
    if movie_ids is not None:
        movies = movies.filter(pk__in=movie_ids)
    rows = movies.values_list(
        "id", "title", "year", "director", Left("source_text", _LEAD_CHARACTERS), "source", "source_key"
    )
    return [
        FilmToMatch(movie_id, title, year, director, lead, imdb_id=key if source == Movie.Source.WIKIDATA else "")
        for movie_id, title, year, director, lead, source, key in rows
    ]


def record_to_match(number: int, record: ingest.FilmRecord) -> FilmToMatch:
    """A film about to be imported, as `films_to_match` will see it once it is (`number` stands for its id)."""
    imdb_id = record.source_key if record.source == Movie.Source.WIKIDATA else ""
    return FilmToMatch(number, record.title, record.year, record.director, record.text[:_LEAD_CHARACTERS], imdb_id)


# The whole catalogue: the films of the data that no imported film is.


def overview(film: WikidataFilm) -> str:
    """A film's overview written from its facts, for a film with no text of its own: what it is, when, where from
    and by whom, as the data has it."""
    kind = f"{_and([genre.lower() for genre in film.genres])} film" if film.genres else "film"
    sentence = f"{film.title} is {_a(f'{film.year} {kind}')}"
    if film.countries:
        sentence += f" from {_and([_country(country) for country in film.countries])}"
    if film.directors:
        sentence += f", directed by {_and(film.directors)}"
    return sentence + "."


def catalogue_records(
    wikidata: Sequence[WikidataFilm], others: Sequence[FilmToMatch] | None = None
) -> list[ingest.FilmRecord]:
    """A record (`ingest.import_records`) for each film of the data that is not one of the films imported from
    elsewhere (as `import_facts` would match them), with an overview written from its facts. `others`: those films
    (default: the imported ones)."""
    if others is None:
        others = [film for film in films_to_match() if not film.imdb_id]
    taken = {match.film.imdb_id for match in match_films(others, wikidata).matches}
    records: dict[str, ingest.FilmRecord] = {}
    for film in wikidata:
        if film.imdb_id in taken or film.imdb_id in records:  # (two rows of the file share an IMDb id)
            continue
        records[film.imdb_id] = ingest.FilmRecord(
            source=Movie.Source.WIKIDATA,
            source_key=film.imdb_id,
            title=film.title,
            text=overview(film),
            year=film.year,
            director=directors_line(film.directors),
            genres=film.genres,
        )
    return list(records.values())


def directors_line(directors: Sequence[str]) -> str:
    """The directors as the film's one line of them (`Movie.director`): every name, or as many as fit and how many
    more (an anthology film has dozens)."""
    limit = Movie._meta.get_field("director").max_length
    for shown in range(len(directors), 0, -1):
        more = len(directors) - shown
        line = ", ".join(directors[:shown]) + (f" and {more} more" if more else "")
        if len(line) <= limit:
            return line
    return ""


def import_facts(
    wikidata: Sequence[WikidataFilm],
    movie_ids: Collection[int] | None = None,
    *,
    films: Sequence[FilmToMatch] | None = None,
) -> FactsReport:
    """Match every film to its facts, store them and write its fact sections (one transaction). Idempotent:
    unchanged facts change nothing; a film no longer matched loses its facts and their sections.

    With `movie_ids`, every film is matched (a film's entry may be claimed by another), but only those films are
    written, and any film that held an entry one of them now takes. `films`: match only these (films imported
    from their own entries, which no other film claims)."""
    with transaction.atomic():
        if films is None:
            # A film imported from TMDB has its facts from there (`reports.importing.import_tmdb_film`).
            films = films_to_match(exclude_sources=[Movie.Source.TMDB])
        matching = match_films(films, wikidata)
        scope = None
        if movie_ids is not None:
            scope = set(movie_ids)
            taken = {match.film.imdb_id for match in matching.matches if match.movie_id in scope}
            scope |= set(FilmFacts.objects.filter(imdb_id__in=taken).values_list("movie_id", flat=True))
            matching = Matching(
                [match for match in matching.matches if match.movie_id in scope],
                [miss for miss in matching.misses if miss[0] in scope],
            )
        in_scope = ~Q(movie__source=Movie.Source.TMDB) & (Q() if scope is None else Q(movie_id__in=scope))
        titles = {film.movie_id: film.title for film in films}
        report = FactsReport(
            matched=len(matching.matches),
            missed=len(matching.misses),
            by=matching.counts(),
            misses=[(titles[movie_id], why) for movie_id, why in matching.misses],
        )
        stored = {facts.movie_id: facts for facts in FilmFacts.objects.filter(in_scope)}
        matched_ids = {match.movie_id for match in matching.matches}
        gone = [movie_id for movie_id in stored if movie_id not in matched_ids]
        report.facts_removed = FilmFacts.objects.filter(movie_id__in=gone).delete()[0]
        report.sections_deleted += MovieSection.objects.filter(movie_id__in=gone, origin=Origin.FACTS).delete()[0]
        # A film whose entry changed gives up its row first (an entry may move between films: the IMDb id is
        # unique).
        entries = {match.movie_id: match.film.imdb_id for match in matching.matches}
        moved = [
            movie_id for movie_id, facts in stored.items() if entries.get(movie_id, facts.imdb_id) != facts.imdb_id
        ]
        FilmFacts.objects.filter(movie_id__in=moved).delete()
        for movie_id in moved:
            del stored[movie_id]
        # Every fact section in one query, and where each film's sections end.
        sections: dict[int, dict[str, MovieSection]] = defaultdict(dict)
        for section in MovieSection.objects.filter(in_scope, origin=Origin.FACTS).defer("embedding"):
            sections[section.movie_id][section.kind] = section
        layout = {
            row["movie_id"]: row
            for row in MovieSection.objects.filter(in_scope)
            .values("movie_id")
            .annotate(last=Max("position"), others=Count("id", filter=~Q(origin=Origin.SOURCE)))
        }
        fresh: list[Match] = []
        for match in matching.matches:
            film_layout = layout.get(match.movie_id, {"others": 0})
            if match.movie_id not in stored and not film_layout["others"]:
                fresh.append(match)  # nothing to reconcile: written in bulk below
                continue
            existing = sections.get(match.movie_id, {})
            _store(match, titles[match.movie_id], stored.get(match.movie_id), existing, report)
        _create(fresh, titles, {movie_id: row["last"] for movie_id, row in layout.items()}, report)
    return report


def _values(match: Match) -> dict[str, object]:
    return {name: _value(getattr(match.film, name)) for name in _FACT_FIELDS} | {"matched_by": match.how}


def store_facts(movie: Movie, film: WikidataFilm, *, how: str, source: FactSource) -> FactsReport:
    """Store one film's facts from another source than the Wikidata file (TMDB), and write its fact sections."""
    report = FactsReport(matched=1, by={how: 1})
    existing = {section.kind: section for section in MovieSection.objects.filter(movie=movie, origin=Origin.FACTS)}
    stored = FilmFacts.objects.filter(movie=movie).first()
    _store(Match(movie.pk, film, how), movie.title, stored, existing, report, source)
    return report


def _store(
    match: Match,
    title: str,
    facts: FilmFacts | None,
    existing: dict[str, MovieSection],
    report: FactsReport,
    source: FactSource = WIKIDATA_FACTS,
) -> None:
    values = _values(match)
    if facts is None:
        FilmFacts.objects.create(movie_id=match.movie_id, **values)
        report.facts_created += 1
    elif any(getattr(facts, name) != value for name, value in values.items()):
        FilmFacts.objects.filter(pk=facts.pk).update(**values)
        report.facts_updated += 1
    _sync_sections(match.movie_id, title, write_sections(title, match.film, source), existing, report)


def _create(matches: list[Match], titles: dict[int, str], last: dict[int, int], report: FactsReport) -> None:
    """Facts and sections of films that had neither (a first import: every film): in bulk, the sections right
    after the film's overview, in report order."""
    FilmFacts.objects.bulk_create([FilmFacts(movie_id=m.movie_id, **_values(m)) for m in matches], batch_size=1000)
    rows = []
    for match in matches:
        title = titles[match.movie_id]
        drafts = sorted(write_sections(title, match.film), key=lambda draft: ingest.KIND_ORDER[draft.kind])
        start = last.get(match.movie_id, -1) + 1
        rows += [
            MovieSection(
                movie_id=match.movie_id,
                kind=draft.kind,
                origin=Origin.FACTS,
                position=start + offset,
                heading=draft.heading,
                content=draft.content,
                content_hash=ingest.section_hash(title, draft.heading, draft.content),
            )
            for offset, draft in enumerate(drafts)
        ]
    MovieSection.objects.bulk_create(rows, batch_size=1000)
    report.facts_created += len(matches)
    report.sections_created += len(rows)


def _value(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def _sync_sections(
    movie_id: int, title: str, drafts: list[FactSection], existing: dict[str, MovieSection], report: FactsReport
) -> None:
    wanted = {draft.kind: draft for draft in drafts}
    stale = [section.pk for kind, section in existing.items() if kind not in wanted]
    report.sections_deleted += MovieSection.objects.filter(pk__in=stale).delete()[0]
    changed = False
    free = None
    for kind, draft in wanted.items():
        content_hash = ingest.section_hash(title, draft.heading, draft.content)
        section = existing.get(kind)
        if section is not None and section.content_hash == content_hash:
            continue
        changed = True
        if section is not None:
            section.heading, section.content, section.content_hash = draft.heading, draft.content, content_hash
            section.save(update_fields=["heading", "content", "content_hash"])
            report.sections_updated += 1
            continue
        if free is None:  # past every position in use; placed in report order below
            last = MovieSection.objects.filter(movie_id=movie_id).aggregate(last=Max("position"))["last"]
            free = 0 if last is None else last + 1
        MovieSection.objects.create(
            movie_id=movie_id,
            kind=kind,
            origin=Origin.FACTS,
            position=free,
            heading=draft.heading,
            content=draft.content,
            content_hash=content_hash,
        )
        free += 1
        report.sections_created += 1
    if changed or stale:
        ingest.place_generated_sections(Movie.objects.get(pk=movie_id))
