"""The web process while the worker imports: page and chat latency with the worker idle and while it embeds the
Wikidata catalogue in the background, the memory of both and the worker's pace (`python -m benchmarks background`).

On a copy of the base database (the 761 films), the Procfile's web process (one worker) and, for the second
measurement, the Procfile's worker importing `--films` catalogue films. Each round asks, one after the other, the
catalogue page, a film's page and a question across all films (the offline answerer, read to its last event; the
retrieval cache off, so every question is retrieved). Writes bench/background.json.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import httpx
import psutil

from benchmarks.environment import (
    BASE_DB,
    BENCH_DIR,
    DATA_DIR,
    ROOT,
    admin_connection,
    bench_env,
    database_url,
    free_port,
    manage,
    prepare_base,
    recreate_database,
    start_procfile,
    stop_process,
    wait_healthy,
)
from benchmarks.measure import percentiles, timed
from benchmarks.questions import QUESTIONS

DATABASE = "flickora_background"
PAGES = ("catalogue", "film page", "question across films")


class Browser(httpx.Client):
    """A client that sends back the cookies it was given, the Secure ones too: production settings mark them Secure,
    and this server is plain HTTP on loopback (a browser would be behind TLS)."""

    def __init__(self, url: str) -> None:
        super().__init__(base_url=url, timeout=60, event_hooks={"response": [self._keep]})
        self.jar: dict[str, str] = {}

    def _keep(self, response: httpx.Response) -> None:
        self.jar.update(response.cookies.items())
        self.headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.jar.items())
        if "csrftoken" in self.jar:
            self.headers["X-CSRFToken"] = self.jar["csrftoken"]


def measure(url: str, rounds: int, offset: int) -> dict[str, dict[str, Any]]:
    times: dict[str, list[float]] = {page: [] for page in PAGES}
    with Browser(url) as web:
        web.get("/")
        slug = web.get("/movies/vertigo/").url.path
        for number in range(rounds):
            times["catalogue"].append(timed(lambda: web.get("/").raise_for_status())[0])
            times["film page"].append(timed(lambda: web.get(slug).raise_for_status())[0])
            question = QUESTIONS[(offset + number) % len(QUESTIONS)] + f" ({offset + number})"
            times["question across films"].append(timed(lambda q=question: ask(web, q))[0])
    return {page: percentiles(values) for page, values in times.items()}


def ask(web: Browser, question: str) -> None:
    started = web.post("/chat/", data={"question": question})
    started.raise_for_status()
    body = web.get(started.json()["stream"]).text
    assert "event: done" in body, body[-300:]


def web_memory(pid: int) -> dict[str, int]:
    """The web process after serving, in MB: each process's resident and proportional (PSS: shared pages divided
    among the processes sharing them, so the processes' PSS add up to what they cost together)."""
    master = psutil.Process(pid)
    worker = master.children()[0]
    mb = 2**20
    return {
        "master_rss_mb": round(master.memory_info().rss / mb),
        "master_pss_mb": round(master.memory_full_info().pss / mb),
        "worker_rss_mb": round(worker.memory_info().rss / mb),
        "worker_pss_mb": round(worker.memory_full_info().pss / mb),
    }


def parts_done() -> list[float]:
    """When each part of catalogue films ended: the parts the worker embeds (the bundled films' come first, and
    their vectors ship with the code, so their parts take a fraction of a second)."""
    with admin_connection(DATABASE) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM done_at) FROM reports_importpart WHERE done_at IS NOT NULL AND source = %s",
            ["wikidata"],
        )
        return sorted(float(value) for (value,) in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=60, help="Rounds of the three requests per measurement.")
    parser.add_argument("--films", type=int, default=2000, help="Catalogue films the worker imports meanwhile.")
    parser.add_argument("--output", default=str(BENCH_DIR / "background.json"))
    args = parser.parse_args()

    prepare_base()
    recreate_database(DATABASE, template=BASE_DB)
    # Pages with DEBUG off need the static manifest, as a deploy has it (into staticfiles/, which git ignores).
    manage("collectstatic", "--noinput", database=DATABASE)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    web = start_procfile(
        "web",
        "bench-background-web.log",
        DATABASE_URL=database_url(DATABASE),
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="1",
        OPENROUTER_API_KEY="",
        LLM_BASE_URL="",
        RETRIEVAL_CACHE_SIZE="0",
        PAGE_CACHE_SIZE="0",  # every page rendered: each part imported would make them new anyway
        RESPONSE_CACHE_TTL="0",
        RATE_LIMIT_REQUESTS="1000000",
        RATE_LIMIT_IP_REQUESTS="1000000",
        RATE_LIMIT_IP_NEW_SESSIONS="1000000",
    )
    worker = None
    try:
        wait_healthy(url, web, "bench-background-web.log")
        measure(url, 3, 1000)  # warm
        idle = measure(url, args.rounds, 0)
        memory = web_memory(web.pid)
        manage("import_movies", "--background", "--catalogue", str(args.films), database=DATABASE)
        worker = start_procfile("worker", "bench-background-worker.log", DATABASE_URL=database_url(DATABASE))
        while len(parts_done()) < 1:  # the model loaded, a part of catalogue films embedded: the worker's pace
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited; see {DATA_DIR / 'bench-background-worker.log'}")
            time.sleep(0.5)
        before = parts_done()
        rss = [psutil.Process(worker.pid).memory_info().rss]
        busy = measure(url, args.rounds, 500)
        rss.append(psutil.Process(worker.pid).memory_info().rss)
        during = parts_done()
        while len(during) < len(before) + 3:  # the pace over a few parts at least
            time.sleep(1)
            during = parts_done()
    finally:
        for process in (worker, web):
            stop_process(process)
    films_per_part = int(bench_env().get("IMPORT_PART_FILMS") or 40)
    # From the end of the first catalogue part (the model loaded) to the last: films per second, embedded and in.
    pace = (len(during) - 1) * films_per_part / (during[-1] - during[0])
    result = {
        "rounds": args.rounds,
        "idle": idle,
        "importing": busy,
        "web": memory,
        "worker_rss_mb": round(max(rss) / 2**20),
        "parts_during_measurement": len(during) - len(before),
        "films_per_second": round(pace, 2),
    }
    (ROOT / args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'':24} {'idle p50':>10} {'p99':>8} {'importing p50':>14} {'p99':>8}")
    for page in PAGES:
        print(
            f"{page:24} {idle[page]['p50']:>8} ms {idle[page]['p99']:>5} ms {busy[page]['p50']:>11} ms "
            f"{busy[page]['p99']:>5} ms"
        )
    print(
        f"web after serving: master {memory['master_rss_mb']} MB resident ({memory['master_pss_mb']} MB PSS), one "
        f"worker {memory['worker_rss_mb']} MB resident ({memory['worker_pss_mb']} MB PSS)"
    )
    print(
        f"worker: {result['worker_rss_mb']} MB resident, {result['parts_during_measurement']} parts of "
        f"{films_per_part} films while measuring, {result['films_per_second']} films/s"
    )


if __name__ == "__main__":
    main()
