"""Run every benchmark in one go and write bench/results.json, bench/results.md and bench/latency.png.

    .venv/bin/python scripts/bench_all.py --quick      # what `make bench` runs (under 10 minutes on 2 cores)
    .venv/bin/python scripts/bench_all.py              # more queries and streams per point
    .venv/bin/python scripts/bench_all.py --large      # adds the 1M-section corpus (an hour or more)

Each benchmark runs in its own process (ingest, then streams, then retrieval) on the embedded PostgreSQL under
`FLICKORA_DATA_DIR` (default var/bench), so the development data under var/ is never touched, and writes its part
to bench/<name>.json. This module also holds what the three benchmarks share: Django set-up against a chosen
database, percentiles, the machine's description, and the base database with the real films.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
DATA_DIR = Path(os.environ.get("FLICKORA_DATA_DIR") or ROOT / "var" / "bench").resolve()
PYTHON = sys.executable
# The database with the real films (import_movies), which the stream benchmark serves and the others copy.
BASE_DB = "flickora"


def bench_env(**extra: str) -> dict[str, str]:
    """The environment every benchmark process runs with: production settings (DEBUG off) on the bench data dir."""
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.update(
        FLICKORA_DATA_DIR=str(DATA_DIR),
        DJANGO_SETTINGS_MODULE="flickora.settings",
        DEBUG="0",
        SECRET_KEY=env.get("SECRET_KEY") or "bench-" + secrets.token_urlsafe(40),
        SECURE_SSL_REDIRECT="0",
        SECURE_HSTS_SECONDS="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL=env.get("LOG_LEVEL", "WARNING"),
        PYTHONUNBUFFERED="1",
        # As `make` does: the virtual environment's scripts (gunicorn) first on the PATH.
        PATH=os.pathsep.join([str(Path(PYTHON).parent), env.get("PATH", "")]),
    )
    env.update(extra)
    return env


def setup_django(database: str = BASE_DB) -> None:
    """Configure Django for this process against `database` on the embedded server (started if needed)."""
    os.environ.update(bench_env())
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django
    from django.conf import settings

    django.setup()
    # Before the first connection: the connection handler reads this same dict when it opens one.
    settings.DATABASES["default"]["NAME"] = database


def socket_dir() -> Path:
    """Start the embedded server if needed (and create the base database); the socket directory to connect to."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from flickora.db import ensure_server

    return ensure_server(DATA_DIR, BASE_DB)


def admin_connection(database: str = "postgres") -> Any:
    import psycopg

    return psycopg.connect(host=str(socket_dir()), dbname=database, user="postgres", autocommit=True)


def database_url(database: str) -> str:
    from urllib.parse import quote

    return f"postgres://postgres@{quote(str(socket_dir()), safe='')}/{database}"


def section_count(database: str) -> int:
    import psycopg

    try:
        with admin_connection(database) as conn:
            return conn.execute("SELECT count(embedding) FROM reports_moviesection").fetchone()[0]
    except psycopg.Error:
        return 0


def recreate_database(name: str, *, template: str | None = None) -> None:
    from psycopg import sql

    with admin_connection() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if template:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
            )
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def manage(*args: str, database: str, quiet: bool = True) -> float:
    """Run `manage.py args` against `database`; its wall time in seconds."""
    env = bench_env(DATABASE_URL=database_url(database))
    started = time.perf_counter()
    subprocess.run(  # noqa: S603 (our own manage.py, fixed arguments)
        [PYTHON, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL if quiet else None,
    )
    return time.perf_counter() - started


def prepare_base() -> None:
    """Make sure the base database has the real films, embedded (copied from the ingest run when there is one)."""
    manage("migrate", "--noinput", database=BASE_DB)
    if section_count(BASE_DB):
        return
    if section_count("flickora_ingest"):
        print("Base database: copying the films imported by the ingest benchmark", file=sys.stderr)
        recreate_database(BASE_DB, template="flickora_ingest")
        return
    print("Base database: importing the films (about a minute and a half)", file=sys.stderr)
    manage("import_movies", "--no-progress", database=BASE_DB)


# Numbers.


def percentiles(values: Iterable[float], digits: int = 2) -> dict[str, Any]:
    data = sorted(values)
    if not data:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "mean": None, "max": None}

    def at(q: float) -> float:
        # Nearest rank: an observed value, never interpolated past the maximum.
        index = min(len(data) - 1, max(0, round(q * len(data) + 0.5) - 1))
        return round(data[index], digits)

    return {
        "n": len(data),
        "p50": round(statistics.median(data), digits),
        "p95": at(0.95),
        "p99": at(0.99),
        "mean": round(statistics.fmean(data), digits),
        "max": round(data[-1], digits),
    }


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_at_start": [round(value, 2) for value in os.getloadavg()],
    }


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


# The report.


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} ms" if value >= 10 else f"{value:.2f} ms"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 6 with its measured value, met or missed."""
    rows: list[dict[str, Any]] = []

    def add(name: str, target: str, value: float | None, shown: str, met: bool | None) -> None:
        rows.append({"target": name, "goal": target, "value": value, "measured": shown, "met": met})

    retrieval = results.get("retrieval", {})
    primary = [c for c in retrieval.get("corpora", []) if c.get("noise") != retrieval["noise"]["calibrated"]]
    largest = max(primary, key=lambda c: c["sections"], default=None)
    at_100k = next((c for c in primary if c["sections"] == 100_000), largest)
    if at_100k:
        size = f"{at_100k['sections']:,}"
        cold = at_100k["cross_film_end_to_end"]["cold"]["p50"]
        cached = at_100k["cross_film_end_to_end"]["cached"]["p50"]
        film_cold = at_100k["per_film"]["cold"]["p50"]
        film_cached = at_100k["per_film"]["cached"]["p50"]
        default_ef = retrieval["default_ef_search"]
        recall = at_100k["hnsw"][str(default_ef)]["recall_at_10"]
        add(
            f"Cross-film retrieval p50, {size} sections, new question (with embedding)",
            "≤ 15 ms",
            cold,
            _ms(cold),
            cold <= 15,
        )
        add(f"Cross-film retrieval p50, {size} sections, cached question", "≤ 3 ms", cached, _ms(cached), cached <= 3)
        add(
            f"Per-film retrieval p50, {size} sections, new question (with embedding)",
            "≤ 12 ms",
            film_cold,
            _ms(film_cold),
            film_cold <= 12,
        )
        add(
            f"Per-film retrieval p50, {size} sections, cached question",
            "≤ 12 ms",
            film_cached,
            _ms(film_cached),
            film_cached <= 12,
        )
        add(
            f"Recall@10 at the default ef_search ({default_ef}), {size} sections, small noise (near-duplicates)",
            "≥ 0.98",
            recall,
            f"{recall:.3f}",
            recall >= 0.98,
        )
        for corpus in retrieval["corpora"]:
            if corpus.get("noise") == retrieval["noise"]["calibrated"]:
                size = f"{corpus['sections']:,}"
                cold = corpus["cross_film_end_to_end"]["cold"]["p50"]
                cached = corpus["cross_film_end_to_end"]["cached"]["p50"]
                recall = corpus["hnsw"][str(default_ef)]["recall_at_10"]
                calibrated = "noise calibrated on the real corpus"
                add(
                    f"Cross-film p50, {size} sections, {calibrated}, new question",
                    "≤ 15 ms",
                    cold,
                    _ms(cold),
                    cold <= 15,
                )
                add(
                    f"Cross-film p50, {size} sections, {calibrated}, cached question",
                    "≤ 3 ms",
                    cached,
                    _ms(cached),
                    cached <= 3,
                )
                add(
                    f"Recall@10 at ef_search {default_ef}, {size} sections, {calibrated}",
                    "≥ 0.98",
                    recall,
                    f"{recall:.3f}",
                    recall >= 0.98,
                )
    streams = results.get("streams", {})
    if streams:
        idle = streams.get("unloaded", {})
        if idle:
            ttfb = idle["ttfb_ms"]["p50"]
            upstream = idle["upstream_ms"]["p50"]
            add("First SSE byte p50, one stream at a time", "≤ 20 ms", ttfb, _ms(ttfb), ttfb <= 20)
            add(
                "Request to upstream LLM request p50 (Message.timings upstream_ms), one stream at a time",
                "≤ 25 ms",
                upstream,
                _ms(upstream),
                upstream <= 25,
            )
        for level in streams.get("levels", []):
            n = level["concurrency"]
            ttfb = level["ttfb_ms"]["p50"]
            upstream = level["upstream_ms"]["p50"]
            gap = level["added_gap_ms"]["p99"]
            errors = level["errors"]
            add(f"First SSE byte p50, {n:,} concurrent streams", "≤ 20 ms", ttfb, _ms(ttfb), ttfb <= 20)
            add(
                f"Request to upstream p50, {n:,} concurrent streams",
                "≤ 25 ms",
                upstream,
                _ms(upstream),
                upstream is not None and upstream <= 25,
            )
            add(f"{n:,} concurrent streams: errors", "0", errors, str(errors), errors == 0)
            add(
                f"{n:,} concurrent streams: p99 added gap between tokens (over the "
                f"{level.get('streams_with_tokens', '?')} streams that got tokens)",
                "≤ 100 ms",
                gap,
                _ms(gap),
                gap is not None and gap <= 100,
            )
            stuck = level["not_terminal"]
            add(
                f"{n:,} concurrent streams: assistant messages not in a terminal state",
                "0",
                stuck,
                str(stuck),
                stuck == 0,
            )
    ingest = results.get("ingest", {})
    if ingest:
        best = max(ingest["embedding"], key=lambda row: row["sections_per_second"])
        rate = best["sections_per_second"]
        add(
            f"Embedding throughput (best: batch {best['batch_size']}, {best['threads']} threads)",
            "≥ 45 sections/s",
            rate,
            f"{rate:.1f} sections/s",
            rate >= 45,
        )
        default = ingest["import"]
        rate = default["sections_per_second"]
        add(
            "import_movies end to end, fresh database",
            "≥ 45 sections/s",
            rate,
            f"{rate:.1f} sections/s ({default['sections']:,} sections in {default['seconds']:.0f} s)",
            rate >= 45,
        )
    return rows


def markdown(results: dict[str, Any]) -> str:
    info = results["machine"]
    lines = [
        f"Measured {info['date']} on {info['nproc']} × {info['cpu']}, {info['ram_gb']} GB RAM "
        f"(load average at start {', '.join(map(str, info['loadavg_at_start']))}); `{results['command']}`.",
        "",
        "| target | goal | measured | |",
        "| --- | --- | --- | --- |",
    ]
    for row in results["targets"]:
        verdict = "met" if row["met"] else "**missed**"
        lines.append(f"| {row['target']} | {row['goal']} | {row['measured']} | {verdict} |")

    retrieval = results.get("retrieval")
    if retrieval:
        efs = retrieval["ef_search_values"]
        lines += [
            "",
            "Retrieval (p50 / p99, milliseconds; cross-film is the app's hybrid query, `search_all`):",
            "",
            "| sections | synthetic noise | HNSW build | index size | embed new / cached | per film new / cached "
            "| cross-film new / cached | "
            + " | ".join(f"HNSW ef {ef} (recall@10)" for ef in efs)
            + " | exact, no HNSW | exact ÷ HNSW |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in efs) + " | ---: | ---: |",
        ]
        for corpus in retrieval["corpora"]:
            embed = corpus["embedding"]
            film = corpus["per_film"]
            cross = corpus["cross_film_end_to_end"]
            noise = corpus.get("noise")
            cells = [
                f"{corpus['sections']:,}",
                "— (real only)"
                if noise is None
                else f"{noise:g} ({'calibrated' if noise == retrieval['noise']['calibrated'] else 'small'})",
                f"{corpus['hnsw_build_seconds']:.1f} s",
                f"{corpus['hnsw_index_mb']:.0f} MB",
                f"{embed['cold']['p50']:.1f} / {embed['cached']['p50']:.3f}",
                f"{film['cold']['p50']:.1f} / {film['cached']['p50']:.2f}",
                f"{cross['cold']['p50']:.1f} / {cross['cached']['p50']:.2f}",
            ]
            for ef in efs:
                point = corpus["hnsw"][str(ef)]
                cells.append(
                    f"{point['hybrid_ms']['p50']:.2f} / {point['hybrid_ms']['p99']:.2f} ({point['recall_at_10']:.3f})"
                )
            exact = corpus["exact"]["hybrid_ms"]
            cells.append(f"{exact['p50']:.1f} / {exact['p99']:.1f}")
            cells.append(f"{corpus['exact_over_hnsw']:.1f}×")
            lines.append("| " + " | ".join(cells) + " |")

    streams = results.get("streams")
    if streams:
        lines += [
            "",
            f"Streams (gunicorn + uvicorn worker as in the Procfile, {streams['workers']} workers; fake LLM at "
            f"{streams['tokens_per_second']:g} tokens/s, {streams['tokens']} tokens; milliseconds p50 / p99):",
            "",
            "| concurrent | first byte | request → upstream (server / seen from outside) | added gap between "
            "tokens | errors | message states | worker RSS (peak, MB) | worker CPU per token |",
            "| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
        ]
        for level in [streams["unloaded"], *streams["levels"]]:
            states = ", ".join(f"{count} {state}" for state, count in sorted(level["statuses"].items()))
            lines.append(
                "| {n} | {t50} / {t99} | {u50} / {u99} ({o50} / {o99}) | {g50} / {g99} | {e} | {s} | {rss} "
                "| {cpu} |".format(
                    n=f"{level['concurrency']:,}" + (" (one at a time)" if level is streams["unloaded"] else ""),
                    t50=_num(level["ttfb_ms"]["p50"]),
                    t99=_num(level["ttfb_ms"]["p99"]),
                    u50=_num(level["upstream_ms"]["p50"]),
                    u99=_num(level["upstream_ms"]["p99"]),
                    o50=_num(level["upstream_observed_ms"]["p50"]),
                    o99=_num(level["upstream_observed_ms"]["p99"]),
                    cpu=f"{level['worker_cpu_ms_per_token']:.2f} ms" if level.get("worker_cpu_ms_per_token") else "—",
                    g50=_num(level["added_gap_ms"]["p50"]),
                    g99=_num(level["added_gap_ms"]["p99"]),
                    e=level["errors"] if not level["error_kinds"] else f"{level['errors']} ({_kinds(level)})",
                    s=states,
                    rss=" + ".join(f"{value:.0f}" for value in level["worker_rss_mb_peak"]),
                )
            )

    ingest = results.get("ingest")
    if ingest:
        batches = sorted({row["batch_size"] for row in ingest["embedding"]})
        threads = sorted({row["threads"] for row in ingest["embedding"]})
        lines += [
            "",
            f"Ingest: sections embedded per second ({ingest['sample_sections']} real sections per point):",
            "",
            "| threads | " + " | ".join(f"batch {size}" for size in batches) + " |",
            "| ---: | " + " | ".join("---:" for _ in batches) + " |",
        ]
        for count in threads:
            rates = {
                row["batch_size"]: row["sections_per_second"] for row in ingest["embedding"] if row["threads"] == count
            }
            lines.append(f"| {count} | " + " | ".join(f"{rates[size]:.1f}" for size in batches) + " |")
        what_if = ingest.get("what_if_bf16")
        if what_if:
            rates = {row["batch_size"]: row for row in what_if["embedding"]}
            lines.append(
                "| 2, bfloat16 autocast (what-if, not the app) | "
                + " | ".join(f"{rates[size]['sections_per_second']:.1f}" for size in batches)
                + " |"
            )
        imported = ingest["import"]
        lines += [
            "",
            f"`import_movies` into a fresh database: {imported['films']:,} films, {imported['sections']:,} sections "
            f"in {imported['seconds']:.1f} s ({imported['sections_per_second']:.1f} sections/s end to end).",
        ]
        if what_if:
            cosine = min(row["cosine_to_float32_min"] for row in what_if["embedding"])
            query = what_if["query_embed_ms_p50_one_thread"]
            agreement = what_if.get("recall_at_10_against_float32")
            lines.append(
                f"What-if bfloat16: vectors at cosine ≥ {cosine:.5f} from float32's; one query embeds in "
                f"{query['bf16']:.1f} ms against {query['float32']:.1f} ms (p50, one thread)"
                + (f"; top-10 retrieval agrees with float32's at {agreement:.3f}." if agreement else ".")
            )
    return "\n".join(lines) + "\n"


def _kinds(level: dict[str, Any]) -> str:
    kinds = ", ".join(f"{count} {kind}" for kind, count in level["error_kinds"].items())
    codes = ", ".join(f"{count} {code}" for code, count in level.get("error_codes", {}).items())
    return kinds + (f"; error codes: {codes}" if codes else "")


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def run_part(script: str, args: Sequence[str]) -> None:
    print(f"\n== {script} {' '.join(args)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run([PYTHON, str(ROOT / "scripts" / script), *args], cwd=ROOT, env=bench_env(), check=True)  # noqa: S603
    print(f"== {script}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Fewer queries and streams (make bench).")
    parser.add_argument("--large", action="store_true", help="Add the 1M-section corpus to the retrieval benchmark.")
    parser.add_argument(
        "--only", choices=["ingest", "streams", "retrieval"], action="append", help="Run only these (repeatable)."
    )
    options = parser.parse_args()
    flags = [flag for flag, on in (("--quick", options.quick), ("--large", options.large)) if on]
    parts = options.only or ["ingest", "streams", "retrieval"]
    started = time.perf_counter()
    info = machine()
    if "ingest" in parts:
        run_part("bench_ingest.py", [flag for flag in flags if flag != "--large"])
    prepare_base()
    if "streams" in parts:
        run_part("bench_stream.py", [flag for flag in flags if flag != "--large"])
    if "retrieval" in parts:
        run_part("bench_retrieval.py", flags)

    results: dict[str, Any] = {
        "command": "make bench" if options.quick and not options.large else "scripts/bench_all.py " + " ".join(flags),
        "machine": info,
    }
    for name in ("retrieval", "streams", "ingest"):
        path = BENCH_DIR / f"{name}.json"
        if path.exists():
            results[name] = json.loads(path.read_text())
    results["targets"] = targets(results)
    results["machine"]["loadavg_at_end"] = [round(value, 2) for value in os.getloadavg()]
    results["machine"]["total_seconds"] = round(time.perf_counter() - started, 1)
    write_json(BENCH_DIR / "results.json", results)
    table = markdown(results)
    (BENCH_DIR / "results.md").write_text(table)
    subprocess.run(  # noqa: S603
        [PYTHON, str(ROOT / "scripts" / "plot_bench.py"), str(BENCH_DIR / "results.json")], cwd=ROOT, check=True
    )
    print(table)
    print(
        "Written bench/results.json, bench/results.md and bench/latency.png in "
        f"{results['machine']['total_seconds']:.0f} s."
    )


if __name__ == "__main__":
    main()
