"""Run the benchmarks and write bench/results.json, bench/results.md (also printed) and bench/latency.png.

    python -m benchmarks --quick                 # what `make bench` runs (README: how long)
    python -m benchmarks                         # more queries and streams per point
    python -m benchmarks --large                 # adds the 1M-section corpus and the real catalogue (hours)
    python -m benchmarks retrieval [--quick]     # some parts only (ingest, streams, pages, retrieval; or --only)
    python -m benchmarks background              # the web process while the worker imports (not in the default run)
    python -m benchmarks.catalogue               # the development database's real catalogue (its --help)
    python -m benchmarks retrieval --sizes 10000 --models text   # one part, with its own options (its --help)
    python -m benchmarks --report-only [--bench-dir DIR]         # no benchmark: the report from the JSON files

Each part runs in its own process (`python -m benchmarks.<part>`: ingest, streams, pages, then retrieval) on the
embedded PostgreSQL under `FLICKORA_DATA_DIR` (default var/bench) and writes bench/<part>.json; the report
(benchmarks/report.py) then reads every part's JSON there, whether this run wrote it or an earlier one did.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.environment import BENCH_DIR, machine, prepare_base, run_module
from benchmarks.report import read_parts, write_report

PARTS = ("ingest", "streams", "pages", "retrieval")
# Run only when named: the web process while the worker imports.
OTHER_PARTS = ("background",)
ALL_PARTS = PARTS + OTHER_PARTS


def run_part(part: str, args: list[str]) -> float:
    """Run one part in its own process; the seconds it took."""
    print(f"\n== {part} {' '.join(args)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    run_module(f"benchmarks.{part}", *args)
    seconds = round(time.perf_counter() - started, 1)
    print(f"== {part}: {seconds:.0f} s", file=sys.stderr, flush=True)
    return seconds


def report_only(bench_dir: Path) -> None:
    parts = read_parts(bench_dir)
    if not parts:
        raise SystemExit(f"no benchmark JSON in {bench_dir}")
    # The machine as the benchmarks recorded it (each part also gives its own date in the report).
    info = next((parts[name]["machine"] for name in ("retrieval", "streams") if name in parts), {})
    results = {"command": "python -m benchmarks --report-only (from the JSON files)", "machine": info, **parts}
    print(write_report(results, bench_dir))
    print(f"Written {bench_dir}/results.json, results.md and latency.png from the JSON files there.")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        usage="%(prog)s [PART ...] [options] [the part's own options]",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="Fewer queries and streams (make bench).")
    parser.add_argument("--large", action="store_true", help="Add the 1M-section corpus, and the real catalogue.")
    parser.add_argument("--only", choices=ALL_PARTS, action="append", help="Run only this part (repeatable).")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="Run no benchmark: rebuild results.json, results.md and latency.png from the JSON files already there.",
    )
    parser.add_argument(
        "--bench-dir", type=Path, help="With --report-only: the directory to read the JSON from and write to (bench/)."
    )
    # The parts come first (ingest, streams, retrieval), then the options: a part's own options may take values.
    args = sys.argv[1:]
    named = []
    while args and args[0] in ALL_PARTS:
        named.append(args.pop(0))
    options, extra = parser.parse_known_args(args)
    chosen = [part for part in ALL_PARTS if part in {*named, *(options.only or [])}] or list(PARTS)
    if extra and len(chosen) != 1:
        parser.error(f"unrecognized arguments: {' '.join(extra)} (a part's own options go with that part alone)")
    if options.bench_dir and not options.report_only:
        parser.error("--bench-dir only goes with --report-only (the benchmarks write to bench/)")
    if options.report_only:
        return report_only((options.bench_dir or BENCH_DIR).resolve())

    flags = [flag for flag, on in (("--quick", options.quick), ("--large", options.large)) if on]
    started = time.perf_counter()
    info = machine()
    took: dict[str, float] = {}  # seconds each part took, and the base database's set-up
    if "ingest" in chosen:
        took["ingest"] = run_part("ingest", [flag for flag in flags if flag != "--large"] + extra)
    base_started = time.perf_counter()
    prepare_base()
    took["base database"] = round(time.perf_counter() - base_started, 1)
    for part in ("streams", "pages"):
        if part in chosen:
            took[part] = run_part(part, [flag for flag in flags if flag != "--large"] + extra)
    if "retrieval" in chosen:
        took["retrieval"] = run_part("retrieval", flags + extra)
        if options.large:  # and a real catalogue of the benchmarks' own, beside the synthetic corpora
            took["catalogue"] = run_part("catalogue", ["--bench"])
    if "background" in chosen:
        took["background"] = run_part("background", extra)

    everything = chosen == list(PARTS) and not extra
    command = "make bench" if everything and flags == ["--quick"] else " ".join(["python -m benchmarks", *sys.argv[1:]])
    results: dict[str, Any] = {"command": command, "machine": info, **read_parts(BENCH_DIR)}
    results["machine"]["loadavg_at_end"] = [round(value, 2) for value in os.getloadavg()]
    results["machine"]["total_seconds"] = round(time.perf_counter() - started, 1)
    results["machine"]["part_seconds"] = took
    print(write_report(results, BENCH_DIR))
    parts = ", ".join(f"{part} {seconds:.0f} s" for part, seconds in took.items())
    print(
        "Written bench/results.json, bench/results.md and bench/latency.png in "
        f"{results['machine']['total_seconds']:.0f} s ({parts})."
    )


if __name__ == "__main__":
    main()
