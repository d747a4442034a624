"""A film from TMDB imported as any film (reports.importing.import_tmdb_film), from the fake_tmdb TMDB on loopback, and
the commands that queue it and report generation for the worker."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django_tasks_db.models import DBTaskResult

from reports import importing, tmdb
from reports.models import FilmFacts, Movie, MovieSection
from tests.fake_tmdb import FAKE_API_KEY

PARASITE_SECTIONS = [
    (
        "Overview",
        "A poor family talks its way, one job at a time, into the household of a rich one.",
    ),
    (
        "Production",
        "Parasite is a comedy, thriller and drama film. It runs 133 minutes. It was made in South Korea. Its language "
        "is Korean. It was released on 30 May 2019. It was produced by Barunson E&A. Its box office gross was "
        "$257,591,776 (worldwide, as TMDB reports it).",
    ),
    (
        "Cast and crew",
        "Parasite was directed by Bong Joon-ho and written by Bong Joon-ho and Han Jin-won. TMDB lists 3 people in "
        "its cast, in billing order: Song Kang-ho, Lee Sun-kyun and Cho Yeo-jeong.",
    ),
]


def test_a_tmdb_film_is_imported_with_its_facts_sections_and_vectors(fake_tmdb, db):
    result = importing.import_tmdb_film(496243)
    movie = result.movie
    assert str(result) == "Parasite (2019) imported from TMDB, 3 sections embedded: /movies/parasite/"
    assert (movie.source, movie.source_key, movie.tmdb_id, movie.director) == ("tmdb", "496243", 496243, "Bong Joon-ho")
    assert movie.source_url == "https://www.themoviedb.org/movie/496243"
    sections = list(MovieSection.objects.for_movie(movie))
    assert [(s.heading, s.content) for s in sections] == PARASITE_SECTIONS
    assert [s.origin for s in sections] == ["source", "facts", "facts"]
    assert all(s.embedding is not None for s in sections)
    facts = FilmFacts.objects.get(movie=movie)
    assert (facts.imdb_id, facts.matched_by, facts.cast[0]) == ("tt6751668", "TMDB", "Song Kang-ho")

    # Again: nothing changed on TMDB, nothing changes here.
    assert str(importing.import_tmdb_film(496243)) == (
        "Parasite (2019) unchanged from TMDB, 0 sections embedded: /movies/parasite/"
    )
    # A later import of the Wikidata facts leaves a TMDB film's facts alone.
    from reports import facts as facts_module

    facts_module.import_facts([])
    assert FilmFacts.objects.filter(movie=movie).count() == 1
    assert MovieSection.objects.filter(movie=movie).count() == 3


def test_the_film_page_credits_tmdb(fake_tmdb, client, db):
    movie = importing.import_tmdb_film(496243).movie
    body = client.get(movie.get_absolute_url()).content.decode()
    page_link = '<a href="https://www.themoviedb.org/movie/496243" rel="noopener">TMDB page</a>'
    assert body.count(f'<p class="credit section-credit">Facts from TMDB. {page_link}.</p>') == 2
    assert "Overview and facts from TMDB (The Movie Database)." in body
    assert tmdb.ATTRIBUTION in body
    assert '<a href="https://www.imdb.com/title/tt6751668/" rel="noopener">tt6751668</a>' in body


def test_a_film_the_wikidata_catalogue_has_is_not_imported_twice(fake_tmdb, db):
    with pytest.raises(importing.AlreadyInCatalogue) as raised:
        importing.import_tmdb_film(603)
    assert str(raised.value) == (
        "The Matrix (1999) is in the Wikidata catalogue (IMDb tt0133093): python manage.py import_movies "
        "--catalogue imports it with the others."
    )
    assert not Movie.objects.filter(source="tmdb").exists()


def test_import_movies_tmdb_queues_the_film_for_the_worker(fake_tmdb, db):
    out = StringIO()
    call_command("import_movies", "--tmdb", "496243", stdout=out)
    assert out.getvalue() == (
        "Queued Parasite (2019), TMDB 496243: the worker (python manage.py run_worker) imports and embeds it.\n"
        f"{tmdb.ATTRIBUTION}\n"
    )
    [task] = DBTaskResult.objects.filter(task_path="reports.tasks.import_tmdb")
    assert (task.args_kwargs, task.priority, task.status) == ({"args": [496243], "kwargs": {}}, 50, "READY")


def test_import_movies_tmdb_says_what_went_wrong_and_queues_nothing(fake_tmdb, db):
    fake_tmdb.set_scenario("status_401")
    with pytest.raises(CommandError) as raised:
        call_command("import_movies", "--tmdb", "496243")
    assert "refused" in str(raised.value) and FAKE_API_KEY not in str(raised.value)
    fake_tmdb.reset()
    with pytest.raises(CommandError, match="TMDB has no film with id 999"):
        call_command("import_movies", "--tmdb", "999")
    assert not DBTaskResult.objects.exists()


def test_import_movies_tmdb_search_imports_the_one_exact_title(fake_tmdb, db):
    out = StringIO()
    call_command("import_movies", "--tmdb-search", "parasite", "--year", "2019", stdout=out)
    assert out.getvalue().splitlines()[:2] == [
        "  496243: Parasite (2019)",
        "Queued Parasite (2019), TMDB 496243: the worker (python manage.py run_worker) imports and embeds it.",
    ]
    out = StringIO()
    call_command("import_movies", "--tmdb-search", "matrix", stdout=out)
    assert out.getvalue().splitlines()[-1] == (
        "4 films on TMDB for 'matrix', none with that exact title: import one with --tmdb ID."
    )
    assert DBTaskResult.objects.count() == 1


def test_generate_reports_background_queues_a_task_per_film(sample_movies, settings):
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"
    out = StringIO()
    call_command("generate_reports", "--background", "--limit", "2", "--kinds", "plot", stdout=out)
    assert out.getvalue() == "Queued 2 films for the worker (python manage.py run_worker).\n"
    tasks = DBTaskResult.objects.filter(task_path="reports.tasks.generate_report").order_by("enqueued_at")
    first_two = list(Movie.objects.order_by("title", "pk")[:2])
    assert [task.args_kwargs["args"] for task in tasks] == [[movie.pk, ["plot"], False] for movie in first_two]
