"""The background import through the real parts: `import_movies --background`, the Procfile's worker process and
the task queue in PostgreSQL, on a database of their own (the worker commits, where every other test runs in a
transaction it rolls back). The worker is killed half-way and started again."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from reports import importing
from tests.live import ROOT, database_url, procfile_command

PART_FILMS = 2
FILMS = 6


@pytest.fixture
def own_database(db):
    name = f"flickora_worker_{os.getpid()}"
    settings_dict = {**connection.settings_dict, "NAME": name}
    admin_url = database_url(connection.settings_dict).replace("postgres://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = database_url(settings_dict)
    try:
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def environment(url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="flickora.settings",
        DATABASE_URL=url,
        IMPORT_PART_FILMS=str(PART_FILMS),
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
    )
    return env


def manage(url: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment(url), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def worker(url: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(  # the Procfile's own command line, exec'd so that the worker is this process
        ["/bin/sh", "-c", f"exec {procfile_command('worker')} --no-startup-delay {' '.join(extra)}"],
        cwd=ROOT,
        env=environment(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def poll(conn: psycopg.Connection, query: str) -> tuple:
    return conn.execute(query).fetchone()


PROGRESS = """
SELECT (SELECT count(*) FROM reports_importpart WHERE done_at IS NOT NULL),
       (SELECT count(*) FROM django_tasks_database_dbtaskresult
         WHERE task_path = 'reports.tasks.import_part' AND status = 'RUNNING')
"""


def test_a_worker_killed_half_way_and_started_again_finishes_the_import(own_database):
    url = own_database
    manage(url, "migrate", "--noinput")
    queued = manage(url, "import_movies", "--background", "--limit", str(FILMS))
    assert queued.startswith("Import queued: the worker (python manage.py run_worker) plans it")

    first = worker(url)
    postgresql_url = url.replace("postgres://", "postgresql://")
    with (
        psycopg.connect(postgresql_url, autocommit=True) as conn,
        psycopg.connect(postgresql_url, autocommit=True) as gate,
    ):
        try:
            # Killed half-way through a part, once another is done. Holding the lock every part takes first keeps the
            # next part waiting inside its task, whatever the timing: its task is marked running, its films not in.
            for _ in range(6000):
                if poll(conn, PROGRESS)[0] >= 1:
                    break
                assert first.poll() is None, first.stdout.read()
                time.sleep(0.02)
            gate.execute("SELECT pg_advisory_lock(%s)", [importing.IMPORT_LOCK])
            for _ in range(6000):
                waiting = poll(conn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                if waiting == (1,) and poll(conn, PROGRESS)[1] == 1:
                    break
                assert first.poll() is None, first.stdout.read()
                time.sleep(0.02)
            first.send_signal(signal.SIGKILL)
        finally:
            first.kill()
            first.wait(30)
        done, running = poll(conn, PROGRESS)
        assert (running, 1 <= done < FILMS // PART_FILMS) == (1, True)
        gate.execute("SELECT pg_advisory_unlock(%s)", [importing.IMPORT_LOCK])

        second = worker(url, "--batch")
        out, _ = second.communicate(timeout=600)
        assert second.returncode == 0, out
        assert "Queued again 1 task(s) a stopped worker left running." in out

        keys = [key for (key,) in conn.execute("SELECT source_key FROM reports_movie ORDER BY source_key")]
        assert keys == sorted(list(importing.wikipedia_records())[:FILMS])
        assert poll(conn, "SELECT count(*) FROM reports_moviesection WHERE embedding IS NULL") == (0,)
        # Every part done once, by one task each, every task a success; the run finished.
        assert poll(conn, "SELECT count(*), count(done_at) FROM reports_importpart") == (3, 3)
        statuses = conn.execute(
            "SELECT task_path, status, count(*) FROM django_tasks_database_dbtaskresult GROUP BY 1, 2 ORDER BY 1"
        ).fetchall()
        assert statuses == [
            ("reports.tasks.import_part", "SUCCESSFUL", 3),
            ("reports.tasks.plan_import", "SUCCESSFUL", 1),
        ]
        assert poll(conn, "SELECT count(*) FROM reports_importrun WHERE finished_at IS NOT NULL") == (1,)
        # As a foreground import of the same films would leave them: each film's sections numbered from 0, no
        # section twice, the facts of the films Wikidata has.
        gaps = poll(
            conn,
            "SELECT count(*) FROM (SELECT movie_id FROM reports_moviesection GROUP BY movie_id"
            " HAVING max(position) + 1 <> count(*) OR min(position) <> 0) films",
        )
        assert gaps == (0,)
        assert poll(conn, "SELECT count(*) FROM reports_filmfacts") == (4,)
