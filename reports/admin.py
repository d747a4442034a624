from django.contrib import admin

from reports.models import Movie, MovieSection


class MovieSectionInline(admin.StackedInline):
    model = MovieSection
    extra = 0
    fields = ["position", "kind", "heading", "content"]


@admin.register(Movie)
class MovieAdmin(admin.ModelAdmin):
    list_display = ["title", "year", "director", "source"]
    list_filter = ["source"]
    search_fields = ["title", "director"]
    prepopulated_fields = {"slug": ["title"]}
    inlines = [MovieSectionInline]


@admin.register(MovieSection)
class MovieSectionAdmin(admin.ModelAdmin):
    list_display = ["movie", "position", "kind", "heading"]
    list_filter = ["kind"]
    search_fields = ["movie__title", "heading"]
    raw_id_fields = ["movie"]
    exclude = ["embedding"]
    readonly_fields = ["content_hash", "embedded_hash"]
