"""Streaming benchmark: the web process exactly as the Procfile starts it, a fake OpenRouter streaming tokens at a
set rate, and 100, 500 and 1,000 chat streams open at once from a separate client process.

    python -m benchmarks streams [--quick] [--levels 100,500,1000] [--tokens 200] [--rate 20]

Three processes besides this one:
- the fake LLM (benchmarks/fake_llm.py's BenchLLMServer), which numbers every token (" r<request>t<index>") and
  records when it wrote each one and when each request arrived (time.monotonic is one clock for the machine);
- the web process: the Procfile's `web:` line under `sh -c`, with HOST/PORT/WEB_CONCURRENCY, LLM_BASE_URL at the
  fake LLM, no OpenRouter key, rate limits out of reach and the answer cache off;
- the client (benchmarks/stream_client.py: asyncio + httpx, no connection limit): for each stream a POST of a
  question to a film's chat (CSRF cookie and header, a new anonymous session each), then, once every POST has
  answered, all the GETs of the streams at once. It records the first byte of each stream and the arrival of every
  token.

Per level: time to first SSE byte, and to the first token as the client sees it (from its GET); the server's
request-to-upstream time (Message.timings["upstream_ms"], read from the database) and the same seen from outside
(GET sent to the fake LLM receiving the request); the added gap between tokens (the client's gap between two
tokens minus the fake LLM's gap between writing them); errors; the peak RSS of each gunicorn worker; and the final
status of every assistant message (each must be terminal).
"One at a time" runs a few streams sequentially with nothing else going on. Writes bench/streams.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.environment import (
    BASE_DB,
    BENCH_DIR,
    PYTHON,
    ROOT,
    bench_env,
    free_port,
    machine,
    prepare_base,
    procfile_command,
    setup_django,
    start_procfile,
    stop_process,
    wait_healthy,
    write_json,
)
from benchmarks.measure import percentiles
from benchmarks.questions import FILM_QUESTIONS
from benchmarks.stream_client import raise_open_files_limit

LEVELS = (100, 500, 1000)
# --quick (make bench): 1,000 streams take a minute and a half of the budget on their own; the full run has them.
QUICK_LEVELS = (100, 500)


# The fake LLM (its own process).


def serve_llm() -> None:
    import uvloop

    from benchmarks.fake_llm import BenchLLMServer

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    server = BenchLLMServer().start()
    server.set_scenario("bench", n=200, tokens_per_second=20.0)
    print(server.port, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()


# The orchestrator (this process).


class Bench:
    def __init__(self, *, workers: int, tokens: int, rate: float) -> None:
        self.workers = workers
        self.tokens = tokens
        self.rate = rate
        self.llm: subprocess.Popen[str] | None = None
        self.web: subprocess.Popen[bytes] | None = None
        self.llm_url = ""
        self.url = ""

    def start(self) -> None:
        self.llm = subprocess.Popen(
            [PYTHON, "-m", "benchmarks.streams", "--serve-llm"],
            cwd=ROOT,
            env=bench_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        port = int(self.llm.stdout.readline())
        self.llm_url = f"http://127.0.0.1:{port}"
        web_port = free_port()
        self.url = f"http://127.0.0.1:{web_port}"
        env = dict(
            HOST="127.0.0.1",
            PORT=str(web_port),
            WEB_CONCURRENCY=str(self.workers),
            LLM_BASE_URL=f"{self.llm_url}/api/v1",
            OPENROUTER_API_KEY="",
            RATE_LIMIT_REQUESTS="1000000",
            RATE_LIMIT_IP_REQUESTS="1000000",
            # Every simulated user starts a session from 127.0.0.1, and each has one answer in flight.
            RATE_LIMIT_IP_NEW_SESSIONS="1000000",
            CHAT_MAX_IN_FLIGHT="1000000",
            RESPONSE_CACHE_TTL="0",
        )
        self.web = start_procfile("web", "bench-web.log", **env)
        wait_healthy(self.url, self.web, "bench-web.log")

    def stop(self) -> None:
        for process in (self.web, self.llm):
            stop_process(process, 30)

    def configure_llm(self, *, tokens: int, rate: float) -> None:
        import httpx

        httpx.post(f"{self.llm_url}/bench/config", json={"n": tokens, "tokens_per_second": rate}).raise_for_status()

    def llm_dump(self) -> dict[str, Any]:
        import httpx

        return httpx.get(f"{self.llm_url}/bench/dump", timeout=60).json()

    def worker_processes(self) -> list[Any]:
        import psutil

        return psutil.Process(self.web.pid).children()

    def run_level(self, *, count: int, sequential: bool, slugs: list[str]) -> dict[str, Any]:
        import psutil

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.json"
            job = {
                "url": self.url,
                "slugs": slugs,
                "questions": FILM_QUESTIONS,
                "count": count,
                "sequential": sequential,
                "out": str(out),
            }
            (Path(tmp) / "job.json").write_text(json.dumps(job))
            workers = self.worker_processes()
            cpu_before = {w.pid: sum(w.cpu_times()[:2]) for w in workers}
            llm = psutil.Process(self.llm.pid)
            llm_before = sum(llm.cpu_times()[:2])
            machine_before = _cpu_ticks()
            peak = {w.pid: 0 for w in workers}
            started = time.monotonic()
            client = subprocess.Popen([PYTHON, "-m", "benchmarks.stream_client", str(Path(tmp) / "job.json")], cwd=ROOT)
            while client.poll() is None:
                for worker in workers:
                    with contextlib.suppress(psutil.Error):
                        peak[worker.pid] = max(peak[worker.pid], worker.memory_info().rss)
                time.sleep(0.2)
            wall = time.monotonic() - started
            if client.returncode:
                raise SystemExit(f"the client failed ({client.returncode})")
            result = json.loads(out.read_text())
        cpu = {}
        for worker in workers:
            with contextlib.suppress(psutil.Error):
                cpu[worker.pid] = sum(worker.cpu_times()[:2]) - cpu_before[worker.pid]
        result["worker_rss_mb_peak"] = [round(peak[w.pid] / 2**20) for w in workers]
        result["worker_cpu_percent"] = [round(seconds / wall * 100) for seconds in cpu.values()]
        result["worker_cpu_seconds"] = round(sum(cpu.values()), 2)
        busy, total = (after - before for after, before in zip(_cpu_ticks(), machine_before, strict=True))
        result["harness_cpu_percent"] = {
            "fake_llm": round((sum(llm.cpu_times()[:2]) - llm_before) / wall * 100),
            "client": round(result["cpu_seconds"] / wall * 100),
            "machine_busy_of_all_cores": round(busy / total * 100),
        }
        return result


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def analyse(result: dict[str, Any], llm: dict[str, Any], concurrency: int) -> dict[str, Any]:
    from chat.models import Message

    sent: dict[str, float] = llm["sent"]
    arrivals = {int(number): at for number, at in llm["arrivals"].items()}
    streams = result["streams"]
    uuids = [stream["message"] for stream in streams if "message" in stream]
    rows = {
        str(uuid): (status, timings or {}, code)
        for uuid, status, timings, code in Message.objects.filter(uuid__in=uuids).values_list(
            "uuid", "status", "timings", "error_code"
        )
    }
    statuses = Counter(status for status, _, _ in rows.values())
    errors: Counter[str] = Counter()
    ttfb, upstream, observed_upstream, gaps, delivery, first_seen = [], [], [], [], [], []
    # Once every stream has its first token, all of them are open at once: the steady state of `concurrency`
    # streams, apart from the burst of opening them (set-up work, question embeddings) that came before.
    firsts = [stream["tokens"][0][1] for stream in streams if stream.get("tokens")]
    all_open = max(firsts) if firsts else 0.0
    steady_gaps: list[float] = []
    server: dict[str, list[float]] = {"embed_ms": [], "search_ms": [], "first_token_ms": []}
    for stream in streams:
        if "error" in stream:
            errors[stream["error"]] += 1
        elif stream.get("status") != "complete":
            errors[f"final event {stream.get('final')}: {stream.get('status')}"] += 1
        elif len(stream["tokens"]) != result["tokens_expected"]:
            errors[f"{len(stream['tokens'])} tokens of {result['tokens_expected']}"] += 1
        row = rows.get(stream.get("message", ""))
        if "ttfb_ms" in stream:
            ttfb.append(stream["ttfb_ms"])
        if row and row[1].get("upstream_ms") is not None:
            upstream.append(row[1]["upstream_ms"])
            for name in ("embed_ms", "search_ms", "first_token_ms"):
                if row[1].get(name) is not None:
                    server[name].append(row[1][name])
        tokens = stream.get("tokens") or []
        if tokens:
            first_seen.append((tokens[0][1] - stream["t0"]) * 1000)
            number = int(tokens[0][0][1:].split("t")[0])
            if number in arrivals:
                observed_upstream.append((arrivals[number] - stream["t0"]) * 1000)
        for (previous, previous_at), (token, at) in itertools.pairwise(tokens):
            if previous in sent and token in sent:
                gaps.append(((at - previous_at) - (sent[token] - sent[previous])) * 1000)
                if previous_at >= all_open:
                    steady_gaps.append(gaps[-1])
        for token, at in tokens:
            if token in sent:
                delivery.append((at - sent[token]) * 1000)
    missing = len(uuids) - sum(statuses[s] for s in Message.TERMINAL)
    delivered = sum(len(stream.get("tokens") or []) for stream in streams)
    return {
        "concurrency": concurrency,
        "streams": len(streams),
        "ttfb_ms": percentiles(ttfb),
        "headers_ms": percentiles([s["headers_ms"] for s in streams if "headers_ms" in s]),
        "post_ms": percentiles([s["post_ms"] for s in streams if "post_ms" in s]),
        "upstream_ms": percentiles(upstream),
        "upstream_observed_ms": percentiles(observed_upstream),
        "server_timings_ms": {name: percentiles(values) for name, values in server.items()},
        # What the reader waits for once the page asks for the stream: from the client's GET to its first token.
        "first_token_seen_ms": percentiles(first_seen),
        "added_gap_ms": percentiles(gaps),
        "added_gap_all_open_ms": percentiles(steady_gaps),
        "all_open_after_s": round(all_open - min(stream["t0"] for stream in streams if "t0" in stream), 2)
        if firsts
        else None,
        "token_delivery_ms": percentiles(delivery),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "error_codes": dict(Counter(row[2] for row in rows.values() if row[2])),
        "statuses": dict(statuses),
        "not_terminal": missing,
        "post_seconds": round(result.get("post_seconds", 0), 2),
        "stream_seconds": round(result.get("stream_seconds", 0), 2),
        "client_loop_lag_ms": result["loop_lag_ms"],
        "worker_rss_mb_peak": result["worker_rss_mb_peak"],
        "worker_cpu_percent": result["worker_cpu_percent"],
        "tokens_delivered": delivered,
        "streams_with_tokens": sum(1 for stream in streams if stream.get("tokens")),
        # All the workers' CPU time over the level (asks, stream set-up, tokens, flushes) per token delivered: the
        # cost that, times the tokens per second, must fit in the cores.
        "worker_cpu_ms_per_token": round(result["worker_cpu_seconds"] * 1000 / delivered, 3) if delivered else None,
        "harness_cpu_percent": result["harness_cpu_percent"],
    }


def wait_terminal(uuids: list[str], timeout: float = 30) -> None:
    """Give the server time to write the final state of answers still streaming after the client is done. A message
    still `pending` is one no stream ever claimed: it stays so (counted as not terminal)."""
    from chat.models import Message

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Message.objects.filter(uuid__in=uuids, status=Message.Status.STREAMING).exists():
            return
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Fewer streams, 1,000 at once left out (make bench).")
    parser.add_argument("--levels", help="Comma-separated concurrency levels (default 100,500,1000; quick 100,500).")
    parser.add_argument("--tokens", type=int, default=200, help="Tokens per answer (default 200).")
    parser.add_argument("--rate", type=float, default=20.0, help="Tokens per second from the fake LLM (default 20).")
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY (default 2, the Procfile's).")
    parser.add_argument("--serve-llm", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve_llm:
        return serve_llm()

    default_levels = QUICK_LEVELS if options.quick else LEVELS
    levels = [int(level) for level in options.levels.split(",")] if options.levels else list(default_levels)
    prepare_base()
    setup_django(BASE_DB)
    from django.db import connection

    from chat.models import Conversation, Message
    from reports.models import Movie

    # Each run starts from no chats: the answers of earlier runs would only slow the queries down.
    Conversation.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE django_session, chat_ratecounter")
    slugs = sorted(set(Movie.objects.filter(sections__isnull=False).values_list("slug", flat=True)))
    random.Random(6).shuffle(slugs)
    connection.close()
    open_files = raise_open_files_limit()

    bench = Bench(workers=options.workers, tokens=options.tokens, rate=options.rate)
    output = BENCH_DIR / "streams.json"
    results: dict[str, Any] = {
        "machine": machine(),
        "procfile": procfile_command("web"),
        "workers": options.workers,
        "tokens": options.tokens,
        "tokens_per_second": options.rate,
        "open_files_limit": open_files,
        "levels": [],
    }
    try:
        bench.start()
        print(
            f"Web process up at {bench.url} ({options.workers} workers), fake LLM at {bench.llm_url}", file=sys.stderr
        )
        # Warm up every worker (the model, the connection pools, the plans); not measured.
        bench.configure_llm(tokens=3, rate=100)
        bench.run_level(count=16, sequential=False, slugs=slugs)
        bench.llm_dump()

        sequential = 10 if options.quick else 30
        bench.configure_llm(tokens=20, rate=options.rate)
        raw = bench.run_level(count=sequential, sequential=True, slugs=slugs)
        raw["tokens_expected"] = 20
        wait_terminal([s["message"] for s in raw["streams"] if "message" in s])
        results["unloaded"] = analyse(raw, bench.llm_dump(), 1)
        if results["unloaded"]["errors"] == sequential:
            # Nothing to measure: the server refused or failed every stream (its log is in the data directory).
            raise SystemExit(f"every stream failed one at a time: {results['unloaded']['error_kinds']}")
        results["unloaded"]["tokens"] = 20
        _report(results["unloaded"], "one at a time")

        for level in levels:
            bench.configure_llm(tokens=options.tokens, rate=options.rate)
            raw = bench.run_level(count=level, sequential=False, slugs=slugs)
            raw["tokens_expected"] = options.tokens
            wait_terminal([s["message"] for s in raw["streams"] if "message" in s])
            analysed = analyse(raw, bench.llm_dump(), level)
            results["levels"].append(analysed)
            _report(analysed, f"{level} at once")
            write_json(output, results)
            connection.close()
    finally:
        bench.stop()
    results["statuses_total"] = dict(Counter(Message.objects.filter(role="assistant").values_list("status", flat=True)))
    write_json(output, results)


def _report(level: dict[str, Any], label: str) -> None:
    print(
        f"  {label}: first byte p50 {level['ttfb_ms']['p50']} / p99 {level['ttfb_ms']['p99']} ms; first token seen "
        f"p50 {level['first_token_seen_ms'].get('p50')} ms; upstream p50 "
        f"{level['upstream_ms']['p50']} ms (seen from outside {level['upstream_observed_ms']['p50']} ms); added gap "
        f"p50 {level['added_gap_ms']['p50']} / p99 {level['added_gap_ms']['p99']} ms (once all open, after "
        f"{level['all_open_after_s']} s: p50 {level['added_gap_all_open_ms'].get('p50')} / "
        f"p99 {level['added_gap_all_open_ms'].get('p99')} ms); errors {level['errors']} "
        f"{level['error_kinds'] or ''} {level['error_codes'] or ''}; statuses {level['statuses']}; worker RSS "
        f"{level['worker_rss_mb_peak']} MB, CPU {level['worker_cpu_percent']} % "
        f"({level['worker_cpu_ms_per_token']} ms per token); harness CPU "
        f"{level['harness_cpu_percent']}; client loop lag p99 {level['client_loop_lag_ms']['p99']} ms",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    main()
