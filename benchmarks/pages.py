"""Pages under load: `wrk -t1 -c16 -d10s --latency` against the Procfile's web process (2 workers, production
settings, the 761 films of the base database), for `/healthz`, the catalogue, a film's page and a title search.

    python -m benchmarks pages [--quick] [--seconds 10] [--connections 16]

Three ways of serving, in one run, one after the other on the same database:
- "Django's ASGI handler" (`WEB_THREADS=0`, `PAGE_CACHE_SIZE=0`): every sync view through Django's ASGI path, a new
  thread per request and two hops per middleware, as flickora served before;
- "page threads" (`PAGE_CACHE_SIZE=0`): sync views whole on the worker's page threads (flickora/handlers.py),
  every page rendered;
- "page threads, pages kept" (the app's defaults): the same, with the rendered film and catalogue pages kept by
  corpus generation (reports/views.py). wrk asks the same URL again and again, so these are the kept pages' figures;
  the row above is what a page costs the first time.

Each URL gets a second of the same load first, unmeasured (templates compiled, the pool's connections opened). wrk
runs on the same two cores as the server. Per URL: requests per second, latency p50 / p99, non-2xx responses,
and each worker's CPU share and RSS after; and the web process's start (the Procfile's command, its imports, the
question encoder loaded) to its first request served. Writes bench/pages.json.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import time
from typing import Any

import httpx
import psutil

from benchmarks.environment import (
    BASE_DB,
    BENCH_DIR,
    ROOT,
    database_url,
    free_port,
    machine,
    manage,
    prepare_base,
    start_procfile,
    stop_process,
    wait_healthy,
    write_json,
)

# What each page is: a path on the base database's films.
PATHS = {"healthz": "/healthz", "catalogue": "/", "film page": "/movies/vertigo/", "title search": "/?q=godfather"}
VARIANTS = {
    "Django's ASGI handler": {"WEB_THREADS": "0", "PAGE_CACHE_SIZE": "0"},
    "page threads": {"PAGE_CACHE_SIZE": "0"},
    "page threads, pages kept": {},
}
# The baseline (wrk -t1 -c16 -d10s, 2 workers, 150 films, before this benchmark): requests per second.
BEFORE_RPS = {"healthz": 210, "catalogue": 147, "film page": 238, "title search": 102}
LOG = "bench-pages-web.log"


def wrk(url: str, *, seconds: int, connections: int) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Latency Distribution" not in out:
        raise SystemExit(f"wrk gave no latencies for {url}:\n{out}")
    return parse_wrk(out)


def parse_wrk(out: str) -> dict[str, Any]:
    """What wrk --latency printed: requests per second, p50 and p99, requests, failures."""
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        # The distribution's own lines: "+/- Stdev" cells such as "77.50%" end in "50%" too.
        "p50_ms": _ms(re.search(r"^\s+50%\s+(\S+)$", out, re.MULTILINE).group(1)),
        "p99_ms": _ms(re.search(r"^\s+99%\s+(\S+)$", out, re.MULTILINE).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }


def _ms(text: str) -> float:
    """wrk's durations ("812.00us", "12.31ms", "1.20s", "2.00m") in milliseconds."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if found is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    value, unit = found.groups()
    return round(float(value) * {"us": 0.001, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}[unit], 2)


def measure_variant(env: dict[str, str], *, seconds: int, connections: int) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    web = start_procfile(
        "web",
        LOG,
        DATABASE_URL=database_url(BASE_DB),
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="2",
        RATE_LIMIT_IP_NEW_SESSIONS="1000000",
        **env,
    )
    try:
        ready = wait_healthy(url, web, LOG)
        workers = psutil.Process(web.pid).children()
        pages = {}
        for name, path in PATHS.items():
            response = httpx.get(url + path, timeout=30)
            if response.status_code != 200:
                raise SystemExit(f"{path} answered {response.status_code}; see {LOG}")
            # A second of the same load first, unmeasured: the templates compiled, the pool's connections opened.
            wrk(url + path, seconds=1, connections=connections)
            cpu_before = [sum(worker.cpu_times()[:2]) for worker in workers]
            started = time.monotonic()
            pages[name] = wrk(url + path, seconds=seconds, connections=connections)
            wall = time.monotonic() - started
            pages[name]["worker_cpu_percent"] = [
                round((sum(worker.cpu_times()[:2]) - before) / wall * 100)
                for worker, before in zip(workers, cpu_before, strict=True)
            ]
        rss = [round(worker.memory_info().rss / 2**20) for worker in workers]
    finally:
        stop_process(web)
    return {"pages": pages, "worker_rss_mb": rss, "start_to_first_request_s": round(ready, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 s per URL instead of 10 (make bench).")
    parser.add_argument("--seconds", type=int, help="wrk's -d per URL (default 10, 3 with --quick).")
    parser.add_argument("--connections", type=int, default=16, help="wrk's -c (default 16).")
    args = parser.parse_args()
    seconds = args.seconds or (3 if args.quick else 10)
    output = BENCH_DIR / "pages.json"
    if shutil.which("wrk") is None:
        print("pages: wrk is not installed (Debian: apt-get install wrk; make install does): not measured.")
        write_json(output, {"machine": machine(), "skipped": "wrk is not installed"})
        return

    prepare_base()
    # Pages with DEBUG off need the static manifest, as a deploy has it (into staticfiles/, which git ignores).
    manage("collectstatic", "--noinput", database=BASE_DB)
    result: dict[str, Any] = {
        "machine": machine(),
        "quick": args.quick,
        "command": f"wrk -t1 -c{args.connections} -d{seconds}s --latency",
        "workers": 2,
        "paths": PATHS,
        "before_rps": BEFORE_RPS,
        "variants": {},
    }
    for name, env in VARIANTS.items():
        result["variants"][name] = measure_variant(env, seconds=seconds, connections=args.connections)
        result["variants"][name]["settings"] = env
    write_json(output, result)
    print(f"{'':28} " + " ".join(f"{page:>26}" for page in PATHS))
    for name, variant in result["variants"].items():
        cells = [
            f"{row['requests_per_second']:>8.0f} rps {row['p50_ms']:>5.1f}/{row['p99_ms']:>5.1f} ms"
            for row in variant["pages"].values()
        ]
        print(f"{name:28} " + " ".join(f"{cell:>26}" for cell in cells))
    print(f"Written {output.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
