"""Database connections per request: psycopg's pool against persistent connections against a new connection
per request, through the whole request cycle (uvicorn serving the ASGI app on loopback; /healthz runs one query).

    python scripts/bench_db.py [--requests 2000]

Prints a table and writes bench/db_connections.json. Uses the embedded PostgreSQL of FLICKORA_DATA_DIR (./var).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = {
    "pool (DB_POOL=1)": {"DB_POOL": "1"},
    "persistent (CONN_MAX_AGE=60)": {"DB_POOL": "0", "CONN_MAX_AGE": "60"},
    "new connection per request": {"DB_POOL": "0", "CONN_MAX_AGE": "0"},
}
WORKER = """
import json, sys, time
import django
django.setup()
import httpx
sys.path.insert(0, ".")
from tests.live import LiveASGIServer
from flickora.asgi import application
server = LiveASGIServer(application).start()
with httpx.Client(base_url=server.url) as client:
    for _ in range(50):
        client.get("/healthz")
    timings = []
    for _ in range(int(sys.argv[1])):
        started = time.perf_counter()
        response = client.get("/healthz")
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
server.stop()
print(json.dumps(timings))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    results = {}
    for name, env in MODES.items():
        process_env = {
            **os.environ,
            **env,
            "DJANGO_SETTINGS_MODULE": "flickora.settings",
            "DEBUG": "1",
            "LOG_LEVEL": "WARNING",
            "ALLOWED_HOSTS": "127.0.0.1",
        }
        output = subprocess.run(
            [sys.executable, "-c", WORKER, str(args.requests)],
            cwd=ROOT,
            env=process_env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        timings = sorted(json.loads(output.strip().splitlines()[-1]))
        results[name] = {
            "requests": len(timings),
            "p50_ms": round(statistics.median(timings), 3),
            "p95_ms": round(timings[int(len(timings) * 0.95)], 3),
            "p99_ms": round(timings[int(len(timings) * 0.99)], 3),
        }
    print("| connections | requests | p50 ms | p95 ms | p99 ms |")
    print("| --- | --- | --- | --- | --- |")
    for name, row in results.items():
        print(f"| {name} | {row['requests']} | {row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} |")
    out = ROOT / "bench" / "db_connections.json"
    out.parent.mkdir(exist_ok=True)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version()}
    out.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
