import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from reports import ingest, wikipedia
from reports.models import FilmFacts, Movie, MovieSection, text_hash


def test_sample_films_carry_year_and_director_from_the_prose(sample_movies):
    vertigo = sample_movies["Vertigo (film)"]
    assert (vertigo.title, vertigo.slug, vertigo.year, vertigo.director) == (
        "Vertigo",
        "vertigo",
        1958,
        "Alfred Hitchcock",
    )
    assert vertigo.source_url == "https://en.wikipedia.org/wiki/Vertigo_%28film%29"
    kane = sample_movies["Citizen Kane"]
    assert (kane.year, kane.director) == (1941, "Orson Welles")


def test_every_sample_section_is_embedded(sample_movies):
    assert MovieSection.objects.needing_embedding().count() == 0
    assert MovieSection.objects.filter(embedding=None).count() == 0


def test_a_second_import_changes_nothing(sample_movies):
    records = [r for r in ingest.wikipedia_records()[0] if r.source_key in sample_movies]
    before = list(MovieSection.objects.order_by("pk").values_list("pk", "content_hash", "embedded_hash"))
    report = ingest.import_records(records)
    assert (report.created, report.updated, report.unchanged) == (0, 0, len(sample_movies))
    assert (report.sections_created, report.sections_updated, report.sections_deleted) == (0, 0, 0)
    assert list(MovieSection.objects.order_by("pk").values_list("pk", "content_hash", "embedded_hash")) == before
    assert ingest.embed_sections() == 0


def test_changed_text_is_resplit_and_only_changed_sections_are_re_embedded(sample_movies):
    longest = max(sample_movies.values(), key=lambda movie: movie.sections.count())
    record = next(r for r in ingest.wikipedia_records()[0] if r.source_key == longest.source_key)
    sections = list(MovieSection.objects.for_movie(longest))
    assert len(sections) >= 2
    changed_text = record.text + "\nA line added at the end of the summary."
    report = ingest.import_records([ingest.FilmRecord(**{**record.__dict__, "text": changed_text})])
    assert (report.updated, report.sections_created + report.sections_updated) == (1, 1)
    assert ingest.embed_sections() == 1
    after = list(MovieSection.objects.for_movie(sample_movies[record.source_key]))
    assert [list(s.embedding) for s in after[:-1]] == [list(s.embedding) for s in sections[:-1]]
    assert after[-1].content.endswith("A line added at the end of the summary.")


def test_new_films_get_numbered_sections_alongside_an_update(sample_movies):
    tokyo = next(r for r in ingest.wikipedia_records()[0] if r.source_key == "Tokyo Story")
    changed = ingest.FilmRecord(**{**tokyo.__dict__, "text": tokyo.text + " A new sentence."})
    text = " ".join(
        f"Sentence {n} of a long summary about a quiet harbour and its lighthouse keeper." for n in range(60)
    )
    new = ingest.FilmRecord(source="file", source_key="The Quiet Harbour", title="The Quiet Harbour", text=text)
    report = ingest.import_records([changed, new])
    assert (report.created, report.updated, report.unchanged) == (1, 1, 0)
    harbour = Movie.objects.get(source_key="The Quiet Harbour")
    sections = list(MovieSection.objects.for_movie(harbour))
    assert [(s.position, s.heading) for s in sections] == [
        (0, "Overview"),
        (1, "Overview, part 2"),
        (2, "Overview, part 3"),
        (3, "Overview, part 4"),
    ]
    assert [s.content_hash for s in sections] == [text_hash(s.embedding_text) for s in sections]
    assert " ".join(s.content for s in sections) == text
    assert report.sections_created + report.sections_updated == 4 + 1
    again = ingest.import_records([changed, new])
    assert (again.created, again.updated, again.unchanged, again.sections_created) == (0, 0, 2, 0)


@pytest.mark.django_db
def test_the_whole_bundled_set_imports_and_skips_what_is_not_a_film():
    films, rejections = wikipedia.load_films()
    out = StringIO()
    call_command("import_movies", "--no-embed", "--no-progress", stdout=out)
    assert Movie.objects.filter(source=Movie.Source.WIKIPEDIA).count() == len(films)
    assert len(films) + len(rejections) == 997
    keys = set(Movie.objects.values_list("source_key", flat=True))
    for key in ("Casablanca", "Titanic", "M", "L'argent", "NOW SHOWINGDay of Wrath"):
        assert key not in keys
    assert f"Skipped {len(rejections)} entries that are not a film's text:" in out.getvalue()
    texts = list(Movie.objects.values_list("source_text", flat=True))
    assert len(texts) == len(set(texts))
    second = StringIO()
    call_command("import_movies", "--no-embed", "--no-progress", stdout=second)
    assert second.getvalue().startswith(f"Films: 0 created, 0 updated, {len(films)} unchanged, 0 removed.")
    assert (
        "Facts (Wikidata, CC0): 566 films matched (527 by title, year and director, 16 by title in the lead, year and "
        "director, 14 by title and year, 5 by part of the title, year and director, 4 by title spelling, year and "
        "director), 195 not found; 0 created, 0 updated, 0 removed. Fact sections: 0 created, 0 updated, 0 deleted.\n"
    ) in second.getvalue()
    assert FilmFacts.objects.count() == 566


@pytest.mark.django_db
def test_limit_imports_only_the_first_films():
    Movie.objects.all().delete()
    call_command("import_movies", "--limit", "3", "--no-embed", "--no-progress", stdout=StringIO())
    films, _ = wikipedia.load_films()
    assert sorted(Movie.objects.values_list("title", flat=True)) == sorted(f.title for f in films[:3])


def write_json(tmp_path, data):
    path = tmp_path / "films.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.django_db
def test_a_json_file_of_films_imports_and_embeds(tmp_path):
    path = write_json(
        tmp_path,
        {
            "films": [
                {"title": "The Quiet Harbour", "text": "The Quiet Harbour is a 1961 drama film directed by Ada Lind."},
                {
                    "title": "Night Train",
                    "year": 1977,
                    "director": "B. Olsen",
                    "genres": ["Thriller"],
                    "text": "A train.",
                },
            ]
        },
    )
    out = StringIO()
    call_command("import_movies", "--file", str(path), "--no-facts", "--no-progress", stdout=out)
    harbour = Movie.objects.get(title="The Quiet Harbour")
    assert (harbour.year, harbour.director, harbour.source, harbour.slug) == (
        1961,
        "Ada Lind",
        "file",
        "the-quiet-harbour",
    )
    night = Movie.objects.get(title="Night Train")
    assert (night.year, night.director, night.genres) == (1977, "B. Olsen", ["Thriller"])
    assert MovieSection.objects.filter(movie__source="file", embedding__isnull=False).count() == 2
    assert "Films: 2 created, 0 updated, 0 unchanged, 0 removed." in out.getvalue()
    assert "Embedded 2 sections." in out.getvalue()


def planner_statistics() -> dict[str, tuple[float, int]]:
    """Each imported table's row count as the planner has it (pg_class.reltuples, set by ANALYZE), and its rows."""
    statistics = {}
    with connection.cursor() as cursor:
        for table in ingest.IMPORTED_TABLES:
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [table])
            planned = cursor.fetchone()[0]
            cursor.execute(f"SELECT count(*) FROM {table}")
            statistics[table] = (planned, cursor.fetchone()[0])
    return statistics


@pytest.mark.django_db
def test_an_import_leaves_the_planner_the_statistics_of_what_it_filled(tmp_path):
    # The films come in this test's transaction, which autovacuum cannot see: only the import's ANALYZE counts them.
    films = [
        {"title": f"Harbour {n}", "text": f"Harbour {n} is a 1961 drama film about boats and tides."} for n in range(3)
    ]
    call_command(
        "import_movies", "--file", str(write_json(tmp_path, films)), "--no-facts", "--no-progress", stdout=StringIO()
    )
    statistics = planner_statistics()
    assert {table: planned for table, (planned, _) in statistics.items()} == {
        table: float(rows) for table, (_, rows) in statistics.items()
    }
    assert statistics["reports_corpus"] == (1.0, 1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            [{"title": "Good", "text": "Fine."}, {"title": "Broken"}],
            "entry 2 ('Broken'): 'text' must be a non-empty string",
        ),
        ([{"title": "Good", "text": "Fine."}, {"text": "no title"}], "entry 2: 'title' must be a non-empty string"),
        ([{"title": "Good", "text": "Fine.", "year": "1958"}], "entry 1 ('Good'): 'year' must be a whole number"),
        ([{"title": "Good", "text": "Fine.", "rating": 5}], "entry 1 ('Good'): unknown field(s) rating"),
        ({"movies": []}, 'expected a list of films or {"films": [...]}'),
        ([{"title": "A", "text": "x"}, {"title": "A", "text": "y"}], "entry 2 ('A'): same key as entry 1 ('A')"),
    ],
)
def test_a_malformed_file_names_the_entry_and_imports_nothing(tmp_path, data, message):
    before = (Movie.objects.count(), MovieSection.objects.count())
    with pytest.raises(CommandError) as error:
        call_command("import_movies", "--file", str(write_json(tmp_path, data)), "--no-progress", stdout=StringIO())
    assert message in str(error.value)
    assert str(error.value).startswith("Nothing imported.")
    assert (Movie.objects.count(), MovieSection.objects.count()) == before


@pytest.mark.django_db
def test_a_file_that_is_not_json_gives_the_line_and_column(tmp_path):
    path = tmp_path / "films.json"
    path.write_text('[{"title": "A",\n "text": }]', encoding="utf-8")
    with pytest.raises(CommandError, match=r"not valid JSON: Expecting value at line 2, column 10"):
        call_command("import_movies", "--file", str(path), "--no-progress", stdout=StringIO())


def test_embed_sections_re_embeds_only_changed_sections(sample_movies):
    section = MovieSection.objects.for_movie(sample_movies["Tokyo Story"]).first()
    section.content_hash = "changed"
    section.save(update_fields=["content_hash"])
    out = StringIO()
    call_command("embed_sections", "--no-progress", stdout=out)
    assert out.getvalue().startswith("Embedded 1 sections in ")
    section.refresh_from_db()
    assert section.embedded_hash == "changed"


def test_generated_sections_survive_a_metadata_change_and_go_with_a_text_change(sample_movies):
    movie = sample_movies["Citizen Kane"]
    overview = MovieSection.objects.filter(movie=movie).count()
    plot = MovieSection.objects.create(
        movie=movie,
        kind="plot",
        origin="generated",
        position=overview,
        heading="Plot",
        content="Kane dies.",
        content_hash="x",
    )
    record = next(r for r in ingest.wikipedia_records()[0] if r.source_key == "Citizen Kane")
    renamed = ingest.FilmRecord(**{**record.__dict__, "title": "Citizen Kane (restored)"})
    report = ingest.import_records([renamed])
    assert (report.updated, report.sections_deleted) == (1, 0)
    plot.refresh_from_db()
    assert (plot.kind, plot.position) == ("plot", overview)
    assert plot.content_hash == text_hash("Citizen Kane (restored). Plot. Kane dies.")
    rewritten = ingest.FilmRecord(**{**renamed.__dict__, "text": record.text + " A new sentence."})
    report = ingest.import_records([rewritten])
    assert report.updated == 1
    assert not MovieSection.objects.filter(pk=plot.pk).exists()
    assert set(MovieSection.objects.filter(movie=movie).values_list("kind", flat=True)) == {"overview"}
