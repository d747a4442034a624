import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from reports import ingest
from reports.management.progress import progress_bar


class Command(BaseCommand):
    help = "Embed the report sections whose text changed since they were last embedded (or never were)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="Re-embed every section.")
        parser.add_argument("--batch-size", type=int, default=settings.EMBEDDING_BATCH_SIZE)
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        count = ingest.embed_sections(
            batch_size=options["batch_size"],
            everything=options["all"],
            progress=progress_bar(not options["no_progress"], self.stderr),
        )
        elapsed = time.perf_counter() - started
        rate = f" ({count / elapsed:.0f} sections/s)" if count else ""
        self.stdout.write(f"Embedded {count} sections in {elapsed:.1f} s{rate}.")
