import hashlib

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models.functions import Upper
from django.urls import reverse
from pgvector.django import HnswIndex, VectorField

EMBEDDING_DIMENSIONS = 384


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def section_url(*, movie_slug: str, section_id: int) -> str:
    """Where a section is read: its film's page, scrolled to it."""
    return reverse("reports:movie_detail", kwargs={"slug": movie_slug}) + f"#section-{section_id}"


class Movie(models.Model):
    class Source(models.TextChoices):
        WIKIPEDIA = "wikipedia", "Wikipedia summary"
        TMDB = "tmdb", "TMDB overview"
        FILE = "file", "Imported file"
        WIKIDATA = "wikidata", "Wikidata facts"

    slug = models.SlugField(max_length=200, unique=True)
    title = models.CharField(max_length=300)
    year = models.PositiveSmallIntegerField(null=True, blank=True)
    director = models.CharField(max_length=300, blank=True)
    genres = models.JSONField(default=list, blank=True)
    poster_url = models.URLField(max_length=500, blank=True)
    tmdb_id = models.PositiveIntegerField(null=True, blank=True, unique=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.WIKIPEDIA)
    source_key = models.CharField(max_length=300, blank=True, help_text="The entry's key in the imported data.")
    source_text = models.TextField()
    source_url = models.URLField(max_length=500, blank=True)
    source_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The title's lexemes (English stemming and stop words, as the sections' search_vector): how retrieval finds the
    # films whose every title word a question holds (reports.search.TITLE_CTE), without parsing titles per query.
    title_lexemes = models.GeneratedField(
        expression=models.Func(
            models.F("title"),
            function="tsvector_to_array",
            template="tsvector_to_array(to_tsvector('english'::regconfig, %(expressions)s))",
        ),
        output_field=ArrayField(models.TextField()),
        db_persist=True,
    )

    class Meta:
        ordering = ["title"]
        indexes = [
            models.Index(fields=["year"]),
            # The catalogue's pages in title and in year order: read in order, not sorted whole for each page.
            models.Index(fields=["title", "id"], name="movie_title_order"),
            models.Index(models.F("year").asc(nulls_last=True), "title", "id", name="movie_year_order"),
            # Typo-tolerant title search (trigram similarity, and ILIKE for substrings) reads this index.
            GinIndex(fields=["title"], name="movie_title_trgm", opclasses=["gin_trgm_ops"]),
            # Django writes icontains as UPPER(title) LIKE UPPER(...): without this the search's OR of three
            # conditions cannot use an index, and scans every film.
            GinIndex(OpClass(Upper("title"), name="gin_trgm_ops"), name="movie_title_upper_trgm"),
            GinIndex(fields=["title_lexemes"], name="movie_title_lexemes"),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.year})" if self.year else self.title

    def get_absolute_url(self) -> str:
        return reverse("reports:movie_detail", kwargs={"slug": self.slug})

    @property
    def credit(self) -> str:
        if self.source == self.Source.WIKIPEDIA:
            return "Text from Wikipedia, available under CC BY-SA 4.0."
        if self.source == self.Source.TMDB:
            return "Overview and facts from TMDB (The Movie Database)."
        if self.source == self.Source.WIKIDATA:
            return "Overview written from Wikidata's facts, available under CC0."
        return ""


class MovieSectionQuerySet(models.QuerySet):
    def for_movie(self, movie: Movie) -> "MovieSectionQuerySet":
        return self.filter(movie=movie).order_by("position")

    def needing_embedding(self) -> "MovieSectionQuerySet":
        """Sections never embedded, or whose text changed since (the hash of what was embedded differs)."""
        return self.filter(models.Q(embedding__isnull=True) | ~models.Q(embedded_hash=models.F("content_hash")))


class MovieSection(models.Model):
    class Origin(models.TextChoices):
        SOURCE = "source", "The film's source text"
        FACTS = "facts", "Wikidata facts"
        GENERATED = "generated", "Generated from the source text"

    class Kind(models.TextChoices):
        OVERVIEW = "overview", "Overview"
        PLOT = "plot", "Plot"
        PRODUCTION = "production", "Production"
        CAST_CREW = "cast_crew", "Cast and crew"
        CHARACTERS = "characters", "Characters"
        THEMES = "themes", "Themes"
        VISUAL_TECHNICAL = "visual_technical", "Visual and technical"
        RECEPTION = "reception", "Reception"
        LEGACY = "legacy", "Legacy"

    movie = models.ForeignKey(Movie, on_delete=models.CASCADE, related_name="sections")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.OVERVIEW)
    # Where the text comes from: the source text split (overview), written from the film's facts, or generated.
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.SOURCE, db_default=Origin.SOURCE)
    position = models.PositiveSmallIntegerField()
    heading = models.CharField(max_length=200)
    content = models.TextField()
    content_hash = models.CharField(max_length=64)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)
    embedded_hash = models.CharField(max_length=64, blank=True)
    search_vector = models.GeneratedField(
        expression=SearchVector("heading", weight="A", config="english")
        + SearchVector("content", weight="B", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    objects = MovieSectionQuerySet.as_manager()

    class Meta:
        ordering = ["movie", "position"]
        constraints = [models.UniqueConstraint(fields=["movie", "position"], name="unique_section_position")]
        indexes = [
            HnswIndex(
                name="section_embedding_hnsw",
                fields=["embedding"],
                m=32,
                ef_construction=128,
                opclasses=["vector_cosine_ops"],
            ),
            GinIndex(fields=["search_vector"], name="section_search_gin"),
            # The films not ready yet (a section with no vector): empty but while an import embeds.
            models.Index(fields=["movie"], condition=models.Q(embedding=None), name="section_not_embedded"),
        ]

    def __str__(self) -> str:
        return f"{self.movie.title}: {self.heading}"

    def get_absolute_url(self) -> str:
        return section_url(movie_slug=self.movie.slug, section_id=self.pk)

    @property
    def embedding_text(self) -> str:
        """What the embedder reads: the film's title and the heading give a section its context."""
        return f"{self.movie.title}. {self.heading}. {self.content}"

    def needs_embedding(self) -> bool:
        return self.embedding is None or self.embedded_hash != self.content_hash

    @property
    def credit(self) -> str:
        """The credit a section shows under it, when its text has a source of its own."""
        return "Facts from Wikidata, available under CC0." if self.origin == self.Origin.FACTS else ""


class FilmFacts(models.Model):
    """A film's facts from Wikidata (`reports.wikidata`), matched to it by title, year and director
    (`reports.facts`). Lists keep the order the data gives (the cast's is alphabetical)."""

    movie = models.OneToOneField(Movie, on_delete=models.CASCADE, related_name="facts")
    imdb_id = models.CharField(max_length=20, unique=True)
    matched_by = models.CharField(max_length=40, help_text="How the film was matched to its Wikidata entry.")
    title = models.CharField(max_length=300, help_text="The title in Wikidata.")
    year = models.PositiveSmallIntegerField()
    rating = models.CharField(max_length=20, blank=True)
    runtime = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Minutes.")
    genres = ArrayField(models.TextField(), default=list, blank=True)
    released = models.DateField(null=True, blank=True)
    released_precision = models.CharField(max_length=4, blank=True, help_text="day, or year when only that is known.")
    directors = ArrayField(models.TextField(), default=list, blank=True)
    writers = ArrayField(models.TextField(), default=list, blank=True)
    cast = ArrayField(models.TextField(), default=list, blank=True)
    metacritic = models.PositiveSmallIntegerField(null=True, blank=True)
    languages = ArrayField(models.TextField(), default=list, blank=True)
    countries = ArrayField(models.TextField(), default=list, blank=True)
    awards = models.TextField(blank=True)
    oscars = models.PositiveSmallIntegerField(null=True, blank=True)
    tomatometer = models.PositiveSmallIntegerField(null=True, blank=True)
    tomatoes_rating = models.FloatField(null=True, blank=True)
    tomatoes_reviews = models.PositiveIntegerField(null=True, blank=True)
    box_office = models.BigIntegerField(null=True, blank=True, help_text="US dollars.")
    production = ArrayField(models.TextField(), default=list, blank=True)

    class Meta:
        verbose_name_plural = "film facts"
        indexes = [
            # The catalogue's filters by person read these.
            GinIndex(fields=["directors"], name="facts_directors"),
            GinIndex(fields=["cast"], name="facts_cast"),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.year}), {self.imdb_id}"


class Lexeme(models.Model):
    """How many sections hold each lexeme of the full-text index (`MovieSection.search_vector`): the document
    frequency BM25 weighs a question's words by. Kept exact by statement-level triggers on the sections table
    (migration 0004), whatever writes the sections, so every process and replica ranks alike."""

    lexeme = models.TextField(primary_key=True)
    sections = models.IntegerField()

    class Meta:
        db_table = "reports_lexeme"

    def __str__(self) -> str:
        return f"{self.lexeme}: {self.sections}"


class Corpus(models.Model):
    """One row: how many sections the full-text index holds and their lexemes in all (for the mean length BM25
    normalises by). Kept by the same triggers as `Lexeme`."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    sections = models.BigIntegerField(default=0)
    lexemes = models.BigIntegerField(default=0)
    # Bumped by every statement that writes films or sections (triggers, migration 0009): what a retrieval result
    # cached at one generation is checked against (`reports.search`).
    generation = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        db_table = "reports_corpus"
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="corpus_single_row")]

    def __str__(self) -> str:
        return f"{self.sections} sections, {self.lexemes} lexemes"


class ImportRun(models.Model):
    """A background import (`reports.importing`): the films it plans, in parts the task queue runs one by one. A
    part imports, matches to its facts and embeds its films in one transaction, so a film appears whole or not at
    all, and a part cut short (a worker killed) is run again from the start."""

    fingerprint = models.CharField(max_length=64, help_text="What was planned: the data and the options.")
    description = models.CharField(max_length=300)
    films_total = models.PositiveIntegerField(help_text="Films in the catalogue once the run is done.")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.description} ({self.started_at:%Y-%m-%d %H:%M})"


class ImportPart(models.Model):
    run = models.ForeignKey(ImportRun, on_delete=models.CASCADE, related_name="parts")
    number = models.PositiveIntegerField()
    source = models.CharField(max_length=20, choices=Movie.Source)
    keys = ArrayField(models.CharField(max_length=300), help_text="The films' source keys.")
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="import_part_unique")]

    def __str__(self) -> str:
        return f"part {self.number} of {self.run_id}: {len(self.keys)} {self.source} films"
