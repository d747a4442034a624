"""The background import: a plan of parts on the task queue, each part one transaction (reports.importing)."""

import pytest
from django.core.management import call_command
from django_tasks_db.models import DBTaskResult

from reports import importing, ingest
from reports.models import FilmFacts, ImportRun, Movie, MovieSection
from tests.test_ingest import planner_statistics

# The bundled data's first six films: the first four are among the test database's sample films (conftest), the
# last two (1939 and 1927) are not, and are older than the Wikidata facts.
FIRST_SIX = [
    "Vertigo (film)",
    "Citizen Kane",
    "Tokyo Story",
    "2001: A Space Odyssey",
    "The Rules of the Game",
    "Sunrise: A Song of Two Humans",
]


@pytest.fixture
def run(sample_movies) -> ImportRun:
    planned = importing.plan(limit=6, part_films=2)
    assert planned is not None
    return planned


def part_tasks() -> list[list[int]]:
    tasks = DBTaskResult.objects.filter(task_path="reports.tasks.import_part").order_by("enqueued_at")
    return [task.args_kwargs["args"] for task in tasks]


def test_a_plan_queues_one_task_per_part(run):
    assert list(importing.wikipedia_records())[:6] == FIRST_SIX
    parts = list(run.parts.all())
    assert [(part.number, part.source, part.keys) for part in parts] == [
        (1, "wikipedia", FIRST_SIX[0:2]),
        (2, "wikipedia", FIRST_SIX[2:4]),
        (3, "wikipedia", FIRST_SIX[4:6]),
    ]
    assert part_tasks() == [[part.pk] for part in parts]
    assert run.description == "6 Wikipedia films"
    # The 14 sample films stay (only part of the data is planned) and two are new.
    assert run.films_total == 16
    assert run.finished_at is None


def test_a_part_imports_its_films_whole_with_their_facts_and_vectors(run):
    third = run.parts.get(number=3)
    result = importing.run_part(third.pk)
    assert str(result) == "part 3: 2 films (2 new), 4 sections embedded"
    films = Movie.objects.filter(source_key__in=FIRST_SIX[4:6])
    assert sorted(films.values_list("title", flat=True)) == ["Sunrise: A Song of Two Humans", "The Rules of the Game"]
    assert MovieSection.objects.filter(movie__in=films).count() == 4
    assert not MovieSection.objects.filter(movie__in=films, embedding=None).exists()
    third.refresh_from_db()
    assert third.done_at is not None
    # The part's rows are in the planner's statistics (ANALYZE after the part; autovacuum cannot see them here).
    statistics = planner_statistics().values()
    assert [planned for planned, _ in statistics] == [float(rows) for _, rows in statistics]
    # Again: nothing to do.
    assert str(importing.run_part(third.pk)) == "part 3: done already"

    first = run.parts.get(number=1)
    assert str(importing.run_part(first.pk)) == "part 1: 2 films (0 new), 6 sections embedded"
    assert sorted(FilmFacts.objects.filter(movie__source_key__in=FIRST_SIX[:2]).values_list("imdb_id", flat=True)) == [
        "tt0033467",
        "tt0052357",
    ]
    status = importing.status()
    assert (status.films_ready, status.films_total, status.parts_done, status.parts_total) == (16, 16, 2, 3)
    # The time left comes from how long the parts took.
    assert status.line().startswith("[########################] 16 of 16 films ready, part 2 of 3, about ")


def test_a_part_that_fails_leaves_nothing_behind(run, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("the embedder went away")

    monkeypatch.setattr(ingest, "embed_sections", broken)
    before = Movie.objects.count()
    third = run.parts.get(number=3)
    with pytest.raises(RuntimeError, match="the embedder went away"):
        importing.run_part(third.pk)
    assert Movie.objects.count() == before
    assert not Movie.objects.filter(source_key__in=FIRST_SIX[4:6]).exists()
    third.refresh_from_db()
    assert third.done_at is None


def test_the_last_part_finishes_the_run_and_the_same_plan_is_then_up_to_date(run):
    for part in run.parts.all():
        importing.run_part(part.pk)
    run.refresh_from_db()
    assert run.finished_at is not None
    assert importing.status().line() == "[########################] 16 of 16 films ready"
    assert importing.plan(limit=6, part_films=2) is None
    again = importing.plan(limit=6, part_films=2, force=True)
    assert again is not None and again.pk != run.pk


def test_planning_while_a_run_is_unfinished_resumes_it(run):
    parts = list(run.parts.all())
    DBTaskResult.objects.filter(args_kwargs__args=[parts[1].pk]).delete()  # a task the queue lost
    assert importing.plan(catalogue=0, part_films=2) == run  # no second run
    assert ImportRun.objects.count() == 1
    assert part_tasks() == [[parts[0].pk], [parts[2].pk], [parts[1].pk]]


def test_the_catalogue_says_how_many_films_are_ready_while_importing(client, run, django_assert_num_queries):
    MovieSection.objects.filter(movie__source_key="Tokyo Story").update(embedding=None)
    importing.forget_ready_count()
    with django_assert_num_queries(5):  # the count, the page, the decades, the import, the facets
        body = client.get("/").content.decode()
    assert (
        '<p class="import-status" role="status">13 of 16 films ready; the others appear as they are imported.</p>'
        in body
    )
    for part in run.parts.all():
        importing.run_part(part.pk)
    assert "import-status" not in client.get("/").content.decode()


def test_import_status_says_where_the_run_is(run, capsys):
    importing.run_part(run.parts.get(number=3).pk)
    call_command("import_status")
    out = capsys.readouterr().out
    started = f"{run.started_at:%Y-%m-%d %H:%M}"
    line = "[########################] 16 of 16 films ready, part 1 of 3"
    assert out == f"6 Wikipedia films, started {started}, under way: {line}\n"


def test_import_status_before_any_import(sample_movies, capsys):
    call_command("import_status")
    assert capsys.readouterr().out == "No background import yet. [########################] 14 of 14 films ready\n"


def test_a_catalogue_part_imports_wikidata_films_with_an_overview_written_from_their_facts(sample_movies):
    run = importing.plan(catalogue=2, limit=2, part_films=2)
    assert run.description == "2 Wikipedia films and 2 from the Wikidata catalogue"
    wikipedia, catalogue = run.parts.all()
    assert (catalogue.source, catalogue.keys) == ("wikidata", ["tt0498329", "tt1741542"])
    assert str(importing.run_part(catalogue.pk)) == "part 2: 2 films (2 new), 8 sections embedded"
    movie = Movie.objects.get(source="wikidata", source_key="tt0498329")
    assert [s.heading for s in MovieSection.objects.for_movie(movie)] == [
        "Overview",
        "Production",
        "Cast and crew",
        "Reception",
    ]
    assert (movie.facts.imdb_id, movie.facts.matched_by) == ("tt0498329", "its own entry")


def test_the_catalogue_counts_the_films_ready_at_most_every_few_seconds(run):
    importing.forget_ready_count()
    assert importing.catalogue_state(now=1000.0).importing == (14, 16)
    importing.run_part(run.parts.get(number=3).pk)  # two more films
    assert importing.catalogue_state(now=1004.0).importing == (14, 16)  # the count of 1000.0
    assert importing.catalogue_state(now=1005.0).importing == (16, 16)
    for part in run.parts.all():
        importing.run_part(part.pk)
    assert importing.catalogue_state(now=1006.0).importing is None
