"""Where the benchmarks run: production settings on the embedded PostgreSQL under `FLICKORA_DATA_DIR` (default
var/bench, so the development data under var/ is never touched), the databases there, and the machine."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
DATA_DIR = Path(os.environ.get("FLICKORA_DATA_DIR") or ROOT / "var" / "bench").resolve()
PYTHON = sys.executable
# The database with the real films (import_movies), which the stream benchmark serves and the others copy.
BASE_DB = "flickora"
# The one `import_movies` into a fresh database (the ingest benchmark's); the base database is copied from it.
INGEST_DB = "flickora_ingest"


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


def procfile_command(process: str) -> str:
    """The command line of one of the Procfile's processes (web, worker)."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return next(line.split(":", 1)[1].strip() for line in lines if line.startswith(f"{process}:"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_procfile(process: str, log_name: str, **env: str) -> subprocess.Popen[bytes]:
    """The Procfile's `process` line under `sh -c`, in the benchmarks' environment with `env`, its output to
    `log_name` in the data directory."""
    log = open(DATA_DIR / log_name, "wb")
    return subprocess.Popen(
        ["sh", "-c", "exec " + procfile_command(process)],
        cwd=ROOT,
        env=bench_env(**env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_healthy(url: str, process: subprocess.Popen[bytes], log_name: str, seconds: float = 120) -> float:
    """Until `url`/healthz answers 200; the seconds it took (from now: call it as the process starts). An exit or
    `seconds` without it is the end of the benchmark."""
    import httpx

    started = time.monotonic()
    while time.monotonic() < started + seconds:
        if process.poll() is not None:
            raise SystemExit(f"the web process exited ({process.returncode}); see {DATA_DIR / log_name}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"the web process did not answer /healthz within {seconds:.0f} s; see {DATA_DIR / log_name}")


def stop_process(process: subprocess.Popen[Any] | None, seconds: float = 60) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(seconds)
        except subprocess.TimeoutExpired:
            process.kill()


def run_module(module: str, *args: str, **env: str) -> None:
    """`python -m module args` from the repository root, in the benchmarks' environment."""
    subprocess.run([PYTHON, "-m", module, *args], cwd=ROOT, env=bench_env(**env), check=True)


def setup_django(database: str = BASE_DB) -> None:
    """Configure Django for this process against `database` on the embedded server (started if needed)."""
    os.environ.update(bench_env())
    import django
    from django.conf import settings

    django.setup()
    # Before the first connection: the connection handler reads this same dict when it opens one.
    settings.DATABASES["default"]["NAME"] = database


def socket_dir() -> Path:
    """Start the embedded server if needed (and create the base database); the socket directory to connect to."""
    from flickora.db import ensure_server

    return ensure_server(DATA_DIR, BASE_DB)


def admin_connection(database: str = "postgres") -> Any:
    """The embedded server's superuser (peer authentication lets this OS user in as it), autocommit."""
    from flickora.db import superuser_connection

    return superuser_connection(socket_dir(), database)


def database_url(database: str) -> str:
    """`database` as the app sees it: its own role, not the superuser."""
    from urllib.parse import quote

    from flickora.db import APP_ROLE

    return f"postgres://{APP_ROLE}@{quote(str(socket_dir()), safe='')}/{database}"


def section_count(database: str) -> int:
    import psycopg

    try:
        with admin_connection(database) as conn:
            return conn.execute("SELECT count(embedding) FROM reports_moviesection").fetchone()[0]
    except psycopg.Error:
        return 0


def recreate_database(name: str, *, template: str | None = None) -> None:
    """`name` made anew (from `template`), owned by the app's role."""
    from psycopg import sql

    from flickora.db import APP_ROLE

    with admin_connection() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        create = sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(APP_ROLE))
        if template:
            create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(create)


def manage(*args: str, database: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `manage.py args` against `database` (its output captured, or dropped)."""
    return subprocess.run(
        [PYTHON, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=bench_env(DATABASE_URL=database_url(database)),
        check=True,
        text=True,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE if capture else None,
    )


def prepare_base() -> None:
    """Make sure the base database has the real films, embedded (copied from the ingest run when there is one), and
    the planner's statistics of them, as an import leaves them (a base made before imports analysed had none)."""
    manage("migrate", "--noinput", database=BASE_DB)
    if section_count(BASE_DB):
        with admin_connection(BASE_DB) as conn:
            conn.execute("ANALYZE")  # every table: under a second for the 761 films
        return
    if section_count(INGEST_DB):
        print("Base database: copying the films imported by the ingest benchmark", file=sys.stderr)
        recreate_database(BASE_DB, template=INGEST_DB)
        return
    print("Base database: importing the films (half a minute)", file=sys.stderr)
    manage("import_movies", "--no-progress", database=BASE_DB)


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
