"""Background tasks, run by the worker (`python manage.py run_worker`) from the queue kept in PostgreSQL
(django-tasks with its database backend). Each is idempotent: run twice, or again after a worker was killed half-way,
it ends where one run would have."""

from __future__ import annotations

from django.conf import settings
from django_tasks import task
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from llm import config_from_settings
from reports import generation, importing
from reports.models import ImportRun, Movie

# Higher runs first: a single film someone asked for goes before the parts of a long import, and sections written
# by an LLM (which cost money and wait on a remote server) after both.
TMDB_PRIORITY, PLAN_PRIORITY, PART_PRIORITY, GENERATE_PRIORITY = 50, 10, 0, -10


@task(priority=PLAN_PRIORITY)
def plan_import(catalogue: int | None = None, limit: int | None = None, force: bool = False) -> str:
    run = importing.plan(catalogue=catalogue, limit=limit, force=force, part_films=settings.IMPORT_PART_FILMS)
    return "up to date" if run is None else f"run {run.pk}: {run.description}"


@task(priority=PART_PRIORITY)
def import_part(part_id: int) -> str:
    result = importing.run_part(part_id)
    return "its run is gone" if result is None else str(result)


@task(priority=TMDB_PRIORITY)
def import_tmdb(tmdb_id: int) -> str:
    return str(importing.import_tmdb_film(tmdb_id))


class GenerationFailed(RuntimeError):
    """The LLM failed a film's report; the task fails with its message (and can be queued again)."""


@task(priority=GENERATE_PRIORITY)
def generate_report(movie_id: int, kinds: list[str], force: bool = False) -> str:
    config = config_from_settings(settings)
    if config is None:
        raise GenerationFailed("No LLM is configured: set OPENROUTER_API_KEY or LLM_BASE_URL.")
    movie = Movie.objects.filter(pk=movie_id).first()
    if movie is None:
        return "the film is gone"
    result = generation.generate_report(movie=movie, kinds=kinds, config=config, force=force)
    if result.error is not None:
        raise GenerationFailed(f"{movie.slug}: {result.error.code}: {result.error.message}")
    return (
        f"{movie.slug}: {len(result.written)} written, {len(result.unchanged)} already there, "
        f"{len(result.insufficient)} insufficient, {len(result.rejected)} rejected; {result.embedded} embedded"
    )


def _part_tasks():
    return DBTaskResult.objects.filter(task_path=import_part.module_path)


def parts_queued() -> set[int]:
    """The parts whose task waits or runs."""
    waiting = _part_tasks().filter(status__in=[TaskResultStatus.READY, TaskResultStatus.RUNNING])
    return {args_kwargs["args"][0] for args_kwargs in waiting.values_list("args_kwargs", flat=True)}


def failed_parts(run: ImportRun) -> int:
    """The parts of `run` not done whose last task failed."""
    failed = _part_tasks().filter(status=TaskResultStatus.FAILED).values_list("args_kwargs", flat=True)
    ids = {args_kwargs["args"][0] for args_kwargs in failed} - parts_queued()
    return run.parts.filter(done_at=None, pk__in=ids).count()
