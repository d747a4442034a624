from django.contrib import admin
from django.http import HttpRequest

from reports.models import FilmFacts, ImportPart, ImportRun, Movie, MovieSection


class MovieSectionInline(admin.StackedInline):
    model = MovieSection
    extra = 0
    fields = ["position", "kind", "origin", "heading", "content"]


@admin.register(Movie)
class MovieAdmin(admin.ModelAdmin):
    list_display = ["title", "year", "director", "source"]
    list_filter = ["source"]
    search_fields = ["title", "director"]
    prepopulated_fields = {"slug": ["title"]}
    inlines = [MovieSectionInline]


@admin.register(MovieSection)
class MovieSectionAdmin(admin.ModelAdmin):
    list_display = ["movie", "position", "kind", "origin", "heading"]
    list_filter = ["kind", "origin"]
    search_fields = ["movie__title", "heading"]
    raw_id_fields = ["movie"]
    exclude = ["embedding"]
    readonly_fields = ["content_hash", "embedded_hash"]


@admin.register(FilmFacts)
class FilmFactsAdmin(admin.ModelAdmin):
    """Read-only: the facts come from Wikidata at each import (`import_movies`)."""

    list_display = ["movie", "imdb_id", "year", "matched_by", "runtime", "tomatometer", "metacritic"]
    list_filter = ["matched_by"]
    search_fields = ["movie__title", "imdb_id", "title", "directors", "cast"]
    raw_id_fields = ["movie"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: FilmFacts | None = None) -> bool:
        return False


class ImportPartInline(admin.TabularInline):
    model = ImportPart
    fields = ["number", "source", "films", "done_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="films")
    def films(self, part: ImportPart) -> int:
        return len(part.keys)


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    """Background imports (`import_movies --background`) and their progress, read-only: the worker writes them."""

    list_display = ["description", "started_at", "finished_at", "progress"]
    readonly_fields = ["fingerprint", "description", "films_total", "started_at", "finished_at", "progress"]
    inlines = [ImportPartInline]

    @admin.display(description="progress")
    def progress(self, run: ImportRun) -> str:
        done = run.parts.exclude(done_at=None).count()
        return f"{done:,} of {run.parts.count():,} parts done"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
