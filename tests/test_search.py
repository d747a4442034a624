import base64
import importlib
import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import Future
from io import StringIO
from pathlib import Path

import numpy as np
import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reports import search
from reports.embeddings import embed_query, embed_query_soon, get_embedder
from reports.generations import GENERATION_SQL
from reports.models import Movie, MovieSection
from reports.search import (
    CONFIGURE_SQL,
    FILM_SQL,
    FUSION,
    HANDED_FILMS,
    ITERATIVE_SCAN,
    LEXICAL_ONLY,
    VECTOR_CANDIDATES,
    VECTOR_FILMS_SQL,
    VECTOR_ONLY,
    Fusion,
    LexicalEvidence,
    QuestionVector,
    _candidates,
    _configuration,
    _lexical_statements,
    _lexical_then_vector,
    _vector_statements,
    cached_search,
    configure_cross_film_search,
    film_params,
    lexical_evidence,
    run_pipelined,
    run_prepared,
    search_all,
    search_movie,
    vector_literal,
    vector_params,
)
from reports.search import explain as search_explain

ROOT = Path(__file__).resolve().parent.parent


def explain(sql: str, params: dict) -> str:
    with connection.cursor() as cursor:
        configure_cross_film_search(cursor, 64)
        return "\n".join(search_explain(cursor, sql, params))


def test_per_film_search_ranks_that_films_sections(sample_movies):
    odyssey = sample_movies["2001: A Space Odyssey"]
    count = MovieSection.objects.filter(movie=odyssey).count()
    result = search_movie(movie_id=odyssey.pk, query="the computer HAL", k=50)
    assert len(result.hits) == count
    assert {hit.movie_id for hit in result.hits} == {odyssey.pk}
    scores = [hit.score for hit in result.hits]
    assert scores == sorted(scores, reverse=True)


def test_per_film_search_returns_min_k_n_rows_with_the_hnsw_index_present(sample_movies, populated):
    for key in ("Vertigo (film)", "2001: A Space Odyssey"):
        movie = sample_movies[key]
        n = MovieSection.objects.filter(movie=movie).count()
        for k in (1, 2, 6):
            assert len(search_movie(movie_id=movie.pk, query="who is in it", k=k).hits) == min(k, n)
    plan = explain(FILM_SQL, film_params(query="cast", vector=[0.0] * 384, movie_ids=[1], places=6))
    assert "section_embedding_hnsw" not in plan


def test_the_film_statement_reads_each_films_best_sections_in_order(populated):
    """FILM_SQL scores every section of the films and returns the best `places` of each, best first, film by film:
    the first `places` of what it returns with room for all."""
    films = list(Movie.objects.filter(slug__startswith="synthetic-").order_by("pk").values_list("pk", flat=True)[:3])
    query = "Synthetic section number 12"
    vector = embed_query(query)

    def best(places: int, fusion: Fusion = FUSION) -> list[tuple]:
        params = film_params(query=query, vector=vector, movie_ids=films, places=places, fusion=fusion)
        return run_prepared(FILM_SQL, params)

    every = best(100)
    assert [row[1] for row in every] == [film for film in films for _ in range(10)]  # 10 sections a film
    for film in films:
        scores = [row[9] for row in every if row[1] == film]
        assert scores == sorted(scores, reverse=True)
    assert best(3) == [row for film in films for row in [r for r in every if r[1] == film][:3]]
    # Weighed by the similarity alone, a section scores its similarity; by its BM25 alone (scaled by its film's
    # best), the best section of a film that has the question's words scores 1.
    assert [row[9] for row in best(100, VECTOR_ONLY)] == [row[8] for row in best(100, VECTOR_ONLY)]
    assert [row[9] for row in best(1, LEXICAL_ONLY)] == [1.0, 1.0, 1.0]


def test_cross_film_search_finds_the_film_a_question_is_about(sample_movies):
    result = search_all(query="Hitchcock thriller about a detective with a fear of heights in San Francisco")
    assert result.hits[0].movie_title == "Vertigo"
    assert result.hits[0].similarity > 0.3
    result = search_all(query="an aging couple visits their children in Tokyo")
    assert result.hits[0].movie_title == "Tokyo Story"
    assert set(result.timings) == {"embed", "search"}


def test_cross_film_search_keeps_a_few_sections_per_film(sample_movies, populated):
    result = search_all(query="Synthetic section number", k=10, per_film=2)
    per_film: dict[int, int] = {}
    for hit in result.hits:
        per_film[hit.movie_id] = per_film.get(hit.movie_id, 0) + 1
    assert max(per_film.values()) == 2
    assert len(result.hits) == 10


def test_full_text_hits_join_the_vector_hits(sample_movies):
    result = search_all(query="Zacharias Kunuk", k=6)
    top = result.hits[0]
    assert top.movie_title == "Atanarjuat: The Fast Runner"
    assert (top.vector_rank is not None, top.text_rank) == (True, 1)


def test_the_cross_film_query_uses_the_hnsw_index_on_a_populated_table(populated):
    params = vector_params(MovieSection.objects.exclude(embedding=None).first().embedding, [1, 2])
    plan = explain(VECTOR_FILMS_SQL, params)
    assert "Index Scan using section_embedding_hnsw on reports_moviesection" in plan


def test_the_cross_film_query_uses_the_hnsw_index_on_a_small_table_too(sample_movies):
    params = vector_params(MovieSection.objects.first().embedding)
    assert MovieSection.objects.count() < 100
    assert "Index Scan using section_embedding_hnsw on reports_moviesection" in explain(VECTOR_FILMS_SQL, params)


def test_the_search_statements_are_planned_once_per_connection(sample_movies):
    search_all(query="a detective afraid of heights")
    search_all(query="an aging couple visits their children in Tokyo")
    search_movie(movie_id=sample_movies["Vertigo (film)"].pk, query="who directed it")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT CASE WHEN statement LIKE '%%hnsw.ef_search%%' THEN 'configure' "
            "WHEN statement LIKE 'SELECT generation%%' THEN 'generation' "
            "WHEN statement LIKE '%%vector_hits%%' THEN 'vector' "
            "WHEN statement LIKE '%%lexical_postings%%' THEN 'lexical' "
            "WHEN statement LIKE '%%film_sections%%' THEN 'sections' END AS kind, generic_plans, custom_plans "
            "FROM pg_prepared_statements ORDER BY kind, generic_plans"
        )
        # Across films the configuration, the corpus's generation, the lexical and the vector statements (twice
        # each; the configuration and the vector four times, since the sample has fewer sections than the vector
        # statement asks for, so each search tries again with the iterative scan) and the sections one (twice, and
        # once per film), each prepared once, on generic plans.
        assert cursor.fetchall() == [
            ("configure", 4, 0),
            ("generation", 2, 0),
            ("lexical", 2, 0),
            ("sections", 3, 0),
            ("vector", 4, 0),
        ]


def test_the_hnsw_index_is_built_with_the_seeds_parameters(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'section_embedding_hnsw'")
        (definition,) = cursor.fetchone()
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        (version,) = cursor.fetchone()
    assert definition == (
        "CREATE INDEX section_embedding_hnsw ON public.reports_moviesection "
        "USING hnsw (embedding vector_cosine_ops) WITH (m='32', ef_construction='128')"
    )
    assert version.startswith("0.8.")


# What a vector weighs in its row (bytes: the length word, the dimensions and a reserved word, then the floats), and
# the row size above which PostgreSQL moves values out of line.
VECTOR_BYTES = 4 + 2 + 2 + 4 * 384
TOAST_THRESHOLD = 2032


def test_section_vectors_stay_in_their_rows(sample_movies):
    """Storage MAIN (migration 0013): the text and the lexemes make room, the vector is read with its row."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attstorage FROM pg_attribute WHERE attrelid = 'reports_moviesection'::regclass "
            "AND attname = 'embedding'"
        )
        (storage,) = cursor.fetchone()
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE pg_column_toast_chunk_id(embedding) IS NOT NULL), "
            "count(*) FILTER (WHERE pg_column_toast_chunk_id(content) IS NOT NULL) "
            "FROM reports_moviesection WHERE embedding IS NOT NULL"
        )
        sections, vectors_out_of_line, texts_out_of_line = cursor.fetchone()
    assert storage == "m"
    assert sections == MovieSection.objects.exclude(embedding=None).count() > 0
    assert vectors_out_of_line == 0
    # Rows wide enough that some value had to leave them: their text did.
    assert texts_out_of_line > 0


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_vectors_stored_out_of_line_into_their_rows():
    """Rows written under pgvector's default storage (EXTERNAL) have their vectors in the TOAST table; migration
    0013's rewrite brings them into their rows, and its reverse sends them back."""
    migration = importlib.import_module("reports.migrations.0013_section_vectors_in_their_rows")
    # Text that does not compress (pglz keeps a compressed value only when it saves a quarter, which random base64
    # never does), shorter than the vector, so the vector is the widest value of a row over the threshold.
    text = base64.b64encode(random.Random(13).randbytes(900)).decode()
    assert VECTOR_BYTES + len(text) > TOAST_THRESHOLD > VECTOR_BYTES
    vector = vector_literal([0.05] * 384)

    def out_of_line() -> tuple[int, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FILTER (WHERE pg_column_toast_chunk_id(embedding) IS NOT NULL), "
                "count(*) FILTER (WHERE pg_column_toast_chunk_id(content) IS NOT NULL) FROM storage_probe"
            )
            return cursor.fetchone()

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE storage_probe (id int, embedding vector(384), content text)")
    try:
        assert migration.store_vectors(connection, "storage_probe", "embedding", "MAIN") is False  # empty: no rewrite
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE storage_probe ALTER COLUMN embedding SET STORAGE EXTERNAL")
            cursor.execute(
                "INSERT INTO storage_probe SELECT n, %s::vector, %s FROM generate_series(1, 5) n", [vector, text]
            )
        assert out_of_line() == (5, 0)
        assert migration.store_vectors(connection, "storage_probe", "embedding", "MAIN") is True
        assert out_of_line() == (0, 5)
        assert migration.store_vectors(connection, "storage_probe", "embedding", "EXTERNAL") is True
        assert out_of_line() == (5, 0)
        with pytest.raises(ValueError, match="unknown storage 'PLAIN'"):
            migration.store_vectors(connection, "storage_probe", "embedding", "PLAIN")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE storage_probe")


SHOW_SETTINGS = (
    "SELECT current_setting('hnsw.ef_search'), current_setting('enable_seqscan'), "
    "current_setting('hnsw.iterative_scan'), '[1]'::vector IS NOT NULL"
)


@pytest.mark.django_db(transaction=True)
def test_the_vector_statements_settings_hold_for_its_round_trip_and_end_with_it():
    """Outside a transaction (autocommit, as the app's searches run), the settings sent with the vector statement
    hold for it (the pipeline's one Sync makes the two statements one implicit transaction) and leave nothing
    behind: no BEGIN and COMMIT round trips, and no setting for the connection's next statement."""
    assert connection.get_autocommit()
    before = run_prepared(SHOW_SETTINGS, {})
    assert before == [("40", "on", "off", True)]
    _, inside = run_pipelined([(CONFIGURE_SQL, _configuration(77, ITERATIVE_SCAN)), (SHOW_SETTINGS, {})])
    assert inside == [("77", "off", "relaxed_order", True)]
    assert run_prepared(SHOW_SETTINGS, {}) == before
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE

    # The whole search leaves the connection as it found it (the sample films, or none once a test before this one
    # has flushed the tables).
    result = search_all(query="a film about the sea", vector=np.full(384, 384**-0.5, dtype=np.float32), k=6)
    assert len(result.hits) == min(6, MovieSection.objects.exclude(embedding=None).count())
    assert run_prepared(SHOW_SETTINGS, {}) == before
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    # A new question's too, whose lexical statement leaves its candidates to the vector statement sent behind it:
    # they are gone with the pipeline's transaction.
    get_embedder().cache.clear()
    search.result_cache.clear()
    before_runs = _runs()
    result = search_all(query="a lighthouse keeper alone on a rock", k=6)
    assert _runs()["lexical"] == before_runs.get("lexical", 0) + 1
    assert len(result.hits) == min(6, MovieSection.objects.exclude(embedding=None).count())
    assert run_prepared(SHOW_SETTINGS, {}) == before
    assert run_prepared(f"SELECT current_setting('{HANDED_FILMS}', true)", {}) == [("",)]
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_a_scan_cut_short_by_deleted_sections_goes_on_past_them(populated):
    """Index entries of deleted sections stay until a vacuum and take places among the `ef_search` entries the HNSW
    scan stops at. The first try scans without pgvector's iterative scan; when it brings back fewer than
    VECTOR_CANDIDATES live sections, the search runs the statement again with it, which goes on past them."""
    from reports.models import Movie

    vector = np.asarray(embed_query("a lighthouse keeper alone on a rock"), dtype=np.float32)
    # 100 sections nearer the question than any other, deleted: invisible to this transaction, still in the index.
    noise = np.random.default_rng(5).normal(0, 1e-3, (100, 384)).astype(np.float32)
    movie = Movie.objects.create(slug="deleted", title="Deleted", source_text="-", source_hash="-")
    MovieSection.objects.bulk_create(
        MovieSection(
            movie=movie, position=n, heading="-", content="-", content_hash=f"d{n}", embedded_hash=f"d{n}", embedding=v
        )
        for n, v in enumerate(noise + vector)
    )
    movie.delete()

    def statement(iterative_scan: str) -> list[tuple]:
        configure = _configuration(40, iterative_scan)
        return run_pipelined([(CONFIGURE_SQL, configure), (VECTOR_FILMS_SQL, vector_params(vector))])[1]

    assert statement("off") == []  # the 40 entries the scan stopped at are all deleted sections
    again = statement(ITERATIVE_SCAN)
    assert sum(nearest for _, _, nearest in again) == VECTOR_CANDIDATES
    found = _candidates(LexicalEvidence({}, []), vector, 40)
    assert [(c.movie_id, c.similarity) for c in found] == [(movie_id, similarity) for movie_id, similarity, _ in again]


def test_test_hnsw_index_reports_the_index_on_a_populated_table(populated):
    out = StringIO()
    call_command("test_hnsw_index", "--runs", "3", stdout=out)
    text = out.getvalue()
    assert "Index:        HNSW index used" in text
    assert "Plan line:    Index Scan using section_embedding_hnsw on reports_moviesection" in text
    assert "ef_search:    150" in text
    rows = MovieSection.objects.count()
    assert f"Table:        reports_moviesection: {rows} rows, {rows} with embeddings" in text
    assert "over 3 runs" in text


def test_test_hnsw_index_speaks_json_and_honours_ef_search(populated):
    out = StringIO()
    call_command("test_hnsw_index", "--runs", "2", "--ef-search", "100", "--json", "--query", "war", stdout=out)
    findings = json.loads(out.getvalue())
    assert (findings["index_used"], findings["ef_search"], findings["runs"], findings["query"]) == (True, 100, 2, "war")
    assert findings["query_ms_min"] <= findings["query_ms_p50"] <= findings["query_ms_max"]


def test_test_hnsw_index_fails_when_the_index_is_dropped(populated):
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX section_embedding_hnsw")
    out = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("test_hnsw_index", "--runs", "1", stdout=out)
    assert exit_info.value.code == 1
    assert "Index:        NOT used: sequential scan" in out.getvalue()
    assert "Plan line:    Seq Scan on reports_moviesection" in out.getvalue()


def test_the_seeds_shell_form_runs_the_same_command(sample_movies):
    # The sample films are committed (session set-up), so a second process sees them.
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_the_test_database(),
        "DJANGO_SETTINGS_MODULE": "flickora.settings",
    }
    direct = subprocess.run(
        [sys.executable, "manage.py", "test_hnsw_index", "--runs", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    with open(ROOT / "scripts" / "test_hnsw_index.py") as script:
        shell = subprocess.run(
            [sys.executable, "manage.py", "shell"], stdin=script, cwd=ROOT, env=env, capture_output=True, text=True
        )
    # The planner's choice on this small table can change between the two runs (autovacuum's ANALYZE), so each
    # run is checked against its own finding: exit status 0 exactly when it found the index used.
    for run in (direct, shell):
        assert "ef_search:    150" in run.stdout, run.stderr[-1500:]
        assert "Verdict:" in run.stdout
        assert run.returncode == (0 if "Index:        HNSW index used" in run.stdout else 1)


def database_url_of_the_test_database() -> str:
    settings = connection.settings_dict
    return f"postgresql://postgres@/{settings['NAME']}?host={settings['HOST']}"


def _runs() -> dict[str, int]:
    """How many times each retrieval statement has run on this connection."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT CASE WHEN statement LIKE '%%vector_hits%%' THEN 'vector' "
            "WHEN statement LIKE '%%lexical_postings%%' THEN 'lexical' ELSE 'other' END AS kind, "
            "sum(generic_plans + custom_plans) FROM pg_prepared_statements GROUP BY kind"
        )
        return {kind: int(runs) for kind, runs in cursor.fetchall()}


class _ObservedVector(Future):
    """A question's vector that notes, when the search asks for it, how often each statement had run."""

    def __init__(self, vector) -> None:
        super().__init__()
        self.set_result(vector)
        self.runs_then: dict[str, int] = {}

    def result(self, timeout=None):
        self.runs_then = self.runs_then or _runs()
        return super().result(timeout)


def test_the_lexical_statement_runs_before_the_vector_is_needed(sample_movies):
    question = "a detective afraid of heights in San Francisco"
    expected = search_all(query=question, vector=embed_query(question))
    before = _runs()
    observed = _ObservedVector(embed_query(question))
    result = search_all(query=question, vector=observed)
    after = _runs()
    assert (observed.runs_then["lexical"], observed.runs_then["vector"]) == (before["lexical"] + 1, before["vector"])
    # The vector statement twice: the sample has fewer sections than it asks for (see `_candidates`).
    assert (after["lexical"], after["vector"]) == (before["lexical"] + 1, before["vector"] + 2)
    assert [(hit.section_id, hit.score) for hit in result.hits] == [
        (hit.section_id, hit.score) for hit in expected.hits
    ]
    assert result.hits[0].movie_title == "Vertigo"


def test_the_question_is_embedded_while_the_server_runs_the_lexical_statement(sample_movies, monkeypatch):
    """A new question's search (`_lexical_then_vector`): the lexical statements are on the server before the
    embedding begins, their rows read after."""
    question = "a detective afraid of heights in San Francisco"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    seen = []
    embed = search.embed_query

    def work(text: str):
        with psycopg.connect(database_url_of_the_test_database(), autocommit=True) as observer:
            for _ in range(1000):  # until the server has begun the statement: sent before this work, it will
                query, state = observer.execute(
                    "SELECT query, state FROM pg_stat_activity WHERE pid = %s", [backend]
                ).fetchone()
                if "terms AS MATERIALIZED" in query:  # the lexical statement (the text is cut at 1 kB)
                    break
                time.sleep(0.005)
        seen.append(("terms AS MATERIALIZED" in query, state))
        return embed(text)

    get_embedder().cache.clear()
    monkeypatch.setattr(search, "embed_query", work)
    evidence, done, _, _ = _lexical_then_vector(question, None)
    monkeypatch.undo()
    assert done.tolist() == embed_query(question).tolist()
    assert seen == [(True, "active")]
    assert evidence == lexical_evidence(question)
    assert evidence.films != []


def test_a_new_questions_vector_statement_takes_the_lexical_candidates_on_the_server(
    sample_movies, populated, monkeypatch
):
    """A new question's vector statement is sent behind the lexical one before its rows are read, and reads the
    candidate films the lexical statement left in its transaction: the same candidates, with the same evidence, as
    the two statements run one after the other with the films sent from here; among them films the vector alone does
    not reach."""
    question = "Which film has synthetic section number 1234?"  # a word of one synthetic section, far from the rest
    get_embedder().cache.clear()
    moments: list[tuple[str, float]] = []

    def noted(name: str, function):
        def run(*args, **kwargs):
            result = function(*args, **kwargs)
            moments.append((name, time.perf_counter()))
            return result

        return run

    monkeypatch.setattr(search, "embed_query", noted("embedded", search.embed_query))
    monkeypatch.setattr(search, "run_pipelined", noted("pipeline", search.run_pipelined))
    lexical, vector, found, ready = _lexical_then_vector(question, None)
    # When the vector was ready: after the embedding, before the round trip with the vector statement was over.
    assert [name for name, _ in moments] == ["embedded", "pipeline"]
    assert moments[0][1] <= ready <= moments[1][1]
    monkeypatch.undo()
    assert vector.tolist() == embed_query(question).tolist()
    assert lexical == lexical_evidence(question)
    by_vector = {row[0] for row in run_pipelined(_vector_statements(vector, [], 150, "off"))[-1]}
    only_lexical = set(lexical.films) - by_vector
    assert only_lexical
    assert {c.movie_id for c in found} == by_vector | set(lexical.films)
    assert found == _candidates(lexical, vector, None)

    # A question none of whose words any section has: the vector's films alone. (The candidates of the question
    # before are still in this test's transaction: the lexical statement sets the empty list over them.)
    lexical, vector, found, _ = _lexical_then_vector("zxqv wqpz", None)
    assert lexical == LexicalEvidence({}, [], lexical.generation)
    assert [c.movie_id for c in found] == [
        row[0] for row in run_pipelined(_vector_statements(vector, [], 150, "off"))[-1]
    ]
    assert found == _candidates(lexical, vector, None)


def test_the_search_is_the_same_with_prepared_statements_off(sample_movies, populated):
    """DB_PREPARED_STATEMENTS=0 (behind a pooler that cannot keep them) leaves psycopg's `prepare_threshold` unset:
    the statements then run unprepared, a new question's two in one pipeline still, with the same results."""
    question = "Which film has synthetic section number 1234?"
    get_embedder().cache.clear()
    search.result_cache.clear()
    prepared = search_all(query=question)
    runs_before = _runs()
    raw = connection.connection
    threshold, raw.prepare_threshold = raw.prepare_threshold, None
    try:
        get_embedder().cache.clear()
        search.result_cache.clear()
        unprepared = search_all(query=question)
    finally:
        raw.prepare_threshold = threshold
    assert _runs() == runs_before  # no prepared statement ran
    assert [(hit.section_id, hit.score) for hit in unprepared.hits] == [
        (hit.section_id, hit.score) for hit in prepared.hits
    ]
    assert [(film.movie_id, film.score) for film in unprepared.films] == [
        (film.movie_id, film.score) for film in prepared.films
    ]


def test_a_failed_embedding_beside_the_lexical_statement_leaves_the_connection_usable(sample_movies, monkeypatch):
    def work() -> None:
        raise RuntimeError("model gone")

    with pytest.raises(RuntimeError, match="model gone"):
        run_pipelined(_lexical_statements("a detective afraid of heights"), meanwhile=work)
    # A new question's search too, which would have sent the vector statement behind the lexical one.
    get_embedder().cache.clear()
    monkeypatch.setattr(search, "embed_query", lambda text: work())
    with pytest.raises(RuntimeError, match="model gone"):
        search_all(query="a detective afraid of heights in San Francisco")
    monkeypatch.undo()
    result = search_all(query="a detective afraid of heights in San Francisco")
    assert result.hits[0].movie_title == "Vertigo"


def test_a_question_is_embedded_soon_and_a_cached_one_at_once(db):
    get_embedder().cache.clear()
    pending = embed_query_soon("who directed the film about the Moon")
    vector = pending.result(timeout=60)
    cached = embed_query_soon("who directed the film about the Moon")
    assert cached.done()
    assert cached.result() is vector
    assert vector.shape == (384,)


def test_a_question_vector_is_sent_in_binary_as_the_values_it_holds(db):
    values = [0.5, -1.25, 3.0, 0.1]
    rows = run_prepared(
        "SELECT %(vector)s::vector::text, %(vector)s::vector = %(text)s::vector",
        {"vector": QuestionVector(values), "text": vector_literal(values)},
    )
    assert rows == [("[0.5,-1.25,3,0.1]", True)]
    assert str(QuestionVector(values)) == "[0.5,-1.25,3,0.1]"
    with connection.cursor() as cursor:  # a cursor that binds on the client gets the text form
        cursor.execute("SELECT %s::vector::text", [QuestionVector(values)])
        assert cursor.fetchone() == ("[0.5,-1.25,3,0.1]",)


def test_a_question_asked_again_is_answered_from_the_cache_until_the_films_change(sample_movies):
    question = "an aging couple visits their children in Tokyo"
    first = search_all(query=question)
    before = _runs()
    again = search_all(query=question)
    assert _runs() == before  # no retrieval statement ran
    assert [(hit.section_id, hit.score) for hit in again.hits] == [(hit.section_id, hit.score) for hit in first.hits]
    assert first.hits[0].movie_title == "Tokyo Story"
    # A write to the films moves the corpus's generation: the next search runs, and sees it.
    sample_movies["Tokyo Story"].delete()
    after = search_all(query=question)
    assert _runs()["lexical"] == before["lexical"] + 1
    assert "Tokyo Story" not in {hit.movie_title for hit in after.hits}


def test_a_new_question_costs_the_cache_check_no_query(sample_movies):
    """The cache is asked for the corpus's generation only when it holds the question: a new one goes straight to
    the lexical statement, which reads the generation in its own round trip."""
    question = "a village hires samurai against bandits"
    with CaptureQueriesContext(connection) as queries:
        assert cached_search(query=question) is None
    assert len(queries) == 0
    first = search_all(query=question)
    with CaptureQueriesContext(connection) as queries:
        again = cached_search(query=question)
    assert [query["sql"] for query in queries] == [GENERATION_SQL]
    assert [hit.section_id for hit in again.hits] == [hit.section_id for hit in first.hits]


def test_the_cache_can_be_turned_off(sample_movies, settings):
    settings.RETRIEVAL_CACHE_SIZE = 0
    search_all(query="a samurai film")
    before = _runs()
    search_all(query="a samurai film")
    assert _runs()["lexical"] == before["lexical"] + 1


def test_every_write_to_the_films_moves_the_corpus_generation(sample_movies):
    def generation() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT generation FROM reports_corpus")
            return cursor.fetchone()[0]

    start = generation()
    MovieSection.objects.filter(movie=sample_movies["Vertigo (film)"]).update(embedded_hash="")
    updated = generation()
    sample_movies["Duck Soup"].save()
    assert start < updated < generation()
