import json
import statistics
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction

from reports.embeddings import embed_query, get_embedder
from reports.search import (
    VECTOR_FILMS_SQL,
    configure_cross_film_search,
    explain,
    lexical_evidence,
    run_prepared,
    vector_params,
)

INDEX_NAME = "section_embedding_hnsw"
TABLE = "reports_moviesection"


class Command(BaseCommand):
    help = (
        "EXPLAIN ANALYZE the cross-film retrieval query the app runs, and say whether it uses the HNSW index and how "
        "fast it is. Exits 1 when the index is not used, so a deploy can gate on it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--query", default="a thriller about obsession and a woman who looks like another")
        parser.add_argument("--ef-search", type=int, default=settings.HNSW_EF_SEARCH)
        parser.add_argument("--runs", type=int, default=10, help="Timed runs of the query (default 10).")
        parser.add_argument("--json", action="store_true", help="Print the findings as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        _ = get_embedder().model  # load first, so that the query's own embedding time is what gets reported
        load_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        vector = embed_query(options["query"])
        embed_ms = (time.perf_counter() - started) * 1000
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*), count(embedding) FROM {TABLE}")  # noqa: S608 (constant)
            rows, embedded_rows = cursor.fetchone()
        # The statement with the question's vector, given the films the lexical one found.
        params = vector_params(vector, lexical_evidence(options["query"]).films)
        with transaction.atomic(), connection.cursor() as cursor:
            configure_cross_film_search(cursor, options["ef_search"])
            cursor.execute("SHOW hnsw.ef_search")
            ef_search = int(cursor.fetchone()[0])
            plan = _as_json(explain(cursor, VECTOR_FILMS_SQL, params, "ANALYZE, BUFFERS, FORMAT JSON")[0])[0]
            plan_text = explain(cursor, VECTOR_FILMS_SQL, params, "ANALYZE, BUFFERS")
            timings = []
            for _ in range(max(options["runs"], 1)):
                run_started = time.perf_counter()
                run_prepared(VECTOR_FILMS_SQL, params)
                timings.append((time.perf_counter() - run_started) * 1000)

        index_used = any(node.get("Index Name") == INDEX_NAME for node in _nodes(plan["Plan"]))
        scan_line = next(
            (line.strip() for line in plan_text if INDEX_NAME in line)
            if index_used
            else (line.strip() for line in plan_text if f"Seq Scan on {TABLE}" in line),
            "",
        )
        findings = {
            "index": INDEX_NAME,
            "index_used": index_used,
            "plan_line": scan_line.lstrip("-> ").strip(),
            "rows": rows,
            "embedded_rows": embedded_rows,
            "ef_search": ef_search,
            "query": options["query"],
            "model_load_ms": round(load_ms, 1),
            "embed_ms": round(embed_ms, 2),
            "explain_execution_ms": round(plan["Execution Time"], 3),
            "explain_planning_ms": round(plan["Planning Time"], 3),
            "runs": len(timings),
            "query_ms_p50": round(statistics.median(timings), 3),
            "query_ms_min": round(min(timings), 3),
            "query_ms_max": round(max(timings), 3),
        }
        findings["verdict"] = _verdict(findings)
        if options["json"]:
            self.stdout.write(json.dumps(findings, indent=2))
        else:
            self._report(findings, plan_text, verbose=options["verbosity"] > 1)
        if not index_used:
            raise SystemExit(1)

    def _report(self, findings: dict[str, Any], plan_text: list[str], *, verbose: bool) -> None:
        used = findings["index_used"]
        self.stdout.write(f"Query:        {findings['query']!r} (embedded in {findings['embed_ms']:.1f} ms)")
        self.stdout.write(f"Model:        loaded in {findings['model_load_ms']:.0f} ms (once per process)")
        self.stdout.write(
            f"Table:        {TABLE}: {findings['rows']} rows, {findings['embedded_rows']} with embeddings"
        )
        self.stdout.write(f"ef_search:    {findings['ef_search']}")
        self.stdout.write(f"Index:        {'HNSW index used' if used else 'NOT used: sequential scan'}")
        self.stdout.write(f"Plan line:    {findings['plan_line'] or '(no scan line found)'}")
        self.stdout.write(
            f"EXPLAIN:      planning {findings['explain_planning_ms']:.2f} ms, "
            f"execution {findings['explain_execution_ms']:.2f} ms"
        )
        self.stdout.write(
            f"Query time:   p50 {findings['query_ms_p50']:.2f} ms, min {findings['query_ms_min']:.2f} ms, "
            f"max {findings['query_ms_max']:.2f} ms over {findings['runs']} runs"
        )
        if verbose:
            self.stdout.write("\n".join(plan_text))
        style = self.style.SUCCESS if used else self.style.ERROR
        self.stdout.write(style(f"Verdict:      {findings['verdict']}"))


def _as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node]
    for child in node.get("Plans", []):
        found.extend(_nodes(child))
    return found


def _verdict(findings: dict[str, Any]) -> str:
    if not findings["index_used"]:
        return (
            "the HNSW index is not used: cross-film retrieval scans every row. Check that the migration created "
            f"{INDEX_NAME} (python manage.py migrate) and run ANALYZE {TABLE}."
        )
    if findings["embedded_rows"] == 0:
        return "the HNSW index is used, but no section has an embedding yet: run import_movies or embed_sections."
    return f"the HNSW index is used; the retrieval query takes {findings['query_ms_p50']:.2f} ms (p50)."
