import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from reports import importing


class Command(BaseCommand):
    help = "How far the background import is: films ready (every section embedded) of how many, parts, time left."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--watch", action="store_true", help="Print the status again every few seconds until done.")
        parser.add_argument("--interval", type=float, default=5.0, help="Seconds between lines with --watch.")

    def handle(self, *args: Any, **options: Any) -> None:
        while True:
            status = importing.status()
            run = status.run
            if run is None:
                self.stdout.write(f"No background import yet. {status.line()}")
                return
            state = "under way" if status.importing else f"finished {run.finished_at:%Y-%m-%d %H:%M}"
            self.stdout.write(f"{run.description}, started {run.started_at:%Y-%m-%d %H:%M}, {state}: {status.line()}")
            if not (options["watch"] and status.importing):
                return
            time.sleep(options["interval"])
