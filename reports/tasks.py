"""Background tasks, run by the worker (`python manage.py run_worker`) from the queue kept in PostgreSQL
(django-tasks with its database backend). Each is idempotent: run twice, or again after a worker was killed half-way,
it ends where one run would have."""

from __future__ import annotations

from django.conf import settings
from django_tasks import task
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from reports import importing
from reports.models import ImportRun

# Higher runs first: a single film someone asked for goes before the parts of a long import.
PLAN_PRIORITY, PART_PRIORITY = 10, 0


@task(priority=PLAN_PRIORITY)
def plan_import(catalogue: int | None = None, limit: int | None = None, force: bool = False) -> str:
    run = importing.plan(catalogue=catalogue, limit=limit, force=force, part_films=settings.IMPORT_PART_FILMS)
    return "up to date" if run is None else f"run {run.pk}: {run.description}"


@task(priority=PART_PRIORITY)
def import_part(part_id: int) -> str:
    result = importing.run_part(part_id)
    return "its run is gone" if result is None else str(result)


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
