"""The report: bench/results.json (the parts and each target met or missed), bench/results.md (also printed) and
bench/latency.png (benchmarks/plot.py), from the parts' JSON files (retrieval, streams, ingest, db_connections),
whichever are there. The retrieval targets are read on the realistic corpus (covariance-shaped noise, 100k sections,
the app's HNSW index and ef_search); the isotropic-noise corpora are reported as stress cases, apart from the targets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.environment import write_json
from benchmarks.results import (
    NOT_MEASURED,
    VALIDATION_SIZE,
    all_corpora,
    default_ef_search,
    dig,
    find_corpus,
    index_params,
    model_label,
    targets,
    text_label,
)


def _verdict(met: bool | None, goal: str = "") -> str:
    if goal == "reported":
        return ""
    return NOT_MEASURED if met is None else "met" if met else "**missed**"


def _measured_on(part: dict[str, Any]) -> str:
    info = part.get("machine") or {}
    when = f"measured {info['date']}" if info.get("date") else ""
    mode = " with --quick" if part.get("quick") else ""
    return f" ({when}{mode})" if when else (f" ({mode.strip()})" if mode else "")


def _cell(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _in_ms(value: float | None) -> str:
    return f"{_cell(value)} ms"


def retrieval_markdown(retrieval: dict[str, Any]) -> list[str]:
    corpora = all_corpora(retrieval)
    efs = sorted(
        {int(ef) for ef in retrieval.get("ef_search_values") or []}
        | {int(ef) for corpus in corpora for ef in corpus.get("hnsw", {})}
    )
    default_ef = default_ef_search(retrieval)
    app_params = next((index_params(c) for c in corpora if index_params(c)), None)
    lines = [
        "",
        "Retrieval" + _measured_on(retrieval) + ": p50 / p99 in milliseconds; cross-film is the app's hybrid query "
        "(`search_all`); HNSW cells are the hybrid query p50 / p99 (recall@10 over the 50 cross-film questions / over "
        "all queries). Corpora marked STRESS have isotropic noise, HNSW's worst case: not what the targets are "
        "measured on." + (f" The app's HNSW index: {app_params}." if app_params else ""),
        "",
        "| sections | synthetic sections' vectors | HNSW build | index size | embed new / cached "
        "| per film new / cached | cross-film new / cached | torch path: embed new / cross-film new "
        "| lexical statement / HNSW scan / both candidate statements / fusion | "
        + " | ".join(f"ef {ef}" + (" (default)" if ef == default_ef else "") for ef in efs)
        + " | exact, no HNSW | exact ÷ HNSW |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
        + " | ".join("---:" for _ in efs)
        + " | ---: | ---: |",
    ]
    for corpus in corpora:
        label = model_label(corpus, retrieval)
        build = corpus.get("hnsw_build_seconds")
        size = corpus.get("hnsw_index_mb")
        cells = [
            f"{corpus['sections']:,}",
            label,
            "—" if build is None else f"{build:.1f} s",
            "—" if size is None else f"{size:.0f} MB",
            f"{_cell(dig(corpus, 'embedding', 'cold', 'p50'))} / {_cell(dig(corpus, 'embedding', 'cached', 'p50'), 3)}",
            f"{_cell(dig(corpus, 'per_film', 'cold', 'p50'))} / {_cell(dig(corpus, 'per_film', 'cached', 'p50'), 2)}",
            f"{_cell(dig(corpus, 'cross_film_end_to_end', 'cold', 'p50'))} / "
            f"{_cell(dig(corpus, 'cross_film_end_to_end', 'cached', 'p50'), 2)}",
            f"{_cell(dig(corpus, 'compared', 'embedding_cold', 'p50'))} / "
            f"{_cell(dig(corpus, 'compared', 'cross_film_cold', 'p50'))}",
            " / ".join(
                _cell(dig(corpus, "cross_film_stages", stage, "p50"), 2)
                for stage in ("lexical", "vector", "candidates", "fusion")
            ),
        ]
        for ef in efs:
            point = dig(corpus, "hnsw", str(ef))
            if not point:
                cells.append("—")
                continue
            cells.append(
                f"{_cell(dig(point, 'hybrid_ms', 'p50'), 2)} / {_cell(dig(point, 'hybrid_ms', 'p99'), 2)} "
                f"({_cell(point.get('recall_at_10'), 3)} / {_cell(point.get('recall_at_10_all'), 3)})"
            )
        exact = dig(corpus, "exact", "hybrid_ms") or {}
        cells.append(f"{_cell(exact.get('p50'))} / {_cell(exact.get('p99'))}")
        ratio = corpus.get("exact_over_hnsw")
        cells.append("—" if ratio is None else f"{ratio:.1f}×")
        lines.append("| " + " | ".join(cells) + " |")

    # The validation: which synthetic model behaves like embedded text, at 10k.
    lines += [
        "",
        f"Validation at {VALIDATION_SIZE:,} sections: recall@10 by ef_search (over the 50 cross-film questions / over "
        "all queries), for the embedded generated text against the synthetic models:",
        "",
        "| synthetic sections' vectors | copy → source distance p50 | local intrinsic dimension (sections) | "
        + " | ".join(f"ef {ef}" + (" (default)" if ef == default_ef else "") for ef in efs)
        + " |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in efs) + " |",
    ]
    names = {
        "text": text_label(find_corpus(retrieval, VALIDATION_SIZE, "text") or {}),
        "covariance": "covariance-shaped noise (realistic)",
        "small": "STRESS: isotropic noise (small)",
        "calibrated": "STRESS: isotropic noise (calibrated)",
    }
    for model, name in names.items():
        corpus = find_corpus(retrieval, VALIDATION_SIZE, model)
        if corpus is None:
            lines.append(f"| {name} | {NOT_MEASURED} | | " + " | ".join("" for _ in efs) + " |")
            continue
        distance = dig(corpus, "copy_to_source_distance", "p50")
        lid = dig(corpus, "geometry", "lid_sections")
        cells = [name, _cell(distance, 3), _cell(lid)]
        for ef in efs:
            point = dig(corpus, "hnsw", str(ef))
            cells.append(
                f"{_cell(point.get('recall_at_10'), 3)} / {_cell(point.get('recall_at_10_all'), 3)}" if point else "—"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def streams_markdown(streams: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"Streams{_measured_on(streams)}: gunicorn + uvicorn worker as in the Procfile, {streams.get('workers', '?')} "
        f"workers; fake LLM at {streams.get('tokens_per_second', 0):g} tokens/s, {streams.get('tokens', '?')} tokens; "
        "milliseconds p50 / p99. At each level every stream is opened at once, so first byte and request → upstream "
        "include queueing behind the opening burst; the added gap once all are open counts only the tokens after "
        "every stream has had its first one. The client runs on the same 2 cores as the server: its event-loop lag "
        "is shown.",
        "",
        "| concurrent | first byte | request → upstream (server / seen from outside) | added gap between tokens "
        "| added gap once all open | client loop lag p99 | errors | message states | worker RSS (peak, MB) "
        "| worker CPU per token |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    unloaded = streams.get("unloaded")
    for level in [*([unloaded] if unloaded else []), *streams.get("levels", [])]:

        def pair(key: str, level: dict[str, Any] = level) -> str:
            return f"{_num(dig(level, key, 'p50'))} / {_num(dig(level, key, 'p99'))}"

        states = ", ".join(f"{count} {state}" for state, count in sorted((level.get("statuses") or {}).items()))
        steady = "—"
        if level.get("added_gap_all_open_ms"):
            steady = pair("added_gap_all_open_ms")
            if level.get("all_open_after_s") is not None:
                steady += f" (after {level['all_open_after_s']:g} s)"
        lag = dig(level, "client_loop_lag_ms", "p99")
        cpu = level.get("worker_cpu_ms_per_token")
        errors = level.get("errors", "—")
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{level['concurrency']:,}" + (" (one at a time)" if level is unloaded else ""),
                    pair("ttfb_ms"),
                    f"{pair('upstream_ms')} ({pair('upstream_observed_ms')})",
                    pair("added_gap_ms"),
                    steady,
                    "—" if lag is None else f"{_num(lag)} ms",
                    f"{errors} ({_kinds(level)})" if level.get("error_kinds") else str(errors),
                    states or "—",
                    " + ".join(f"{value:.0f}" for value in level.get("worker_rss_mb_peak") or []) or "—",
                    f"{cpu:.2f} ms" if cpu else "—",
                ]
            )
            + " |"
        )
    return lines


def ingest_markdown(ingest: dict[str, Any]) -> list[str]:
    embedding = ingest.get("embedding") or []
    comparison = ingest.get("dtype_comparison") or {}
    compared = comparison.get("embedding") or []
    batches = sorted({row["batch_size"] for row in [*embedding, *compared]})
    dtype = ingest.get("dtype")
    lines = [
        "",
        "Ingest: sections embedded per second"
        + (f", in the app's dtype {dtype}" if dtype else "")
        + f" ({ingest.get('sample_sections', '?')} real sections per point):",
        "",
        "| threads | " + " | ".join(f"batch {size}" for size in batches) + " |",
        "| ---: | " + " | ".join("---:" for _ in batches) + " |",
    ]

    def rates(rows: list[dict[str, Any]]) -> str:
        by_batch = {row["batch_size"]: row["sections_per_second"] for row in rows}
        return " | ".join(f"{by_batch[size]:.1f}" if size in by_batch else "—" for size in batches)

    for count in sorted({row["threads"] for row in embedding}):
        lines.append(f"| {count} | " + rates([row for row in embedding if row["threads"] == count]) + " |")
    for count in sorted({row["threads"] for row in compared}):
        other = comparison.get("dtype", "other dtype")
        lines.append(
            f"| {count}, {other} (for comparison) | "
            + rates([row for row in compared if row["threads"] == count])
            + " |"
        )
    imported = ingest.get("import")
    if imported:
        lines += [
            "",
            f"`import_movies` into a fresh database: {imported['films']:,} films, {imported['sections']:,} sections "
            f"in {imported['seconds']:.1f} s end to end, their vectors from the file shipped with the code (the "
            "model's own pace is the table's).",
        ]
    if comparison:
        app, other = comparison.get("app_dtype", dtype), comparison.get("dtype")
        cosines = [row["cosine_to_app_min"] for row in compared if row.get("cosine_to_app_min") is not None]
        query = comparison.get("query_embed_ms_p50_one_thread") or {}
        agreement = comparison.get("top_10_agreement")
        sentence = f"For comparison, {other} (the app runs {app}):"
        if cosines:
            sentence += f" vectors at cosine ≥ {min(cosines):.5f} from the app's;"
        if query.get(other) is not None and query.get(app) is not None:
            sentence += f" one query embeds in {query[other]:.1f} ms against {query[app]:.1f} ms (p50, one thread);"
        sentence += (
            f" top-10 retrieval over the real corpus agrees with the app's at {agreement:.3f}."
            if agreement is not None
            else " top-10 agreement not measured."
        )
        lines.append(sentence)
    return lines


def db_connections_markdown(db: dict[str, Any]) -> list[str]:
    rows = db.get("results") or {}
    if not rows:
        return []
    lines = [
        "",
        "Database connections (measured once, when the pool was chosen; milliseconds per request through the whole "
        "request cycle, /healthz running one query):",
        "",
        "| connections | requests | p50 | p95 | p99 |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row.get('requests', '—')} | {_cell(row.get('p50_ms'), 2)} | {_cell(row.get('p95_ms'), 2)} "
            f"| {_cell(row.get('p99_ms'), 2)} |"
        )
    return lines


def markdown(results: dict[str, Any]) -> str:
    info = results.get("machine") or {}
    load = info.get("loadavg_at_start")
    lines = [
        f"Measured {info.get('date', '(date not recorded)')} on {info.get('nproc', '?')} × {info.get('cpu', '?')}, "
        f"{info.get('ram_gb', '?')} GB RAM"
        + (f" (load average at start {', '.join(map(str, load))})" if load else "")
        + f"; `{results.get('command', 'python -m benchmarks')}`.",
        "",
        "| target | goal | measured | |",
        "| --- | --- | --- | --- |",
    ]
    rows = results.get("targets") or []
    for row in rows:
        if not row.get("stress"):
            verdict = _verdict(row["met"], row["goal"])
            lines.append(f"| {row['target']} | {row['goal']} | {row['measured']} | {verdict} |")
    stress = [row for row in rows if row.get("stress")]
    if stress:
        lines += [
            "",
            "Stress cases, not targets: the same goals on corpora of isotropic Gaussian noise (near-duplicate clusters "
            "of much higher intrinsic dimension than sentence embeddings: HNSW's worst case).",
            "",
            "| stress case | goal | measured | |",
            "| --- | --- | --- | --- |",
        ]
        for row in stress:
            verdict = NOT_MEASURED if row["met"] is None else "met" if row["met"] else "missed"
            lines.append(f"| {row['target']} | {row['goal']} | {row['measured']} | {verdict} |")
    if results.get("retrieval"):
        lines += retrieval_markdown(results["retrieval"])
    if results.get("streams"):
        lines += streams_markdown(results["streams"])
    if (results.get("pages") or {}).get("variants"):
        lines += pages_markdown(results["pages"])
    if results.get("ingest"):
        lines += ingest_markdown(results["ingest"])
    if results.get("db_connections"):
        lines += db_connections_markdown(results["db_connections"])
    if results.get("catalogue"):
        lines += catalogue_markdown(results["catalogue"])
    if results.get("background"):
        lines += background_markdown(results["background"])
    return "\n".join(lines) + "\n"


def pages_markdown(pages: dict[str, Any]) -> list[str]:
    paths = pages.get("paths") or {}
    lines = [
        "",
        f"Pages{_measured_on(pages)} (benchmarks/pages.py): `{pages.get('command')}` against the Procfile's web "
        f"process, {pages.get('workers')} workers, production settings, the 761 films; requests per second, then "
        "latency p50 / p99 in milliseconds. wrk shares the 2 cores with the server. Before: the issue's figures "
        "(150 films).",
        "",
        "| | "
        + " | ".join(f"{name} (`{path}`)" for name, path in paths.items())
        + " | worker RSS after (MB) | start to first request |",
        "| --- | " + " | ".join("---:" for _ in paths) + " | ---: | ---: |",
    ]
    before = pages.get("before_rps") or {}
    if before:
        lines.append("| before (the issue) | " + " | ".join(f"{before.get(name, '—')}" for name in paths) + " | | |")
    for name, variant in pages["variants"].items():
        cells = []
        for page in paths:
            row = variant["pages"][page]
            cell = f"{row['requests_per_second']:,.0f} ({_cell(row['p50_ms'])} / {_cell(row['p99_ms'])})"
            failed = row.get("non_2xx", 0) + row.get("socket_errors", 0)
            cells.append(cell + (f", {failed} failed" if failed else ""))
        rss = " + ".join(str(value) for value in variant.get("worker_rss_mb") or [])
        ready = variant.get("start_to_first_request_s")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {rss} | {'—' if ready is None else f'{ready} s'} |")
    return lines


def catalogue_markdown(catalogue: dict[str, Any]) -> list[str]:
    recall = catalogue.get("recall_at_10") or {}
    cross, per_film = catalogue.get("cross_film_ms") or {}, catalogue.get("per_film_ms") or {}
    return [
        "",
        f"The real catalogue (benchmarks/catalogue.py, {catalogue.get('films', 0):,} films, "
        f"{catalogue.get('sections', 0):,} sections): HNSW built in {catalogue.get('hnsw_build_seconds')} s, "
        f"{catalogue.get('hnsw_index_mb')} MB; recall@10 at ef_search {catalogue.get('ef_search')}: "
        + ", ".join(f"{label} {value}" for label, value in recall.items())
        + f"; cross-film p50 {_in_ms(cross.get('p50'))} / p99 {_in_ms(cross.get('p99'))}, per film p50 "
        f"{_in_ms(per_film.get('p50'))} / p99 {_in_ms(per_film.get('p99'))} (each question new).",
    ]


def background_markdown(background: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "The web process while the worker imports (benchmarks/background.py), p50 / p99:",
        "",
        "| | worker idle | worker importing |",
        "| --- | ---: | ---: |",
    ]
    for page, idle in (background.get("idle") or {}).items():
        busy = background["importing"][page]
        idle_cell, busy_cell = (f"{_in_ms(at['p50'])} / {_in_ms(at['p99'])}" for at in (idle, busy))
        lines.append(f"| {page} | {idle_cell} | {busy_cell} |")
    web = background.get("web") or {}
    lines += [
        "",
        f"Web process after serving: master {web.get('master_rss_mb')} MB resident ({web.get('master_pss_mb')} MB "
        f"PSS), each worker {web.get('worker_rss_mb')} MB ({web.get('worker_pss_mb')} MB PSS). Background worker: "
        f"{background.get('worker_rss_mb')} MB resident, {background.get('films_per_second')} films/s.",
    ]
    return lines


def _kinds(level: dict[str, Any]) -> str:
    kinds = ", ".join(f"{count} {kind}" for kind, count in (level.get("error_kinds") or {}).items())
    codes = ", ".join(f"{count} {code}" for code, count in (level.get("error_codes") or {}).items())
    return kinds + (f"; error codes: {codes}" if codes else "")


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) < 0.05:
        return "0.0"  # not "-0.0": the added gap is about zero when nothing queues
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


PARTS = ("retrieval", "streams", "pages", "ingest", "db_connections", "catalogue", "background")


def read_parts(bench_dir: Path) -> dict[str, Any]:
    """The benchmarks' JSON files found in bench_dir (`PARTS`)."""
    parts: dict[str, Any] = {}
    for name in PARTS:
        path = bench_dir / f"{name}.json"
        if path.exists():
            parts[name] = json.loads(path.read_text())
    return parts


def write_report(results: dict[str, Any], bench_dir: Path) -> str:
    """Write results.json, results.md and latency.png into bench_dir from `results` (machine, command and the
    parts); the Markdown."""
    results["targets"] = targets(results)
    write_json(bench_dir / "results.json", results)
    table = markdown(results)
    (bench_dir / "results.md").write_text(table)
    from benchmarks.plot import plot

    plot(bench_dir / "results.json")
    return table
