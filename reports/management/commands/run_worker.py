import os
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.management.commands import db_worker
from django_tasks_db.models import DBTaskResult

# A worker holds this advisory lock (with its id) on a connection of its own for as long as it lives: PostgreSQL
# lets go of it when the process dies, however it dies, which is how another worker knows its tasks were cut short.
_LOCK_KEY = "SELECT hashtext('flickora-worker:' || %s)"


class Command(db_worker.Command):
    help = (
        "Run the background worker (imports, report generation): the task queue in PostgreSQL, at lower CPU priority "
        "than the web process (WORKER_NICE). Tasks a killed worker left running are queued again first."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.WORKER_NICE > 0:
            os.nice(settings.WORKER_NICE)
        with psycopg.connect(**connection.get_connection_params(), autocommit=True) as alive:
            alive.execute(f"SELECT pg_advisory_lock(({_LOCK_KEY}))", [options["worker_id"]])
            requeued = requeue_abandoned(alive)
            if requeued:
                self.stdout.write(f"Queued again {requeued} task(s) a stopped worker left running.")
            connection.close()  # the lock's connection stays; Django's reconnects when the worker needs it
            super().handle(*args, **options)


def requeue_abandoned(alive: psycopg.Connection) -> int:
    """Put back in the queue the tasks marked running whose worker holds its lock no more (it was killed, or its
    machine went away); their work is idempotent and runs again from the start."""
    requeued = 0
    for task_id, worker_ids in DBTaskResult.objects.running().values_list("id", "worker_ids"):
        worker_id = worker_ids[-1] if worker_ids else ""
        free = alive.execute(f"SELECT pg_try_advisory_lock(({_LOCK_KEY}))", [worker_id]).fetchone()[0]
        if not free:
            continue
        alive.execute(f"SELECT pg_advisory_unlock(({_LOCK_KEY}))", [worker_id])
        requeued += DBTaskResult.objects.filter(pk=task_id, status=TaskResultStatus.RUNNING).update(
            status=TaskResultStatus.READY, started_at=None
        )
    return requeued
