import logging
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from llm import config_from_settings
from reports import generation, tasks
from reports.management.progress import progress_bar
from reports.models import Movie

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Write report sections (plot, themes, reception, ...) with the configured LLM, grounded in each film's source "
        "text: a kind the text cannot support is skipped, a section stating facts the text does not is rejected. "
        "Idempotent: a kind a film already has is not asked for again unless --force. Then embeds what was written."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--movie", action="append", default=[], metavar="SLUG", help="Only this film (repeat for more)."
        )
        parser.add_argument("--limit", type=int, help="Only the first N films (by title).")
        parser.add_argument(
            "--kinds",
            default=",".join(generation.GENERATED_KINDS),
            help=f"Comma-separated kinds to write (default: all of {', '.join(generation.GENERATED_KINDS)}).",
        )
        parser.add_argument("--force", action="store_true", help="Ask again for kinds a film already has.")
        parser.add_argument(
            "--background",
            action="store_true",
            help="Queue one task per film for the worker (python manage.py run_worker) instead of writing here.",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        config = config_from_settings(settings)
        if config is None:
            raise CommandError(
                "No LLM is configured: set OPENROUTER_API_KEY (OpenRouter) or LLM_BASE_URL (an OpenAI-compatible "
                "server such as Ollama). Nothing generated."
            )
        kinds = self._kinds(options["kinds"])
        movies = list(self._movies(options["movie"], options["limit"]))
        if not movies:
            self.stdout.write("No films to generate sections for.")
            return
        if options["background"]:
            for movie in movies:
                tasks.generate_report.enqueue(movie.pk, kinds, options["force"])
            self.stdout.write(f"Queued {len(movies)} films for the worker (python manage.py run_worker).")
            return

        totals = dict.fromkeys(["written", "unchanged", "insufficient", "removed", "rejected", "failed"], 0)
        failed_films = embedded = 0
        progress = progress_bar(not options["no_progress"], self.stderr)
        for movie in progress(movies, "Films"):
            try:
                result = generation.generate_report(movie=movie, kinds=kinds, config=config, force=options["force"])
            except Exception as error:
                # Anything else (the database, the embedder) fails this film only; the log keeps the traceback.
                logger.exception("Report generation failed film=%s", movie.slug)
                failed_films += 1
                totals["failed"] += len(kinds)
                self.stdout.write(self.style.ERROR(f"{movie.slug}: failed ({type(error).__name__}) {error}"))
                continue
            for kind, facts in result.rejected.items():
                self.stdout.write(f"{movie.slug}: {kind} rejected, unsupported facts: {', '.join(facts)}")
            if result.error is not None:
                failed_films += 1
                self.stdout.write(
                    self.style.ERROR(f"{movie.slug}: failed ({result.error.code}) {result.error.message}")
                )
            embedded += result.embedded
            for name in ("written", "unchanged", "insufficient", "removed", "rejected", "failed"):
                totals[name] += len(getattr(result, name))

        removed = f", {totals['removed']} of them removed" if totals["removed"] else ""
        self.stdout.write(
            f"Films: {len(movies) - failed_films} done, {failed_films} failed. "
            f"Sections: {totals['written']} written, {totals['unchanged']} already there, "
            f"{totals['insufficient']} skipped (insufficient source text{removed}), "
            f"{totals['rejected']} rejected (unsupported facts), {totals['failed']} failed. "
            f"Embedded {embedded} sections."
        )
        if failed_films == len(movies):
            raise CommandError(f"Every film failed ({failed_films}).")
        self.stdout.write(self.style.SUCCESS(f"Done in {time.perf_counter() - started:.1f} s."))

    def _kinds(self, value: str) -> list[str]:
        kinds = [kind.strip() for kind in value.split(",") if kind.strip()]
        if generation.Kind.OVERVIEW in kinds:
            raise CommandError("Overview sections are the source text's own (import_movies writes them).")
        try:
            kinds = generation.canonical_kinds(kinds)
        except ValueError as error:
            raise CommandError(f"{error}. Choose from: {', '.join(generation.GENERATED_KINDS)}.") from None
        if not kinds:
            raise CommandError(f"No kinds given. Choose from: {', '.join(generation.GENERATED_KINDS)}.")
        return kinds

    def _movies(self, slugs: list[str], limit: int | None) -> list[Movie]:
        movies = Movie.objects.order_by("title", "pk")
        if slugs:
            movies = movies.filter(slug__in=slugs)
            missing = sorted(set(slugs) - {movie.slug for movie in movies})
            if missing:
                raise CommandError(f"No film with the slug(s): {', '.join(missing)}.")
        if limit is not None:
            if limit < 1:
                raise CommandError("--limit must be at least 1.")
            movies = movies[:limit]
        return list(movies)
