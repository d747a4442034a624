"""Retrieval on the real catalogue: the Wikipedia films and the Wikidata catalogue, imported and embedded by the
worker as `make run` does, not a synthetic corpus (`python -m benchmarks.catalogue`).

Reads the development database (var/, `FLICKORA_DATA_DIR` to point elsewhere, or `--database-url`), so run it once
`python manage.py import_status` says the import is done; with `--bench` (which `python -m benchmarks --large`
runs), a database of the benchmarks' own under var/bench, imported by the worker the first time. Measures its rows;
the HNSW index rebuilt (REINDEX, the time and the size); recall@10 of the app's nearest-neighbour statement
(VECTOR_SQL) at the default `ef_search` against an exact scan of the same statement (the index switched off), over
the 50 cross-film questions and 50 about named films; and per-film and cross-film retrieval through the app
(`search_movie`, `search_all`, the retrieval cache off, each question new), p50 and p99. Writes
bench/catalogue.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

from benchmarks.corpora import HNSW_INDEX
from benchmarks.environment import (
    BASE_DB,
    BENCH_DIR,
    ROOT,
    admin_connection,
    bench_env,
    database_url,
    machine,
    manage,
    prepare_base,
    recreate_database,
)
from benchmarks.measure import percentiles, timed
from benchmarks.questions import FILM_QUESTIONS, QUESTIONS
from benchmarks.retrieval import nearest

# With --bench: the whole catalogue in a database of the benchmarks' own (var/bench), made once.
BENCH_DB = "flickora_catalogue"


def setup(database_url: str | None, *, bench_films: int | None) -> None:
    if bench_films is not None:
        os.environ.update(bench_env(DATABASE_URL=prepare_bench_catalogue(bench_films)))
    else:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flickora.settings")
        os.environ.setdefault("DEBUG", "1")  # the development database's own settings, as `make run` has them
        os.environ.setdefault("FLICKORA_DATA_DIR", str(ROOT / "var"))
        if database_url:
            os.environ["DATABASE_URL"] = database_url
    os.environ["RETRIEVAL_CACHE_SIZE"] = "0"
    import django

    django.setup()


def prepare_bench_catalogue(films: int) -> str:
    """BENCH_DB with the 761 films and `films` of the Wikidata catalogue (0: all), imported as `make run` does: the
    import queued, then the worker until the queue is empty (an hour here for all of them, seconds when nothing
    changed)."""
    prepare_base()
    with admin_connection() as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone()
    if not exists:
        recreate_database(BENCH_DB, template=BASE_DB)
    manage("migrate", "--noinput", database=BENCH_DB)
    # The app's own idempotent import: nothing to do when the last run planned the same films, a resumed run when
    # one was cut short, the difference otherwise.
    print(f"Importing the catalogue into {BENCH_DB} if needed (an hour or more for all of it)", file=sys.stderr)
    manage("import_movies", "--background", "--catalogue", str(films), database=BENCH_DB)
    manage("run_worker", "--batch", "--no-startup-delay", "--no-reload", database=BENCH_DB)
    return database_url(BENCH_DB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="Another database than the development one.")
    parser.add_argument(
        "--bench",
        type=int,
        nargs="?",
        const=0,
        metavar="N",
        help="Measure a catalogue of the benchmarks' own instead (var/bench; `python -m benchmarks --large` runs "
        "this): imported by the worker the first time, an hour or more here; N: only the first N catalogue films.",
    )
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of the questions for the latencies.")
    parser.add_argument("--no-reindex", action="store_true", help="Do not rebuild the HNSW index.")
    parser.add_argument("--output", default=str(BENCH_DIR / "catalogue.json"))
    args = parser.parse_args()
    setup(args.database_url, bench_films=args.bench)

    from django.conf import settings
    from django.db import connection

    from reports.embeddings import embed_query, get_embedder
    from reports.search import search_all, search_movie

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM reports_movie), (SELECT count(*) FROM reports_moviesection),"
            " (SELECT count(embedding) FROM reports_moviesection), (SELECT count(*) FROM reports_filmfacts)"
        )
        films, sections, embedded, with_facts = cursor.fetchone()
        build_seconds = None
        if not args.no_reindex:
            started = time.perf_counter()
            cursor.execute(f"REINDEX INDEX {HNSW_INDEX}")
            build_seconds = round(time.perf_counter() - started, 1)
        cursor.execute("SELECT pg_relation_size(%s::regclass)", [HNSW_INDEX])
        index_mb = round(cursor.fetchone()[0] / 2**20, 1)
        cursor.execute("SELECT id, title FROM reports_movie ORDER BY id")
        catalogue = cursor.fetchall()
    print(f"{films:,} films, {sections:,} sections ({embedded:,} embedded); HNSW {index_mb} MB", file=sys.stderr)

    rng = random.Random(0)
    named = [f"Who directed {title}?" for _, title in rng.sample(catalogue, 50)]

    recalls = {"cross-film questions": [], "questions about named films": []}
    for label, questions in (("cross-film questions", QUESTIONS), ("questions about named films", named)):
        for question in questions:
            vector = embed_query(question)
            truth = {row[0] for row in nearest(vector, ef=None)[1]}
            found = {row[0] for row in nearest(vector, ef=settings.HNSW_EF_SEARCH)[1]}
            recalls[label].append(len(truth & found) / len(truth))

    cross, per_film = [], []
    for round_number in range(args.rounds):
        for number, question in enumerate(QUESTIONS):
            # New questions: the embedder's cache emptied before each, so each is embedded, then searched.
            get_embedder().cache.clear()
            cross.append(timed(lambda q=question: search_all(query=q))[0])
            movie_id = catalogue[(number * 7919 + round_number) % len(catalogue)][0]
            get_embedder().cache.clear()
            film_question = FILM_QUESTIONS[number % len(FILM_QUESTIONS)]
            per_film.append(timed(lambda m=movie_id, q=film_question: search_movie(movie_id=m, query=q))[0])

    result = {
        "machine": machine(),
        "films": films,
        "sections": sections,
        "embedded_sections": embedded,
        "films_with_facts": with_facts,
        "hnsw_build_seconds": build_seconds,
        "hnsw_index_mb": index_mb,
        "ef_search": settings.HNSW_EF_SEARCH,
        "recall_at_10": {label: round(sum(values) / len(values), 4) for label, values in recalls.items()},
        "cross_film_ms": percentiles(cross),
        "per_film_ms": percentiles(per_film),
    }
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{films:,} films, {sections:,} sections; HNSW rebuilt in {build_seconds} s, {index_mb} MB\n"
        f"recall@10 at ef_search {settings.HNSW_EF_SEARCH}: "
        + ", ".join(f"{label} {value}" for label, value in result["recall_at_10"].items())
        + f"\ncross-film (a new question, embedded and searched): p50 {result['cross_film_ms']['p50']} ms, "
        f"p99 {result['cross_film_ms']['p99']} ms\nper film (the same): p50 {result['per_film_ms']['p50']} ms, "
        f"p99 {result['per_film_ms']['p99']} ms"
    )


if __name__ == "__main__":
    main()
