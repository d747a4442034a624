"""Retrieval benchmark: query embedding, per-film and cross-film retrieval (HNSW at several ef_search values and
an exact scan, side by side) on corpora of 1k, 10k and 100k sections (1M with --large); the corpora are described
in benchmarks/corpora.py.

    python -m benchmarks retrieval [--quick] [--large] [--sizes 1000,10000] [--models covariance,text]
        [--ef-search 40,64,100] [--recall-queries 200] [--embedded-texts 1000]

By default: the real sections alone at 1k; all four models at 10k (the validation: which synthetic model behaves
like embedded text); `covariance`, `small` and `calibrated` at 100k; `small` at 1M. --quick: one round of the
questions, the realistic model alone at 10k and 100k (QUICK_CORPORA: no validation, no stress case) and
QUICK_EXACT_QUERIES exact scans; with --models text, QUICK_EMBEDDED_TEXTS texts really embedded. In
bench/retrieval.json, "corpora" holds the real and isotropic corpora and "realistic_corpora" the `covariance` and
`text` ones; every corpus has its "model" and its geometry (benchmarks/geometry.py).

Every timing goes through the app's code: the query embedder (`measure`'s `embedder`: the app's `get_embedder()`
here; another implementation of `QueryEmbedder` can be measured beside it), `search_movie` (FILM_SQL) and
`search_all` (LEXICAL_EVIDENCE_SQL and VECTOR_FILMS_SQL). Recall@10 compares the HNSW nearest neighbours
(VECTOR_SQL, LIMIT 10) with an exact scan of the same query (`enable_indexscan` off): `recall_at_10` over the 50
cross-film questions, and `recall_at_10_all` over those plus `--recall-queries` questions about named films ("Who
directed Vertigo?"), whose exact neighbours come from numpy on the same vectors (checked against the exact scan:
`numpy_exact_agreement`). "New" questions are cache misses of the embedder's query cache (cleared before each),
"cached" ones hit it. Each kind of measurement has a pass over the questions of its own (the searches first, after a
warm-up on the recall's questions), so no search is timed right after the same question's other statements or the
recall checks. Writes bench/retrieval.json.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from benchmarks.corpora import (
    CALIBRATED_NOISE,
    CORPUS_DB,
    GIN_INDEX,
    HNSW_INDEX,
    MODELS,
    SMALL_NOISE,
    RealSection,
    VectorModels,
    build_indexes,
    index_definitions,
    load_corpus,
    load_real_sections,
    settle,
)
from benchmarks.environment import (
    BASE_DB,
    BENCH_DIR,
    admin_connection,
    machine,
    prepare_base,
    recreate_database,
    section_count,
    setup_django,
    write_json,
)
from benchmarks.geometry import geometry
from benchmarks.measure import percentiles, timed
from benchmarks.questions import FILM_QUESTIONS, QUESTIONS, TITLE_QUESTIONS

SIZES = (1_000, 10_000, 100_000)
LARGE_SIZE = 1_000_000
EF_SEARCH_VALUES = (40, 64, 100, 150, 200, 300, 400)
# The models whose corpora go under "corpora" in the JSON, as before (what the report and the plot read):
# the real sections alone and the isotropic stress cases. The realistic models go under "realistic_corpora".
STRESS_MODELS = ("real", "small", "calibrated")
DEFAULT_CORPORA = {
    1_000: ("small",),  # real sections only
    10_000: ("covariance", "text", "small", "calibrated"),
    100_000: ("covariance", "small", "calibrated"),
    LARGE_SIZE: ("small",),
}
# --quick (make bench, under 10 minutes on a fresh clone of this 2-core machine even when busy): the realistic
# corpus alone at 10k and 100k, which the targets are read on. A 100k corpus costs minutes to load and index; the
# validation against embedded text and the stress cases (a minute each at 10k) are in the full run.
QUICK_CORPORA = {1_000: ("small",), 10_000: ("covariance",), 100_000: ("covariance",)}

# --quick: the generated texts really embedded for the text model (the others get real text residuals): under a
# minute on 2 busy cores, where all 8,959 took over 11 minutes on a fresh clone.
QUICK_EMBEDDED_TEXTS = 500
# --quick: questions also run as an exact scan (the "exact, no HNSW" column and the check that numpy's neighbours
# are the database's); the others' true neighbours come from numpy alone, as the recall questions' always did.
QUICK_EXACT_QUERIES = 10


class QueryCache(Protocol):
    def clear(self) -> None: ...


class QueryEmbedder(Protocol):
    """What the retrieval benchmark needs of a query embedder (the app's `reports.embeddings.Embedder` is one)."""

    cache: QueryCache

    def embed_query(self, text: str) -> np.ndarray: ...


def title_questions(real: list[RealSection], count: int, rng: random.Random) -> list[str]:
    titles = sorted({section.movie_title for section in real})
    chosen = rng.sample(titles, min(count, len(titles)))
    chosen += [rng.choice(titles) for _ in range(count - len(chosen))]
    return [TITLE_QUESTIONS[number % len(TITLE_QUESTIONS)].format(title) for number, title in enumerate(chosen)]


def measure(
    size: int,
    rounds: int,
    exact_queries: int,
    rng: random.Random,
    *,
    ef_values: Sequence[int],
    extra_queries: Sequence[str],
    vectors: np.ndarray,
    ids: np.ndarray,
    embedder: QueryEmbedder,
    compare: QueryEmbedder | None = None,
) -> dict[str, Any]:
    """Everything measured on one corpus, with `embedder` embedding the questions (the app's in `main`): its time
    per new and cached question, and the searches end to end with it. `compare`: another embedder timed beside it
    on the same questions (its embedding, and the cross-film search of a new question with it)."""
    from django.conf import settings
    from django.db import connection, transaction
    from django.test.utils import override_settings

    from reports.embeddings import embed_query_soon, get_embedder
    from reports.search import (
        LEXICAL_EVIDENCE_SQL,
        VECTOR_CANDIDATES,
        VECTOR_FILMS_SQL,
        VECTOR_SQL,
        QuestionVector,
        candidates,
        choose_sections,
        configure_cross_film_search,
        lexical_evidence,
        lexical_params,
        rank_films,
        result_cache,
        run_prepared,
        search_all,
        search_movie,
        vector_literal,
        vector_params,
    )

    embed_query = embedder.embed_query
    default_ef = settings.HNSW_EF_SEARCH
    # The retrieval cache would answer the repeated questions of the other measurements: on only where it is meant.
    cache_size = settings.RETRIEVAL_CACHE_SIZE
    cache_off = override_settings(RETRIEVAL_CACHE_SIZE=0)
    cache_off.enable()

    def app_vector(query: str) -> Future[np.ndarray] | None:
        """None (the app embeds it, and may cache the result) for the app's embedder; another's, on its thread."""
        return None if embedder is get_embedder() else embed_query_soon(query, embedder)

    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT movie_id FROM reports_moviesection")
        film_ids = [row[0] for row in cursor.fetchall()]

    def numpy_nearest(vector: np.ndarray) -> tuple[set[int], float]:
        """The exact 10 nearest sections' ids, and the sum of their cosine distances."""
        # The vector as the database receives it (vector_literal's 7 significant digits).
        sent = np.array(vector_literal(vector)[1:-1].split(","), dtype=np.float32)
        similarities = vectors @ sent
        top = np.argpartition(-similarities, 10)[:10]
        return set(ids[top].tolist()), float(np.sum(1.0 - similarities[top]))

    def exact_hybrid(query: str, vector: np.ndarray) -> float:
        """The cross-film statements with the index switched off (planned at each run, not prepared)."""
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('enable_indexscan', 'off', true)")

            def both() -> None:
                cursor.execute(LEXICAL_EVIDENCE_SQL, lexical_params(query))
                films = [row[0] for row in cursor.fetchall() if row[2]]
                cursor.execute(VECTOR_FILMS_SQL, vector_params(vector, films))
                cursor.fetchall()

            return timed(both)[0]

    # Warm up the model, the plans and the buffers, as a server that has answered questions before: with the questions
    # about named films (the recall's, not timed), else the first ten. Until 2026-11-28 these were the first ten of
    # the timed questions. (After the load and the build, 89 of the 100,000 corpus's 202 MB of index were in the
    # shared buffers, 2026-11-28.)
    for query in extra_queries or QUESTIONS[:10]:
        search_all(query=query, vector=embed_query(query))
        search_movie(movie_id=rng.choice(film_ids), query=query, vector=embed_query(query))

    embed_cold, embed_cached = [], []
    compared_embed, compared_cross = [], []
    film_cold, film_cached, film_db = [], [], []
    cross_cold, cross_cached = [], []
    hybrid: dict[int, list[float]] = {ef: [] for ef in ef_values}
    vector_ms: dict[int, list[float]] = {ef: [] for ef in ef_values}
    recall: dict[int, list[float]] = {ef: [] for ef in ef_values}
    ratio: dict[int, list[float]] = {ef: [] for ef in ef_values}
    extra_recall: dict[int, list[float]] = {ef: [] for ef in ef_values}
    exact_vector, exact_hybrid_ms, agreement = [], [], []
    # The stages of the cross-film search, each alone and prepared as the app runs them: the lexical statement
    # (BM25's pass and the titles), the HNSW scan (VECTOR_SQL), both candidate statements (`candidates`), and the
    # fusion in Python.
    lexical_stage, vector_stage, candidates_stage, fusion_stage = [], [], [], []
    index_used = hnsw_used(QUESTIONS[0], embed_query(QUESTIONS[0]))
    queries = [query for _ in range(rounds) for query in rng.sample(QUESTIONS, len(QUESTIONS))]
    # A pass over the questions for each kind of measurement. The first times the searches as a server meets them,
    # one new question after the other: across films (new, then cached), then in a film. Until 2026-11-28 one loop
    # ran everything for a question in turn: its search came right after its stages, which had run the same HNSW
    # scan twice and so read its pages into the buffers, and after the previous question's recall checks (a numpy
    # scan of every vector, 150 MB at 100,000 sections).
    for query in queries:
        # End to end, as the app searches: a new question (embedded while the server runs the lexical statement),
        # then the same again: from the retrieval cache, after one query (the corpus's generation).
        embedder.cache.clear()
        with override_settings(RETRIEVAL_CACHE_SIZE=cache_size):
            result_cache.clear()
            cross_cold.append(timed(lambda q=query: search_all(query=q, vector=app_vector(q)))[0])
            cross_cached.append(timed(lambda q=query: search_all(query=q, vector=app_vector(q)))[0])

    for number in range(len(queries)):
        film_query = FILM_QUESTIONS[number % len(FILM_QUESTIONS)]
        film_id = rng.choice(film_ids)
        embedder.cache.clear()
        film_cold.append(
            timed(lambda q=film_query, f=film_id: search_movie(movie_id=f, query=q, vector=embed_query(q)))[0]
        )
        ms, result = timed(lambda q=film_query, f=film_id: search_movie(movie_id=f, query=q, vector=embed_query(q)))
        film_cached.append(ms)
        film_db.append(result.timings["search"])

    # The embedding and the stages, each question's first since its search in the pass above: the HNSW scan reads a
    # part of the graph the searches since have left.
    for query in queries:
        cold, cached, vector = time_embedding(embedder, query)
        embed_cold.append(cold)
        embed_cached.append(cached)
        with transaction.atomic():
            lexical_stage.append(timed(lambda q=query: lexical_evidence(q))[0])
            # At the app's ef_search, as the vector statement runs it (until 2026-11-27 this stage ran at
            # pgvector's default of 40, and read about half the app's scan).
            with connection.cursor() as cursor:
                configure_cross_film_search(cursor, default_ef)
            params = {"vector": QuestionVector(vector), "candidates": VECTOR_CANDIDATES}  # as VECTOR_FILMS_SQL's
            vector_stage.append(timed(lambda p=params: run_prepared(VECTOR_SQL, p))[0])
        ms, rows = timed(lambda q=query, v=vector: candidates(query=q, vector=v))
        candidates_stage.append(ms)
        fusion_stage.append(
            timed(lambda r=rows: choose_sections(rank_films(r), k=settings.RETRIEVAL_TOP_K, per_film=2))[0]
        )

    # The other embedder's searches in a pass of their own too (torch's weights are 90 MB: they would evict the
    # app's from the caches as the recall checks did).
    for query in queries if compare is not None else ():
        compared_embed.append(time_embedding(compare, query)[0])
        compare.cache.clear()
        compared_cross.append(timed(lambda q=query: search_all(query=q, vector=embed_query_soon(q, compare)))[0])

    # Last, the recall checks (and the search at every `ef_search`, with the question's vector given).
    for number, query in enumerate(queries):
        vector = embed_query(query)
        # The true neighbours: the exact scan's where it runs, else numpy's (which agree: numpy_exact_agreement).
        truth, truth_distance = numpy_nearest(vector)
        if number < exact_queries:
            ms, rows = nearest(vector, ef=None)
            exact_vector.append(ms)
            exact_hybrid_ms.append(exact_hybrid(query, vector))
            if number < len(QUESTIONS):
                agreement.append(len(truth & {row[0] for row in rows}) / len(rows))
            truth, truth_distance = {row[0] for row in rows}, sum(row[1] for row in rows)
        for ef in ef_values:
            hybrid[ef].append(timed(lambda q=query, v=vector, e=ef: search_all(query=q, vector=v, ef_search=e))[0])
            ms, found = nearest(vector, ef=ef)
            vector_ms[ef].append(ms)
            recall[ef].append(len({row[0] for row in found} & truth) / len(truth))
            # How far the neighbours found are against the true ones: near 1.0, a miss is a near tie.
            ratio[ef].append(sum(row[1] for row in found) / truth_distance)

    # Recall only, over more questions (about named films); the exact neighbours from numpy.
    for query in extra_queries:
        vector = embed_query(query)
        expected = numpy_nearest(vector)[0]
        for ef in ef_values:
            found = {row[0] for row in nearest(vector, ef=ef)[1]}
            extra_recall[ef].append(len(found & expected) / len(expected))

    def recall_all(ef: int) -> list[float]:
        return recall[ef][: len(QUESTIONS)] + extra_recall[ef]

    hnsw = {
        str(ef): {
            "hybrid_ms": percentiles(hybrid[ef], 3),
            "vector_ms": percentiles(vector_ms[ef], 3),
            "recall_at_10": round(float(np.mean(recall[ef])), 4),
            "recall_at_10_min": round(float(np.min(recall[ef])), 2),
            "distance_ratio_at_10": round(float(np.mean(ratio[ef])), 4),
            "recall_at_10_film_questions": round(float(np.mean(extra_recall[ef])), 4) if extra_queries else None,
            "recall_at_10_all": round(float(np.mean(recall_all(ef))), 4),
            "recall_at_10_all_min": round(float(np.min(recall_all(ef))), 2),
        }
        for ef in ef_values
    }
    cache_off.disable()
    exact = {"hybrid_ms": percentiles(exact_hybrid_ms, 3), "vector_ms": percentiles(exact_vector, 3)}
    reference = str(default_ef) if default_ef in ef_values else str(ef_values[0])
    return {
        "queries": len(queries),
        "exact_queries": len(exact_hybrid_ms),
        "recall_queries": len(recall_all(ef_values[0])),
        "numpy_exact_agreement": round(float(np.mean(agreement)), 4),
        "hnsw_index_used": index_used,
        "embedding": {"cold": percentiles(embed_cold, 3), "cached": percentiles(embed_cached, 4)},
        "per_film": {
            "cold": percentiles(film_cold, 3),
            "cached": percentiles(film_cached, 3),
            "sql": percentiles(film_db, 3),
        },
        "cross_film_end_to_end": {"cold": percentiles(cross_cold, 3), "cached": percentiles(cross_cached, 3)},
        "compared": (
            {
                "runtime": runtime_label(compare),
                "embedding_cold": percentiles(compared_embed, 3),
                "cross_film_cold": percentiles(compared_cross, 3),
            }
            if compare is not None
            else None
        ),
        "cross_film_stages": {
            "lexical": percentiles(lexical_stage, 3),
            "vector": percentiles(vector_stage, 3),
            "candidates": percentiles(candidates_stage, 3),
            "fusion": percentiles(fusion_stage, 3),
        },
        "hnsw": hnsw,
        "exact": exact,
        "exact_over_hnsw": round(exact["hybrid_ms"]["p50"] / hnsw[reference]["hybrid_ms"]["p50"], 1),
    }


def nearest(vector: np.ndarray, *, ef: int | None) -> tuple[float, list[tuple[int, float]]]:
    """The app's nearest-neighbour statement (VECTOR_SQL, 10 sections) at `ef` (the HNSW index), or exact with the
    index switched off (`ef` None): (milliseconds it took, its rows: section id, distance)."""
    from django.db import connection, transaction

    from reports.search import VECTOR_SQL, configure_cross_film_search, vector_literal

    params = {"vector": vector_literal(vector), "candidates": 10}
    with transaction.atomic(), connection.cursor() as cursor:
        if ef is None:
            cursor.execute("SELECT set_config('enable_indexscan', 'off', true)")
        else:
            configure_cross_film_search(cursor, ef)
        ms, _ = timed(lambda: cursor.execute(VECTOR_SQL, params))
        return ms, [(section_id, distance) for section_id, _, distance in cursor.fetchall()]


def runtime_label(embedder: QueryEmbedder) -> str | None:
    """How `embedder` embeds questions: "onnx int8", "onnx float32" or "torch"."""
    runtime = getattr(embedder, "query_runtime", None)
    return f"{runtime} {getattr(embedder, 'query_precision', '')}".strip() if runtime == "onnx" else runtime


def time_embedding(embedder: QueryEmbedder, query: str) -> tuple[float, float, np.ndarray]:
    """Milliseconds to embed `query` as a new question (the cache cleared), then as a cached one; and its vector."""
    embedder.cache.clear()
    cold, vector = timed(lambda: embedder.embed_query(query))
    cached, _ = timed(lambda: embedder.embed_query(query))
    return cold, cached, vector


def hnsw_used(query: str, vector: np.ndarray) -> bool:
    """Whether the app's cross-film statement scans the HNSW index (its plan names the index)."""
    from django.conf import settings
    from django.db import connection, transaction

    from reports.search import VECTOR_FILMS_SQL, configure_cross_film_search, explain, lexical_evidence, vector_params

    params = vector_params(vector, lexical_evidence(query).films)
    with transaction.atomic(), connection.cursor() as cursor:
        configure_cross_film_search(cursor, settings.HNSW_EF_SEARCH)
        return any(HNSW_INDEX in line for line in explain(cursor, VECTOR_FILMS_SQL, params))


def corpora_to_build(
    sizes: Sequence[int], models: Sequence[str] | None, real_count: int, *, quick: bool = False
) -> list[tuple[int, str]]:
    """(size, model) in order: by size, then in the order of MODELS."""
    corpora: list[tuple[int, str]] = []
    defaults = QUICK_CORPORA if quick else DEFAULT_CORPORA
    for size in sorted(sizes):
        chosen = models or defaults.get(size, ("covariance",))
        if size <= real_count:
            chosen = chosen[:1]  # real sections only: the model makes no difference
        corpora += [(size, model) for model in sorted(chosen, key=MODELS.index)]
    return corpora


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="One round of the questions per corpus (make bench).")
    parser.add_argument("--large", action="store_true", help="Add a corpus of 1M sections (an hour or more here).")
    parser.add_argument("--sizes", help="Comma-separated corpus sizes instead of the defaults.")
    parser.add_argument(
        "--models",
        help=f"Comma-separated synthetic vector models for every size, among {', '.join(MODELS)} (default: "
        "covariance at every size, text and both isotropic ones at 10k, both isotropic ones at 100k).",
    )
    parser.add_argument("--rounds", type=int, help="Rounds of the 50 questions per corpus (default 3, quick 1).")
    parser.add_argument(
        "--ef-search", help=f"Comma-separated hnsw.ef_search values (default {','.join(map(str, EF_SEARCH_VALUES))})."
    )
    parser.add_argument(
        "--recall-queries", type=int, default=200, help="Questions about named films added to the recall (200)."
    )
    parser.add_argument(
        "--embedded-texts",
        type=int,
        help=f"Generated texts embedded for the text model (default all; quick {QUICK_EMBEDDED_TEXTS:,}): the "
        "others get real text residuals.",
    )
    parser.add_argument(
        "--output", default=str(BENCH_DIR / "retrieval.json"), help="Where to write the JSON (bench/retrieval.json)."
    )
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")] if options.sizes else list(SIZES)
    if options.large and LARGE_SIZE not in sizes:
        sizes.append(LARGE_SIZE)
    models = options.models.split(",") if options.models else None
    if models and set(models) - set(MODELS):
        parser.error(f"unknown models {sorted(set(models) - set(MODELS))}; choose among {', '.join(MODELS)}")
    ef_values = [int(ef) for ef in options.ef_search.split(",")] if options.ef_search else list(EF_SEARCH_VALUES)
    rounds = options.rounds or (1 if options.quick else 3)
    embedded_texts = options.embedded_texts or (QUICK_EMBEDDED_TEXTS if options.quick else None)

    if not section_count(BASE_DB):
        prepare_base()
    recreate_database(CORPUS_DB, template=BASE_DB)
    setup_django(CORPUS_DB)
    from django.conf import settings

    from reports.embeddings import Embedder, get_embedder

    # Beside the app's question path (onnxruntime), the torch path it replaced, timed on the same questions.
    torch_path = Embedder(threads=settings.EMBEDDING_THREADS, cache_size=16, dtype=settings.EMBEDDING_DTYPE)
    run(
        sizes=sizes,
        models=models,
        ef_values=ef_values,
        rounds=rounds,
        recall_queries=options.recall_queries,
        embedded_texts=embedded_texts,
        quick=options.quick,
        embedder=get_embedder(),
        compare=torch_path,
        output=Path(options.output),
    )


def run(
    *,
    sizes: Sequence[int],
    models: Sequence[str] | None,
    ef_values: Sequence[int],
    rounds: int,
    recall_queries: int,
    embedded_texts: int | None,
    quick: bool,
    embedder: QueryEmbedder,
    output: Path,
    compare: QueryEmbedder | None = None,
) -> None:
    """Build each corpus in turn and measure it with `embedder`, writing `output` after each."""
    from django.conf import settings
    from pgvector.psycopg import register_vector

    load_ms, _ = timed(lambda: embedder.embed_query("load the model"))
    results: dict[str, Any] = {
        "machine": machine(),
        "query_runtime": runtime_label(embedder),
        "quick": quick,
        "rounds": rounds,
        "questions": len(QUESTIONS),
        "default_ef_search": settings.HNSW_EF_SEARCH,
        "ef_search_values": list(ef_values),
        "noise": {"small": SMALL_NOISE, "calibrated": CALIBRATED_NOISE},
        "model_load_ms": round(load_ms, 1),
        # Real sections alone and the isotropic stress cases (keys as before).
        "corpora": [],
        # The realistic models: covariance noise, and the generated text embedded (each corpus has "model").
        "realistic_corpora": [],
    }
    with admin_connection(CORPUS_DB) as conn:
        register_vector(conn)
        real = load_real_sections(conn)
        definitions = index_definitions(conn)
        started = time.perf_counter()
        vector_models = VectorModels(real)
        results["index_definitions"] = definitions
        results["real_geometry"] = vector_models.real_geometry
        results["models"] = {
            "covariance": {
                "description": "real vector + Gaussian noise with the real vectors' covariance, re-normalised",
                "target_copy_to_source_distance": round(vector_models.target_distance, 4),
                "scale": round(vector_models.covariance_scale, 4),
                "noise_rms_norm": vector_models.noise_norm("covariance"),
                "calibration_seconds": round(time.perf_counter() - started, 1),
            },
            "text": {
                "description": "the generated text embedded with the app's embedder ('title. heading. text')"
                + (
                    f"; {embedded_texts:,} embedded, the others real text residuals on their own sources"
                    if embedded_texts
                    else ""
                ),
                "embedded_texts": embedded_texts,
            },
            "small": {"description": "stress case: isotropic Gaussian noise", "noise_norm": SMALL_NOISE},
            "calibrated": {"description": "stress case: isotropic Gaussian noise", "noise_norm": CALIBRATED_NOISE},
        }
        extra_queries = title_questions(real, recall_queries, random.Random(0))
        query_vectors = np.stack([embedder.embed_query(query) for query in [*QUESTIONS, *extra_queries]])
        for size, model in corpora_to_build(sizes, models, len(real), quick=quick):
            print(f"Corpus of {size:,} sections ({model}): loading ...", file=sys.stderr, flush=True)
            corpus_started = time.perf_counter()
            corpus, vectors, ids = load_corpus(conn, size, real, vector_models, model, embedded_texts=embedded_texts)
            corpus["geometry"] = geometry(vectors, query_vectors)
            print(f"  loaded in {corpus['load_seconds']} s; geometry {corpus['geometry']}", file=sys.stderr, flush=True)
            corpus.update(
                build_indexes(
                    conn, size, definitions[HNSW_INDEX], definitions[GIN_INDEX], "8GB" if size >= LARGE_SIZE else None
                )
            )
            print(
                f"  HNSW {corpus['hnsw_params']} built in {corpus['hnsw_build_seconds']} s "
                f"({corpus['hnsw_index_mb']} MB), GIN in {corpus['gin_build_seconds']} s",
                file=sys.stderr,
                flush=True,
            )
            corpus["settle_seconds"] = settle(conn)
            measured_at = time.perf_counter()
            corpus.update(
                measure(
                    size,
                    1 if size >= LARGE_SIZE else rounds,
                    # Exact scans take half a second each at 100k, seconds at 1M: fewer of them there and in quick.
                    20 if size >= LARGE_SIZE else QUICK_EXACT_QUERIES if quick else 10**6,
                    random.Random(size),
                    ef_values=ef_values,
                    extra_queries=extra_queries,
                    vectors=vectors,
                    ids=ids,
                    embedder=embedder,
                    compare=compare,
                )
            )
            corpus["measure_seconds"] = round(time.perf_counter() - measured_at, 1)
            corpus["total_seconds"] = round(time.perf_counter() - corpus_started, 1)
            results["corpora" if corpus["model"] in STRESS_MODELS else "realistic_corpora"].append(corpus)
            print(_summary(corpus, settings.HNSW_EF_SEARCH, ef_values), file=sys.stderr, flush=True)
            write_json(output, results)


def _summary(corpus: dict[str, Any], default_ef: int, ef_values: Sequence[int]) -> str:
    ef = default_ef if default_ef in ef_values else ef_values[0]
    point = corpus["hnsw"][str(ef)]
    hnsw = corpus["hnsw"]
    recalls = ", ".join(
        f"{value}: {hnsw[str(value)]['recall_at_10']:.3f} / {hnsw[str(value)]['recall_at_10_all']:.3f}"
        for value in ef_values
    )
    return (
        f"  embed new {corpus['embedding']['cold']['p50']:.2f} ms; per film new "
        f"{corpus['per_film']['cold']['p50']:.2f} / cached {corpus['per_film']['cached']['p50']:.2f} ms; cross-film "
        f"new {corpus['cross_film_end_to_end']['cold']['p50']:.2f} / cached "
        f"{corpus['cross_film_end_to_end']['cached']['p50']:.2f} ms; HNSW ef {ef} "
        f"{point['hybrid_ms']['p50']:.2f} ms recall@10 {point['recall_at_10']:.3f} (its neighbours' distances "
        f"{point['distance_ratio_at_10']:.4f}x the true ones'); exact "
        f"{corpus['exact']['hybrid_ms']['p50']:.1f} ms ({corpus['exact_over_hnsw']}x)\n"
        f"  recall@10 (questions/all) by ef_search: {recalls}"
    )


if __name__ == "__main__":
    main()
