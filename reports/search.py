"""Retrieval over report sections.

- Per film: exact ranking of that film's sections (found through the B-tree on the film). The HNSW index would
  filter after its scan and could return fewer than k rows, so this query keeps the planner away from it.
- Across films: the HNSW index (cosine) with `hnsw.ef_search` from settings, fused with PostgreSQL full-text
  ranking by reciprocal rank fusion, with at most a few sections per film. One SQL statement either way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from reports.embeddings import embed_query

# Reciprocal rank fusion constant (Cormack et al.): damps the weight of the very first ranks.
RRF_K = 60
# Candidates taken from each retriever before fusion.
CANDIDATES = 40

_SECTION_COLUMNS = """
    s.id, s.movie_id, m.title, m.slug, m.year, s.kind, s.heading, s.content
"""

FILM_SQL = f"""
WITH film_sections AS MATERIALIZED (
    SELECT id, embedding <=> %(vector)s::vector AS distance
    FROM reports_moviesection
    WHERE movie_id = %(movie_id)s AND embedding IS NOT NULL
)
SELECT {_SECTION_COLUMNS}, f.distance
FROM film_sections f
JOIN reports_moviesection s ON s.id = f.id
JOIN reports_movie m ON m.id = s.movie_id
ORDER BY f.distance, s.position
LIMIT %(k)s
"""  # noqa: S608 (constant SQL: the only interpolation is the column list above)

# The vector part alone: what `test_hnsw_index` explains, and the first CTE of HYBRID_SQL.
VECTOR_SQL = """
SELECT id, embedding <=> %(vector)s::vector AS distance
FROM reports_moviesection
ORDER BY embedding <=> %(vector)s::vector
LIMIT %(candidates)s
"""

HYBRID_SQL = f"""
WITH vector_hits AS (
    SELECT id, distance, row_number() OVER (ORDER BY distance) AS rank
    FROM ({VECTOR_SQL}) nearest
),
text_hits AS (
    SELECT id, row_number() OVER (ORDER BY text_rank DESC, id) AS rank
    FROM (
        SELECT id, ts_rank_cd(search_vector, query) AS text_rank
        FROM reports_moviesection, websearch_to_tsquery('english', %(text)s) query
        WHERE search_vector @@ query
        ORDER BY text_rank DESC, id
        LIMIT %(candidates)s
    ) matches
),
fused AS (
    SELECT coalesce(v.id, t.id) AS id,
           coalesce(1.0 / ({RRF_K} + v.rank), 0) + coalesce(1.0 / ({RRF_K} + t.rank), 0) AS score,
           v.distance, v.rank AS vector_rank, t.rank AS text_rank
    FROM vector_hits v FULL OUTER JOIN text_hits t ON t.id = v.id
),
per_film AS (
    SELECT f.*, row_number() OVER (PARTITION BY s.movie_id ORDER BY f.score DESC, f.id) AS film_rank
    FROM fused f JOIN reports_moviesection s ON s.id = f.id
)
SELECT {_SECTION_COLUMNS}, p.distance, p.score, p.vector_rank, p.text_rank
FROM per_film p
JOIN reports_moviesection s ON s.id = p.id
JOIN reports_movie m ON m.id = s.movie_id
WHERE p.film_rank <= %(per_film)s
ORDER BY p.score DESC, p.id
LIMIT %(k)s
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
    similarity: float | None  # 1 - cosine distance; None when only full text found it
    score: float  # what the hits are ordered by: similarity per film, fused RRF score across films
    vector_rank: int | None = None
    text_rank: int | None = None


@dataclass
class SearchResult:
    hits: list[Hit]
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds: embed, search


def vector_literal(vector: np.ndarray | Sequence[float]) -> str:
    return "[" + ",".join(f"{float(value):.7g}" for value in vector) + "]"


def hybrid_params(*, vector: np.ndarray, text: str, k: int, per_film: int) -> dict[str, Any]:
    return {"vector": vector_literal(vector), "text": text, "k": k, "per_film": per_film, "candidates": CANDIDATES}


def configure_cross_film_search(cursor: Any, ef_search: int) -> None:
    """SET LOCAL (until the end of the current transaction) what the cross-film query needs: `hnsw.ef_search`, and
    no sequential scan. Below a few thousand rows the planner prefers an exact scan and sort (about as fast there);
    going through the index at every size keeps retrieval's behaviour, recall and latency the same from the first
    thousand sections to the millionth, which is what `test_hnsw_index` and the benchmarks measure."""
    cursor.execute(
        "SELECT set_config('hnsw.ef_search', %s, true), set_config('enable_seqscan', 'off', true)",
        [str(int(ef_search))],
    )


def search_movie(*, movie_id: int, query: str, k: int | None = None, vector: np.ndarray | None = None) -> SearchResult:
    """The k sections of one film closest to `query`: exact, always min(k, sections with embeddings) rows.
    `vector` is the query's embedding when the caller already has it."""
    k = k or settings.RETRIEVAL_TOP_K
    started = time.perf_counter()
    vector = embed_query(query) if vector is None else vector
    embedded = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(FILM_SQL, {"vector": vector_literal(vector), "movie_id": movie_id, "k": k})
        rows = cursor.fetchall()
    hits = [_hit(row[:8], similarity=1.0 - row[8], score=1.0 - row[8]) for row in rows]
    return SearchResult(hits, _timings(started, embedded))


def search_all(
    *,
    query: str,
    k: int | None = None,
    per_film: int | None = None,
    ef_search: int | None = None,
    vector: np.ndarray | None = None,
) -> SearchResult:
    """Sections across all films: HNSW nearest neighbours fused with full-text matches, a few per film."""
    k = k or settings.RETRIEVAL_TOP_K
    per_film = per_film or settings.RETRIEVAL_PER_FILM
    started = time.perf_counter()
    vector = embed_query(query) if vector is None else vector
    embedded = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        configure_cross_film_search(cursor, ef_search or settings.HNSW_EF_SEARCH)
        cursor.execute(HYBRID_SQL, hybrid_params(vector=vector, text=query, k=k, per_film=per_film))
        rows = cursor.fetchall()
    hits = [
        _hit(
            row[:8],
            similarity=None if row[8] is None else 1.0 - row[8],
            score=float(row[9]),
            vector_rank=row[10],
            text_rank=row[11],
        )
        for row in rows
    ]
    return SearchResult(hits, _timings(started, embedded))


def _hit(row: Sequence[Any], **scores: Any) -> Hit:
    section_id, movie_id, title, slug, year, kind, heading, content = row
    return Hit(section_id, movie_id, title, slug, year, kind, heading, content, **scores)


def _timings(started: float, embedded: float) -> dict[str, float]:
    finished = time.perf_counter()
    return {"embed": (embedded - started) * 1000, "search": (finished - embedded) * 1000}
