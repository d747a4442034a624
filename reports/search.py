"""Retrieval over report sections.

- Per film: every section of that film (found through the B-tree on the film), ranked by cosine similarity to the
  question and BM25 together. The HNSW index would filter after its scan and could return fewer than k rows, so this
  query keeps the planner away from it.
- Across films: a question there is usually about *which* film, so films are ranked first, each on the evidence of
  all its sections, then the answer gets the best sections of the top films. Two SQL statements gather the
  candidate films and their evidence; the first (LEXICAL_EVIDENCE_SQL) needs only the question's text, so it runs
  while the question is embedded, the second (VECTOR_FILMS_SQL) has the vector (for a new question it is sent
  behind the first in the same round trip, and takes the first's candidate films on the server):
  - lexical: BM25 over the question's lexemes (English stemming and stop words, as `search_vector`), OR, each
    weighted by its rarity; the postings of the rarer ones are read from `reports_posting`, an inverted list kept
    with `reports_lexeme` and `reports_corpus` by triggers (migration 0004); a word the corpus never uses is
    corrected to the closest lexeme that it does (trigram similarity);
  - vector: the HNSW index (cosine) with `hnsw.ef_search` from settings;
  - title: films whose title words the question names;
  each film with its best section's similarity and its BM25. The fusion (`rank_films`, in Python) weighs the two by
  constants chosen on the tuning half of `eval/questions.jsonl` (`python manage.py evaluate_answers --tune`). A
  third statement (FILM_SQL) scores every section of the first films, as it does a film page's sections, and reads
  the best of each in full.
- A question asked again across films is answered from `result_cache` while the corpus's generation (moved by
  every write to films or sections, migration 0009) is the one its result was computed at.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import psycopg
import psycopg.adapt
from django.conf import settings
from django.db import connection

from reports import generations
from reports.embeddings import embed_query, normalize_query
from reports.generations import GenerationCache

# A question's vector, or its future (being embedded elsewhere while the lexical statement runs).
Vector = np.ndarray | Future[np.ndarray]

# BM25's term-frequency saturation and length normalisation. k1 is Robertson's default. b is 0, no length
# normalisation: with the Wikidata catalogue (16,904 films of a sentence or two each), the usual 0.75 let any word of
# such a short entry, often a word of its title ("win" for "Win Win" in "Which Oscars did Network win?"), outweigh
# a long article that says what the question asks. Chosen on the evaluation's tuning half; recall@1 with the 761
# films / with all 17,665: b 0.75, 0.821 with all; b 0.75, 0.5, 0.25 and 0.1 with a title word weighed a quarter
# (a first fix, dropped): 0.947 / 0.863, 0.947 / 0.895, 0.947 / 0.905, 0.937 / 0.926; b 0 alone: 0.947 / 0.926
# (recall@5 0.989 with all, against 0.905 at first).
BM25_K1 = 1.2
BM25_B = 0.0
# Nearest sections taken from the HNSW index.
VECTOR_CANDIDATES = 60
# Films taken from the lexical pass, and the sum of document frequencies the lexical pass may read through the GIN
# index: the rarest lexemes of the question first, at least one, while they add up to at most this many postings.
# Common lexemes still count in the scores of every candidate; they only stop generating candidates (at 100,000
# sections "film" alone would match nearly all of them).
LEXICAL_FILMS = 20
LEXICAL_POSTINGS = 1000
# ... and a lexeme in more than this share of the sections never does (but the rarest of the question always does).
LEXICAL_COMMON = 0.5
# A question word whose lexeme no section has is replaced by the most similar one that some section has, when at
# least this similar (pg_trgm similarity): "hitchock" finds "hitchcock".
CORRECTION_SIMILARITY = 0.45


@dataclass(frozen=True)
class Fusion:
    """How the film ranking weighs its evidence (see `rank_films`)."""

    vector: float = 1.0
    lexical: float = 0.75
    # 0: a weighted sum of the scores, each scaled to 0..1; above 0: weighted reciprocal rank fusion with this k.
    rrf_k: int = 0
    # Within a film, how much a section's BM25 (scaled by the film's best) adds to its cosine similarity.
    section_lexical: float = 0.3


FUSION = Fusion()
VECTOR_ONLY = Fusion(vector=1.0, lexical=0.0, section_lexical=0.0)
LEXICAL_ONLY = Fusion(vector=0.0, lexical=1.0, section_lexical=1.0)

_SECTION_COLUMNS = "s.id, s.movie_id, m.title, m.slug, m.year, s.kind, s.heading, s.content"

# The question's lexemes with their document frequency and BM25 idf; unknown ones corrected. Shared by both queries.
TERMS_SQL = f"""
terms AS MATERIALIZED (
    SELECT DISTINCT ON (coalesce(known.lexeme, fix.lexeme))
           coalesce(known.lexeme, fix.lexeme) AS lexeme,
           coalesce(known.sections, fix.sections) AS sections,
           ln(1 + (c.sections - coalesce(known.sections, fix.sections) + 0.5)
                  / (coalesce(known.sections, fix.sections) + 0.5)) AS idf,
           c.lexemes::float8 / greatest(c.sections, 1) AS mean_length
    FROM unnest(tsvector_to_array(to_tsvector('english', %(text)s))) AS asked(lexeme)
    CROSS JOIN reports_corpus c
    LEFT JOIN reports_lexeme known ON known.lexeme = asked.lexeme
    LEFT JOIN LATERAL (
        SELECT l.lexeme, l.sections
        FROM reports_lexeme l
        WHERE known.lexeme IS NULL AND length(asked.lexeme) >= 4 AND l.lexeme %% asked.lexeme
          AND similarity(l.lexeme, asked.lexeme) >= {CORRECTION_SIMILARITY}
        ORDER BY similarity(l.lexeme, asked.lexeme) DESC, l.sections DESC, l.lexeme
        LIMIT 1
    ) fix ON true
    WHERE coalesce(known.lexeme, fix.lexeme) IS NOT NULL AND position(E'\\\\' in coalesce(known.lexeme, fix.lexeme)) = 0
),
lexemes AS MATERIALIZED (
    SELECT coalesce(array_agg(lexeme), '{{}}') AS all_lexemes,
           -- What titles are matched against: the question's own lexemes too, since a title's word need not be in
           -- any section's text.
           array(
               SELECT DISTINCT lexeme FROM (
                   SELECT unnest(tsvector_to_array(to_tsvector('english', %(text)s))) UNION SELECT lexeme FROM terms
               ) asked(lexeme)
               WHERE position(E'\\\\' in lexeme) = 0
           ) AS asked_lexemes
    FROM terms
)"""  # noqa: S608 (constant SQL)

# The vector part alone (the benchmark's HNSW stage and recall), and the first CTE of VECTOR_FILMS_SQL.
_NEAREST = """
SELECT id, movie_id, embedding <=> {vector} AS distance
FROM reports_moviesection
ORDER BY embedding <=> {vector}
LIMIT %(candidates)s
"""
VECTOR_SQL = _NEAREST.format(vector="%(vector)s::vector")
# In the prepared statements the question's vector arrives as text: cast once (an InitPlan), not once per row.
_ASKED = "(SELECT vector FROM asked_vector)"
ASKED_VECTOR_CTE = "asked_vector AS MATERIALIZED (SELECT %(vector)s::vector AS vector)"

# BM25 weight of a posting (frequency, length) for a term (idf, mean_length).
_POSTING_WEIGHT = f"""
    t.idf * p.frequency * ({BM25_K1} + 1)
    / (p.frequency + {BM25_K1} * (1 - {BM25_B} + {BM25_B} * p.length / t.mean_length))"""

# The lexical pass: the postings of the question's rarer lexemes (the rarest always, then others while their
# postings add up to at most %(postings)s and each is in at most a share %(common)s of the sections), read from the
# inverted list `reports_posting` by its primary key; their films ranked by BM25 (each lexeme once, at its best
# section).
LEXICAL_CTES = f"""
rare_terms AS (
    SELECT t.*
    FROM (
        SELECT terms.*,
               sum(sections) OVER (ORDER BY sections, lexeme) - sections AS postings_before,
               row_number() OVER (ORDER BY sections, lexeme) AS rarity
        FROM terms
    ) t
    CROSS JOIN reports_corpus c
    WHERE rarity = 1 OR (postings_before + t.sections <= %(postings)s AND t.sections <= c.sections * %(common)s)
),
lexical_postings AS MATERIALIZED (
    SELECT p.section_id AS id, p.movie_id, p.lexeme, {_POSTING_WEIGHT} AS weight
    FROM rare_terms t
    -- OFFSET 0 keeps the planner from flattening this into a scan of every posting: one index range per lexeme.
    CROSS JOIN LATERAL (SELECT * FROM reports_posting WHERE lexeme = t.lexeme OFFSET 0) p
),
film_lexical AS MATERIALIZED (
    SELECT movie_id, sum(weight) AS lexical
    FROM (SELECT movie_id, lexeme, max(weight) AS weight FROM lexical_postings GROUP BY movie_id, lexeme) best
    GROUP BY movie_id
),
lexical_films AS (
    SELECT movie_id FROM film_lexical ORDER BY lexical DESC, movie_id LIMIT %(lexical_films)s
)"""  # noqa: S608 (constant SQL)

TITLE_CTE = """
-- Films the question names: every word of the title (stemmed, stop words aside) is among the question's. The GIN
-- index on the titles' lexemes finds the titles with any of them; the containment keeps those it names whole ("the
-- eye of the Moon" does not name every film with "Moon" in its title).
title_films AS (
    SELECT m.id AS movie_id
    FROM reports_movie m CROSS JOIN lexemes
    WHERE m.title_lexemes && lexemes.asked_lexemes AND m.title_lexemes <@ lexemes.asked_lexemes
)"""

# The films a question names, alone (tests).
TITLE_SQL = f"""
WITH {TERMS_SQL},
{TITLE_CTE}
SELECT movie_id FROM title_films ORDER BY movie_id
"""  # noqa: S608 (constant SQL)

# Where the lexical statement leaves its candidate films for a vector statement sent behind it before its rows are
# read (`_lexical_then_vector`): a setting local to the transaction, the pipeline's implicit one.
HANDED_FILMS = "flickora.lexical_films"

# The cross-film search's first statement, which needs only the question's text, so it runs while the question is
# embedded: BM25 of each film the lexical pass reaches, and whether the film is a candidate (among the first by BM25,
# or named by the question). The candidates are also left in HANDED_FILMS (a one-time filter: set before any row,
# also when there is none).
LEXICAL_EVIDENCE_SQL = f"""
WITH {TERMS_SQL},
{LEXICAL_CTES},
{TITLE_CTE},
evidence AS MATERIALIZED (
    SELECT movie_id, coalesce(l.lexical, 0) AS lexical,
           t.movie_id IS NOT NULL OR movie_id IN (SELECT movie_id FROM lexical_films) AS candidate
    FROM film_lexical l FULL JOIN title_films t USING (movie_id)
)
SELECT movie_id, lexical, candidate
FROM evidence
WHERE (
    SELECT set_config('{HANDED_FILMS}', coalesce(array_agg(movie_id) FILTER (WHERE candidate), '{{}}')::text, true)
    FROM evidence
) IS NOT NULL
"""  # noqa: S608 (constant SQL: built from the constants above)

# The second, with the question's vector: the films of the nearest sections (HNSW) and the exact similarity of the
# other candidates (%(films)s, or when it is NULL those the lexical statement left in HANDED_FILMS). A film found by
# the vector has its best section among the nearest (the HNSW list is the nearest sections of all); a film found only
# by its words or its title gets its best section's. Each film with how many of the nearest sections are its own (0
# for the others).
VECTOR_FILMS_SQL = f"""
WITH {ASKED_VECTOR_CTE},
vector_hits AS MATERIALIZED ({_NEAREST.format(vector=_ASKED)}),
vector_films AS MATERIALIZED (
    SELECT movie_id, max(1 - distance) AS similarity, count(*) AS nearest FROM vector_hits GROUP BY movie_id
),
other_films AS (
    SELECT s.movie_id, max(1 - (s.embedding <=> {_ASKED})) AS similarity
    FROM reports_moviesection s
    -- (The planner may read the setting when %(films)s is given too, and it is '' outside the lexical statement's
    -- transaction, NULL in a session that never ran one.)
    WHERE s.movie_id = ANY(coalesce(%(films)s::bigint[], nullif(current_setting('{HANDED_FILMS}', true), '')::bigint[]))
      AND s.embedding IS NOT NULL
      AND s.movie_id NOT IN (SELECT movie_id FROM vector_films)
    GROUP BY s.movie_id
)
SELECT movie_id, similarity, nearest FROM vector_films
UNION ALL
SELECT movie_id, similarity, 0 FROM other_films
"""  # noqa: S608 (constant SQL: built from the constants above)

# The best %(places)s sections of each of the given films, best first, film by film. Every section of the films is
# scored: %(vector_weight)s × its similarity + %(lexical_weight)s × its BM25 over all the question's lexemes (their
# postings in these sections, found by the primary key: lexeme, section) divided by the best BM25 of its film (the
# weights are the fusion's). Only the best are read in full (their text, their film's title): a cross-film search
# uses at most RETRIEVAL_PER_FILM sections of a film, of the tens it may have.
FILM_SQL = f"""
WITH {TERMS_SQL},
{ASKED_VECTOR_CTE},
film_sections AS MATERIALIZED (
    SELECT id, movie_id, 1 - (embedding <=> {_ASKED}) AS similarity
    FROM reports_moviesection
    WHERE movie_id = ANY(%(movie_ids)s) AND embedding IS NOT NULL
),
section_lexical AS (
    SELECT p.section_id AS id, sum({_POSTING_WEIGHT}) AS lexical
    FROM terms t
    JOIN reports_posting p ON p.lexeme = t.lexeme AND p.section_id = ANY(ARRAY(SELECT id FROM film_sections))
    GROUP BY p.section_id
),
scored AS (
    SELECT f.id, f.movie_id, f.similarity,
           %(vector_weight)s * f.similarity + %(lexical_weight)s * coalesce(w.lexical, 0)
               / coalesce(nullif(max(coalesce(w.lexical, 0)) OVER (PARTITION BY f.movie_id), 0), 1) AS score
    FROM film_sections f LEFT JOIN section_lexical w ON w.id = f.id
),
placed AS (
    SELECT *, row_number() OVER (PARTITION BY movie_id ORDER BY score DESC, id) AS place FROM scored
)
SELECT {_SECTION_COLUMNS}, p.similarity, p.score
FROM placed p
JOIN reports_moviesection s ON s.id = p.id
JOIN reports_movie m ON m.id = s.movie_id
WHERE p.place <= %(places)s
ORDER BY p.movie_id, p.place
"""  # noqa: S608 (constant SQL: built from the constants above)


@dataclass(frozen=True)
class Hit:
    section_id: int
    movie_id: int
    movie_title: str
    movie_slug: str
    movie_year: int | None
    kind: str
    heading: str
    content: str
    similarity: float | None  # 1 - cosine distance
    score: float  # what the hits are ordered by: the section's score per film, the film's fused score across films
    vector_rank: int | None = None  # across films: the film's rank by similarity alone (1-based)
    text_rank: int | None = None  # across films: the film's rank by BM25 alone, None when no question word matched


@dataclass
class SearchResult:
    hits: list[Hit]
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds: embed, search
    films: list[FilmScore] = field(default_factory=list)  # across films: the ranked candidates, best first


@dataclass
class FilmScore:
    movie_id: int
    score: float = 0.0
    similarity: float = 0.0  # the best section's cosine similarity
    lexical: float = 0.0  # BM25 of the film: each question lexeme counted once, at its best section
    vector_rank: int | None = None
    text_rank: int | None = None
    # Across films, for the first films: (section score, section id) of its best RETRIEVAL_PER_FILM, best first.
    sections: list[tuple[float, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Candidate:
    """A candidate film with its evidence, before fusion: what `rank_films` ranks."""

    movie_id: int
    similarity: float  # its best section's cosine similarity
    lexical: float  # BM25 of the film: each of the question's rarer lexemes once, at the section where it weighs most


def vector_literal(vector: np.ndarray | Sequence[float]) -> str:
    return "[" + ",".join(f"{float(value):.7g}" for value in vector) + "]"


class QuestionVector:
    """A question's vector as a parameter of the statements above: sent in pgvector's binary format, the float32
    values as they are (the text form takes 0.14 ms to write here, and the server as long to read)."""

    __slots__ = ("array",)

    def __init__(self, vector: np.ndarray | Sequence[float]) -> None:
        self.array = np.asarray(vector, dtype=np.float32)

    def __str__(self) -> str:
        return vector_literal(self.array)


class _QuestionVectorTextDumper(psycopg.adapt.Dumper):
    # For cursors that bind on the client (Django's): the text form. No type oid: the statements cast the parameter
    # (`::vector`), which tells the server its type.
    def dump(self, obj: QuestionVector) -> bytes:
        return str(obj).encode()


class _QuestionVectorDumper(psycopg.adapt.Dumper):
    # pgvector's binary input: the dimensions and a reserved word (16 bits each), then the values, big-endian.
    format = psycopg.pq.Format.BINARY

    def dump(self, obj: QuestionVector) -> bytes:
        return struct.pack(">HH", len(obj.array), 0) + obj.array.astype(">f4").tobytes()


def lexical_params(text: str) -> dict[str, Any]:
    """The parameters of LEXICAL_EVIDENCE_SQL."""
    return {"text": text, "postings": LEXICAL_POSTINGS, "common": LEXICAL_COMMON, "lexical_films": LEXICAL_FILMS}


def vector_params(vector: np.ndarray | Sequence[float], films: Sequence[int] | None = ()) -> dict[str, Any]:
    """The parameters of VECTOR_FILMS_SQL: the question's vector and the other candidate films (None: those the
    lexical statement left in HANDED_FILMS). The films go as an array's text, whose type is the same as NULL's
    (psycopg sends lists of small and large numbers as different types): one prepared statement for all."""
    return {
        "vector": QuestionVector(vector),
        "candidates": VECTOR_CANDIDATES,
        "films": None if films is None else "{" + ",".join(str(int(film)) for film in films) + "}",
    }


# What the cross-film statements need until the end of the transaction; see `configure_cross_film_search`.
CONFIGURE_SQL = (
    "SELECT set_config('hnsw.ef_search', %(ef_search)s, true), set_config('enable_seqscan', 'off', true), "
    "set_config('hnsw.iterative_scan', %(iterative_scan)s, true)"
)
# pgvector's iterative scan, for a vector statement that came back short (see `_candidates`).
ITERATIVE_SCAN = "relaxed_order"


def configure_cross_film_search(cursor: Any, ef_search: int, *, iterative_scan: str = "off") -> None:
    """SET LOCAL (until the end of the current transaction) what the cross-film query needs: `hnsw.ef_search`, and
    no sequential scan. Below a few thousand rows the planner prefers an exact scan and sort (about as fast there);
    going through the index at every size keeps retrieval's behaviour, recall and latency the same from the first
    thousand sections to the millionth, which is what `test_hnsw_index` and the benchmarks measure.

    `iterative_scan`: pgvector's `hnsw.iterative_scan`, off for the first try (see `_candidates`)."""
    cursor.execute(CONFIGURE_SQL, _configuration(ef_search, iterative_scan))


def _configuration(ef_search: int, iterative_scan: str) -> dict[str, str]:
    return {"ef_search": str(int(ef_search)), "iterative_scan": iterative_scan}


def run_prepared(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run one of the statements above as a prepared statement on the current connection (and transaction).

    Planning them costs more than a millisecond each, a tenth of a cross-film search at 100,000 sections, so each is
    planned once per connection: the settings give psycopg a `prepare_threshold` (Django's default turns prepared
    statements off) and the session `plan_cache_mode=force_generic_plan` (the planner would otherwise re-plan them
    at every run, since their estimated cost varies with the question). Django's cursors bind parameters on the
    client, which cannot prepare, so this uses a server-side binding cursor of the same connection. With
    DB_PREPARED_STATEMENTS=0 the same statements are planned at each run."""
    return run_pipelined([(sql, params)])[-1]


Statements = Sequence[tuple[str, dict[str, Any]]]


def run_pipelined(
    statements: Statements, *, meanwhile: Callable[[], Statements | None] | None = None
) -> list[list[tuple[Any, ...]]]:
    """Run statements as `run_prepared` does, sent together (one round trip, not one each): the rows of each.

    `meanwhile` is called on this thread once the statements are sent, while the server runs them: in pipeline mode
    the server executes each statement as it arrives and holds its rows until the pipeline's end, when they are
    read. It must not use the connection; the statements it returns are sent behind the others, in the same implicit
    transaction, and their rows follow theirs."""
    connection.ensure_connection()
    raw = connection.connection
    raw.adapters.register_dumper(QuestionVector, _QuestionVectorTextDumper)
    raw.adapters.register_dumper(QuestionVector, _QuestionVectorDumper)  # the last registered: the one used by `%s`
    if len(statements) == 1 and meanwhile is None:
        with psycopg.Cursor(raw) as cursor:
            cursor.execute(*statements[0], prepare=True)
            return [cursor.fetchall()]
    cursors: list[psycopg.Cursor[Any]] = []

    def send(more: Statements) -> None:
        for sql, params in more:
            cursors.append(psycopg.Cursor(raw))
            cursors[-1].execute(sql, params, prepare=True)

    try:
        with raw.pipeline():
            send(statements)
            if meanwhile is not None:
                send(meanwhile() or ())
        return [cursor.fetchall() if cursor.description else [] for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()


_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")


def explain(cursor: Any, sql: str, params: dict[str, Any], options: str = "") -> list[str]:
    """EXPLAIN (`options`) one of the statements above as `run_prepared` runs it: prepared, so with the plan the
    session's `plan_cache_mode` gives a prepared statement (the generic plan), not the plan made for these values.
    The lines of the plan (with FORMAT JSON, one)."""
    names: list[str] = []

    def numbered(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    statement = _PLACEHOLDER.sub(numbered, sql)
    cursor.execute(f"PREPARE flickora_explained AS {statement}")
    try:
        arguments = ", ".join(["%s"] * len(names))
        cursor.execute(
            f"EXPLAIN ({options or 'COSTS'}) EXECUTE flickora_explained({arguments})",
            [str(params[n]) if isinstance(params[n], QuestionVector) else params[n] for n in names],
        )
        return [row[0] for row in cursor.fetchall()]
    finally:
        cursor.execute("DEALLOCATE flickora_explained")


def search_movie(
    *,
    movie_id: int,
    query: str,
    k: int | None = None,
    vector: Vector | None = None,
    fusion: Fusion = FUSION,
) -> SearchResult:
    """The k sections of one film that best match `query`: exact, always min(k, sections with embeddings) rows.
    `vector` is the query's embedding (or its future) when the caller already has it."""
    k = k or settings.RETRIEVAL_TOP_K
    started = time.perf_counter()
    vector = _resolved(embed_query(query) if vector is None else vector)
    embedded = time.perf_counter()
    hits = _best_sections(query=query, vector=vector, movie_ids=[movie_id], places=k, fusion=fusion)
    return SearchResult(hits, _timings(started, embedded))


def search_all(
    *,
    query: str,
    k: int | None = None,
    per_film: int | None = None,
    ef_search: int | None = None,
    vector: Vector | None = None,
    lexical: LexicalEvidence | None = None,
    fusion: Fusion = FUSION,
) -> SearchResult:
    """Films ranked on all their evidence, then the best `per_film` sections of the first film and the best one of
    each next film, `k` in all: the first films' best passages, one film per source after the first.

    `vector`: the question's embedding, or a future of it; without it the question is embedded on this thread while the
    server runs the lexical statement, and the vector statement follows in the same round trip (`_lexical_then_vector`).
    Either way the lexical statement runs while the vector is on its way. `lexical`: what `lexical_evidence` found for
    `query`, when the caller ran it (the chat runs it while the question is embedded)."""
    k = k or settings.RETRIEVAL_TOP_K
    per_film = per_film or settings.RETRIEVAL_PER_FILM
    started = time.perf_counter()
    cache_key = _cache_key(query, k, per_film, ef_search, fusion, vector)
    if lexical is None and cache_key is not None:
        cached = cached_search(query=query, k=k, per_film=per_film, ef_search=ef_search, fusion=fusion)
        if cached is not None:
            return cached
    # No transaction around the statements: the vector statement's settings last until the end of its round trip
    # (see `_candidates`), and a BEGIN and a COMMIT would add two round trips to a new question's wait.
    if vector is None and lexical is None:
        lexical, vector, found, embedded = _lexical_then_vector(query, ef_search)
    else:
        lexical = lexical or lexical_evidence(query)
        vector = embed_query(query) if vector is None else _resolved(vector)
        embedded = time.perf_counter()
        found = _candidates(lexical, vector, ef_search)
    films = rank_films(found, fusion)
    # The sections of the first films only: at most one film per source.
    top = films[:k]
    by_film = {film.movie_id: film for film in top}
    best = _best_sections(query=query, vector=vector, movie_ids=list(by_film), places=per_film, fusion=fusion)
    for hit in best:
        by_film[hit.movie_id].sections.append((hit.score, hit.section_id))
    chosen = choose_sections(top, k=k, per_film=per_film)
    sections = {hit.section_id: hit for hit in best}
    hits = [
        replace(
            sections[section_id],
            score=by_film[movie_id].score,
            vector_rank=by_film[movie_id].vector_rank,
            text_rank=by_film[movie_id].text_rank,
        )
        for movie_id, section_id in chosen
    ]
    result = SearchResult(hits, _timings(started, embedded), films)
    if cache_key is not None:
        # Under the generation read before the lexical statement: a write since makes the entry unused, never stale.
        result_cache.put(cache_key, lexical.generation, result)
    return result


def cached_search(
    *,
    query: str,
    k: int | None = None,
    per_film: int | None = None,
    ef_search: int | None = None,
    fusion: Fusion = FUSION,
) -> SearchResult | None:
    """`search_all`'s result for this question from this process's cache, if the films have not changed since it
    was computed (one query: the corpus's generation, only when the question is in the cache); else None."""
    started = time.perf_counter()
    k, per_film = k or settings.RETRIEVAL_TOP_K, per_film or settings.RETRIEVAL_PER_FILM
    key = _cache_key(query, k, per_film, ef_search, fusion, None)
    # A question never asked (or pushed out) is a miss whatever the generation: no query for it. The lexical
    # statement, which a miss runs next, reads the generation in its own round trip.
    if key is None or not result_cache.holds(key):
        return None
    cached = result_cache.get(key, generations.current())
    if cached is None:
        return None
    return SearchResult(list(cached.hits), {"embed": 0.0, "search": _since(started)}, list(cached.films))


# Cross-film results of this process, by question (`_cache_key`), `RETRIEVAL_CACHE_SIZE` at most.
result_cache: GenerationCache[SearchResult] = GenerationCache(lambda: settings.RETRIEVAL_CACHE_SIZE)


def _cache_key(
    query: str, k: int, per_film: int, ef_search: int | None, fusion: Fusion, vector: Vector | None
) -> tuple[Any, ...] | None:
    """What a cross-film result depends on besides the films: the question as the app's embedder reads it, the
    settings and the fusion. A caller that brings a vector vouches it is the app's embedding of the question; one
    that brings a future of it (another embedder's, in the benchmarks) is not cached. None when the cache is off."""
    if settings.RETRIEVAL_CACHE_SIZE <= 0 or isinstance(vector, Future):
        return None
    embedder = f"{settings.EMBEDDING_QUERY_RUNTIME}:{settings.EMBEDDING_QUERY_PRECISION}"
    return (normalize_query(query), embedder, k, per_film, ef_search or settings.HNSW_EF_SEARCH, fusion)


def candidates(*, query: str, vector: np.ndarray, ef_search: int | None = None) -> list[Candidate]:
    """The candidate films with their evidence, before fusion (what `search_all` ranks)."""
    return _candidates(lexical_evidence(query), vector, ef_search)


def rank_films(rows: Sequence[Candidate], fusion: Fusion = FUSION) -> list[FilmScore]:
    """The candidate films, best first, each on its evidence fused: its best section's similarity, scaled so the
    best candidate has 1 and the worst 0, and its BM25 (each question lexeme once, at the section where it weighs
    most: evidence spread over several sections adds up), scaled by the best film's."""
    if not rows:
        return []
    films = {row.movie_id: FilmScore(row.movie_id, similarity=row.similarity, lexical=row.lexical) for row in rows}
    top_similarity = max(film.similarity for film in films.values())
    low_similarity = min(film.similarity for film in films.values())
    spread = top_similarity - low_similarity or 1.0
    top_lexical = max(film.lexical for film in films.values()) or 1.0
    _set_ranks(films.values(), "similarity", "vector_rank")
    _set_ranks([film for film in films.values() if film.lexical > 0], "lexical", "text_rank")
    for film in films.values():
        if fusion.rrf_k:
            film.score = fusion.vector / (fusion.rrf_k + (film.vector_rank or 0)) + (
                fusion.lexical / (fusion.rrf_k + film.text_rank) if film.text_rank else 0.0
            )
        else:
            film.score = (
                fusion.vector * (film.similarity - low_similarity) / spread
                + fusion.lexical * film.lexical / top_lexical
            )
    return sorted(films.values(), key=lambda film: (-film.score, film.movie_id))


def choose_sections(films: Sequence[FilmScore], *, k: int, per_film: int) -> list[tuple[int, int]]:
    """(movie id, section id) pairs: up to `per_film` sections of the first film, then one of each next film; if
    films run out before `k`, the next best sections of the films already chosen."""
    chosen: list[tuple[int, int]] = []
    for position, film in enumerate(films):
        if len(chosen) >= k:
            break
        take = per_film if position == 0 else 1
        chosen.extend((film.movie_id, section_id) for _, section_id in film.sections[:take])
    if len(chosen) < k:
        taken = set(chosen)
        rest = [(film.movie_id, section_id) for film in films for _, section_id in film.sections[:per_film]]
        chosen.extend(pair for pair in rest if pair not in taken)
    return chosen[:k]


def _set_ranks(films: Sequence[FilmScore] | Any, score: str, rank: str) -> None:
    for position, film in enumerate(sorted(films, key=lambda f: (-getattr(f, score), f.movie_id)), start=1):
        setattr(film, rank, position)


@dataclass(frozen=True)
class LexicalEvidence:
    """What LEXICAL_EVIDENCE_SQL found: the BM25 of each film it reached, and the candidates among them; and the
    corpus's generation, read just before (what the result is cached under)."""

    scores: dict[int, float]
    films: list[int]
    generation: int = 0


def lexical_evidence(query: str) -> LexicalEvidence:
    """The cross-film search's lexical statement: it needs no vector, so it runs while the question is embedded
    (for a new question, on this thread: `_lexical_then_vector`). The corpus's generation is read in the same round
    trip, before it."""
    return _evidence(*run_pipelined(_lexical_statements(query)))


def _lexical_statements(query: str) -> Statements:
    # The corpus's generation first: a result is cached under the generation read before its statements.
    return [(generations.GENERATION_SQL, {}), (LEXICAL_EVIDENCE_SQL, lexical_params(query))]


def _evidence(generation: Sequence[tuple[Any, ...]], rows: Sequence[tuple[Any, ...]]) -> LexicalEvidence:
    scores = {row[0]: float(row[1]) for row in rows}
    return LexicalEvidence(scores, [row[0] for row in rows if row[2]], generation[0][0] if generation else 0)


def _lexical_then_vector(
    query: str, ef_search: int | None
) -> tuple[LexicalEvidence, np.ndarray, list[Candidate], float]:
    """A new question's candidates in one round trip: the lexical statement sent, the question embedded on this
    thread while the server runs it, then the vector statement sent behind it, which reads the candidate films the
    lexical statement left on the server (HANDED_FILMS). The HNSW scan starts as soon as the vector is there, and
    the lexical rows are read while it runs. Also when the vector was ready (`time.perf_counter()`)."""
    embedded: list[tuple[np.ndarray, float]] = []

    def embed_then_search() -> Statements:
        embedded.append((embed_query(query), time.perf_counter()))
        return _vector_statements(embedded[0][0], None, ef_search or settings.HNSW_EF_SEARCH, "off")

    generation, rows, _, first = run_pipelined(_lexical_statements(query), meanwhile=embed_then_search)
    lexical = _evidence(generation, rows)
    [(vector, ready)] = embedded
    return lexical, vector, _candidates(lexical, vector, ef_search, first=first), ready


def _vector_statements(
    vector: np.ndarray, films: Sequence[int] | None, ef_search: int, iterative_scan: str
) -> Statements:
    return [
        (CONFIGURE_SQL, _configuration(ef_search, iterative_scan)),
        (VECTOR_FILMS_SQL, vector_params(vector, films)),
    ]


def _candidates(
    lexical: LexicalEvidence,
    vector: np.ndarray,
    ef_search: int | None,
    *,
    first: Sequence[tuple[Any, ...]] | None = None,
) -> list[Candidate]:
    """The vector statement, after the search's settings, sent together: one round trip, and one transaction.
    Outside a transaction (autocommit) the pipeline's single Sync makes the two an implicit one, so the settings
    (`set_config(..., true)`) hold for the vector statement and end with it; inside one, they last until its end.

    The HNSW scan stops at `ef_search` entries. When fewer than VECTOR_CANDIDATES of them are live sections (the
    others deleted since the last vacuum: a re-import, a rolled-back one), the statement runs again with pgvector's
    iterative scan, which goes on past them. It is not on from the start: keeping what it passes over for later
    costs every scan about a tenth of its time (0.3 to 0.5 ms at 100,000 sections).

    `first`: the rows of the first try, when the caller ran it (`_lexical_then_vector`)."""
    ef_search = ef_search or settings.HNSW_EF_SEARCH
    rows = first
    if rows is None:
        rows = run_pipelined(_vector_statements(vector, lexical.films, ef_search, "off"))[-1]
    # (Below VECTOR_CANDIDATES sections in all, as in the tests' sample, the second run finds what the first did.)
    if sum(nearest for _, _, nearest in rows) < min(VECTOR_CANDIDATES, ef_search):
        rows = run_pipelined(_vector_statements(vector, lexical.films, ef_search, ITERATIVE_SCAN))[-1]
    return [Candidate(film, float(similarity), lexical.scores.get(film, 0.0)) for film, similarity, _ in rows]


def _resolved(vector: Vector) -> np.ndarray:
    return vector.result() if isinstance(vector, Future) else vector


def film_params(
    *, query: str, vector: np.ndarray | Sequence[float], movie_ids: Sequence[int], places: int, fusion: Fusion = FUSION
) -> dict[str, Any]:
    """The parameters of FILM_SQL."""
    return {
        "vector": QuestionVector(vector),
        "text": query,
        "movie_ids": list(movie_ids),
        "places": places,
        "vector_weight": fusion.vector,
        "lexical_weight": fusion.section_lexical,
    }


def _best_sections(*, query: str, vector: np.ndarray, movie_ids: list[int], places: int, fusion: Fusion) -> list[Hit]:
    """FILM_SQL: the best `places` sections of each film, best first, film by film, each scored as in its film."""
    rows = run_prepared(
        FILM_SQL, film_params(query=query, vector=vector, movie_ids=movie_ids, places=places, fusion=fusion)
    )
    return [_hit(row[:8], similarity=float(row[8]), score=float(row[9])) for row in rows]


def _hit(row: Sequence[Any], **scores: Any) -> Hit:
    section_id, movie_id, title, slug, year, kind, heading, content = row
    return Hit(section_id, movie_id, title, slug, year, kind, heading, content, **scores)


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _timings(started: float, embedded: float) -> dict[str, float]:
    finished = time.perf_counter()
    return {"embed": (embedded - started) * 1000, "search": (finished - embedded) * 1000}
