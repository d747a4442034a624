"""Film facts from Wikidata: the packaged file, matching on real entries, the sections written from them, and their
import (idempotent, changing only what changed, credited on the page)."""

import dataclasses
import datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from chat.offline import offline_answer
from reports import facts, ingest, wikidata
from reports.facts import FilmToMatch, match_films, write_sections
from reports.models import FilmFacts, Movie, MovieSection
from reports.search import search_movie


@pytest.fixture(scope="module")
def wikidata_films() -> list[wikidata.WikidataFilm]:
    return wikidata.load()


def by_id(films: list[wikidata.WikidataFilm], imdb_id: str) -> wikidata.WikidataFilm:
    return next(film for film in films if film.imdb_id == imdb_id)


def test_the_packaged_file_is_the_cc0_snapshot_and_reads_whole(wikidata_films):
    assert len(wikidata_films) == 17472
    assert (min(f.year for f in wikidata_films), max(f.year for f in wikidata_films)) == (1940, 2014)
    vertigo = by_id(wikidata_films, "tt0052357")
    assert (vertigo.title, vertigo.year, vertigo.runtime, vertigo.directors) == (
        "Vertigo",
        1958,
        128,
        ("Alfred Hitchcock",),
    )
    assert (vertigo.tomatometer, vertigo.tomatoes_rating, vertigo.tomatoes_reviews) == (93, 8.8, 98)
    assert (vertigo.box_office, vertigo.production, vertigo.metacritic) == (7797728, ("Paramount Pictures",), 100)
    # Stored as 1 January: known to the year only.
    assert (vertigo.released, vertigo.released_precision) == (datetime.date(1958, 1, 1), "year")


def test_a_file_that_is_not_the_pinned_one_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "bokeh_sampledata" / "_data"
    fake.mkdir(parents=True)
    (fake / "movies.db").write_bytes(b"not the CC0 file")
    (tmp_path / "bokeh_sampledata" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "bokeh_sampledata", raising=False)
    with pytest.raises(wikidata.FactsUnavailable, match="is not the CC0 Wikidata file of bokeh-sampledata==2026.1"):
        wikidata.database_path()


def test_films_are_matched_by_title_year_and_director_on_real_entries(wikidata_films):
    films = [
        FilmToMatch(1, "Psycho", 1960, "Alfred Hitchcock"),  # remade in 1998 by Gus Van Sant
        FilmToMatch(2, "Diabolique", 1955, "Henri-Georges Clouzot"),  # 1954 in Wikidata; remade in 1996
        FilmToMatch(3, "Amélie", 2001, "Jean-Pierre Jeunet"),
        FilmToMatch(4, "La jetée", 1962, "Chris Marker"),  # "La Jetée"
        FilmToMatch(5, "Head-On", 2004, "Fatih Akın"),  # "Fatih Akin"
        FilmToMatch(6, "Blow-Up", 1966, "Michelangelo Antonioni"),  # "Blowup"
        FilmToMatch(
            7, "Band of Outsiders", 1964, "Jean-Luc Godard", "Band of Outsiders (French: Bande à part) is a 1964 film"
        ),
        FilmToMatch(8, "Psycho", 1960, "Somebody Else"),
        FilmToMatch(9, "City Lights", 1931, "Charlie Chaplin"),
        FilmToMatch(10, "Psycho", 1960, ""),  # no director to tell: the one title of that year still decides
        # Another film by the same director, a year later, named after the lead has said what the film is.
        FilmToMatch(
            11,
            "Alice in the Cities",
            1974,
            "Wim Wenders",
            "Alice in the Cities (German: Alice in den Städten) is a 1974 German road movie directed by Wim "
            'Wenders. It is the first part of Wenders\' "Road Movie trilogy", which also includes The Wrong Move '
            "(1975)",
        ),
    ]
    matching = match_films(films, wikidata_films)
    assert [(m.movie_id, m.film.imdb_id, m.how) for m in matching.matches] == [
        (1, "tt0054215", facts.BY_TITLE_AND_DIRECTOR),
        (2, "tt0046911", facts.BY_TITLE_AND_DIRECTOR),
        (3, "tt0211915", facts.BY_TITLE_AND_DIRECTOR),
        (4, "tt0056119", facts.BY_TITLE_AND_DIRECTOR),
        (5, "tt0347048", facts.BY_TITLE_AND_DIRECTOR),
        (6, "tt0060176", facts.BY_SPELLING),
        (7, "tt0057869", facts.BY_LEAD),
    ]
    assert matching.misses == [
        (8, "a Wikidata entry has its title and year, but another director"),
        (9, "no Wikidata entry here from 1931 (the data covers 1940 to 2014)"),
        (10, "its Wikidata entry (tt0054215) matches another film better"),
        (11, "no Wikidata entry has its title, or a form of it, by its director"),
    ]


def test_the_sections_state_what_the_row_holds_and_nothing_else(wikidata_films):
    sections = write_sections("Vertigo", by_id(wikidata_films, "tt0052357"))
    assert [(s.kind, s.heading) for s in sections] == [
        ("cast_crew", "Cast and crew"),
        ("production", "Production"),
        ("reception", "Reception"),
    ]
    assert [s.content for s in sections] == VERTIGO


VERTIGO = [
    "Vertigo was directed by Alfred Hitchcock and written by Alec Coppel, Boileau-Narcejac, Maxwell Anderson, "
    "Samuel A. Taylor and Thomas Narcejac. Wikidata lists 12 people in its cast, in alphabetical order: Alfred "
    "Hitchcock, Barbara Bel Geddes, Bess Flowers, Ellen Corby, Fred Graham, Henry Jones, James Stewart, Kim Novak, "
    "Konstantin Shayne, Lee Patrick, Raymond Bailey and Tom Helmore.",
    "Vertigo is a thriller, mystery, romance and drama film. It runs 128 minutes. It was made in the United States. "
    "Its language is English. It was released in 1958. It is rated PG. It was produced by Paramount Pictures. Its "
    "box office gross was $7,797,728 (the largest gross reported, often worldwide).",
    "On Rotten Tomatoes, 93% of 98 critics' reviews of Vertigo are positive, with an average rating of 8.8 out of 10. "
    "Its Metacritic score is 100 out of 100. It was nominated for 2 Oscars.",
]


def test_an_empty_field_is_left_out():
    bare = wikidata.WikidataFilm(imdb_id="tt1", title="Bare", year=1950, runtime=90, countries=("Netherlands",))
    assert [(s.kind, s.content) for s in write_sections("Bare", bare)] == [
        ("production", "It runs 90 minutes. It was made in the Netherlands.")
    ]
    dated = dataclasses.replace(bare, released=datetime.date(1950, 3, 9), released_precision="day", runtime=None)
    assert (
        write_sections("Bare", dated)[0].content == "It was made in the Netherlands. It was released on 9 March 1950."
    )


def sections_of(movie: Movie) -> list[tuple[int, str, str]]:
    return list(MovieSection.objects.for_movie(movie).values_list("position", "kind", "origin"))


def test_the_import_is_idempotent_and_changes_only_what_changed(sample_movies, wikidata_films):
    vertigo = sample_movies["Vertigo (film)"]
    MovieSection.objects.create(
        movie=vertigo, kind="plot", origin="generated", position=50, heading="Plot", content="A plot.", content_hash="x"
    )
    first = facts.import_facts(wikidata_films)
    assert (first.matched, first.missed, first.facts_created, first.sections_created) == (11, 3, 11, 33)
    assert sorted(first.misses) == [
        ("Duck Soup", "no Wikidata entry here from 1933 (the data covers 1940 to 2014)"),
        ("Pyaasa", "no Wikidata entry has its title, or a form of it, by its director"),
        ("The Crowd", "no Wikidata entry here from 1928 (the data covers 1940 to 2014)"),
    ]
    overview = MovieSection.objects.filter(movie=vertigo, origin="source").count()
    assert sections_of(vertigo) == [
        *[(n, "overview", "source") for n in range(overview)],
        (overview, "plot", "generated"),
        (overview + 1, "production", "facts"),
        (overview + 2, "cast_crew", "facts"),
        (overview + 3, "reception", "facts"),
    ]
    stored = FilmFacts.objects.get(movie=vertigo)
    assert (stored.imdb_id, stored.matched_by, stored.runtime) == ("tt0052357", facts.BY_TITLE_AND_DIRECTOR, 128)
    hashes = dict(MovieSection.objects.filter(movie=vertigo).values_list("kind", "content_hash"))

    again = facts.import_facts(wikidata_films)
    changes = (again.facts_created, again.facts_updated, again.facts_removed)
    assert changes + (again.sections_created, again.sections_updated, again.sections_deleted) == (0, 0, 0, 0, 0, 0)

    longer = [dataclasses.replace(f, runtime=129) if f.imdb_id == "tt0052357" else f for f in wikidata_films]
    changed = facts.import_facts(longer)
    assert (changed.facts_updated, changed.sections_created, changed.sections_updated) == (1, 0, 1)
    now = dict(MovieSection.objects.filter(movie=vertigo).values_list("kind", "content_hash"))
    assert [kind for kind in now if now[kind] != hashes[kind]] == ["production"]
    assert "It runs 129 minutes." in MovieSection.objects.get(movie=vertigo, kind="production").content

    # A new source text drops the generated sections, not the facts'.
    record = next(r for r in ingest.wikipedia_records()[0] if r.source_key == "Vertigo (film)")
    ingest.import_records([dataclasses.replace(record, text=record.text + " It was restored in 1996.")])
    assert [kind for _, kind, origin in sections_of(vertigo) if origin != "source"] == [
        "production",
        "cast_crew",
        "reception",
    ]

    gone = facts.import_facts([f for f in longer if f.imdb_id != "tt0052357"])
    assert (gone.facts_removed, gone.sections_deleted) == (1, 3)
    assert not MovieSection.objects.filter(movie=vertigo, origin="facts").exists()


def test_the_film_page_credits_wikidata_under_the_fact_sections(client, sample_movies, wikidata_films):
    facts.import_facts(wikidata_films)
    page = client.get(sample_movies["Vertigo (film)"].get_absolute_url()).content.decode()
    assert page.count("Facts from Wikidata, available under CC0.") == 3
    assert "<h2>Cast and crew</h2>" in page
    assert "Text from Wikipedia, available under CC BY-SA 4.0." in page


def test_a_film_page_question_about_the_cast_is_answered_from_the_facts(sample_movies, wikidata_films):
    facts.import_facts(wikidata_films)
    assert ingest.embed_sections() == 33
    vertigo = sample_movies["Vertigo (film)"]
    question = "Which actors are in Vertigo?"
    hits = search_movie(movie_id=vertigo.pk, query=question).hits
    assert (hits[0].kind, hits[0].heading) == ("cast_crew", "Cast and crew")
    answer = "".join(offline_answer(question=question, hits=hits))
    assert "Wikidata lists 12 people in its cast, in alphabetical order: Alfred Hitchcock, Barbara Bel Geddes" in answer


def titles(client, **params) -> list[str]:
    return [movie.title for movie in client.get(reverse("reports:movie_list"), params).context["page"].object_list]


def test_the_catalogue_filters_by_the_facts_and_sorts_by_score(client, sample_movies, wikidata_films):
    facts.import_facts(wikidata_films)
    assert titles(client, person="James Stewart") == ["Vertigo"]
    assert titles(client, person="Stanley Kubrick") == ["2001: A Space Odyssey"]
    assert titles(client, country="Japan", language="Japanese") == ["Seven Samurai", "Tokyo Story"]
    assert titles(client, genre="Drama", sort="score") == [
        "Seven Samurai",
        "Tokyo Story",
        "Bicycle Thieves",
        "Citizen Kane",
        "The Godfather",
        "Vertigo",
        "Atanarjuat: The Fast Runner",
        "All That Heaven Allows",
        "The Thin Red Line",
    ]
    # Films without facts come last, by title.
    assert titles(client, sort="score")[-3:] == ["Duck Soup", "Pyaasa", "The Crowd"]
    assert titles(client, sort="year")[:2] == ["The Crowd", "Duck Soup"]
    assert titles(client, genre="No such genre") == []


def test_a_catalogue_page_takes_four_queries_whatever_the_filters(
    client, sample_movies, wikidata_films, django_assert_num_queries
):
    facts.import_facts(wikidata_films)
    # The count, the page, the decades, the corpus's generation with whether an import runs, and once every
    # genre, country and language in one.
    with django_assert_num_queries(5):
        client.get(reverse("reports:movie_list"))
    with django_assert_num_queries(4):
        client.get(reverse("reports:movie_list"), {"genre": "Drama", "person": "James Stewart", "sort": "score"})


def test_the_film_page_shows_the_facts_with_links_to_the_catalogue(client, sample_movies, wikidata_films):
    facts.import_facts(wikidata_films)
    page = client.get(sample_movies["Vertigo (film)"].get_absolute_url()).content.decode()
    assert '<a href="/?person=James%20Stewart">James Stewart</a>' in page
    assert "<dt>Runtime</dt><dd>128 minutes</dd>" in page
    assert "<dt>Rotten Tomatoes</dt><dd>93% of 98 reviews</dd>" in page
    assert '<a href="https://www.imdb.com/title/tt0052357/" rel="noopener">tt0052357</a>' in page
    pyaasa = client.get(sample_movies["Pyaasa"].get_absolute_url()).content.decode()  # no facts
    assert "facts-panel" not in pyaasa


def test_the_catalogue_imports_the_films_with_no_text_of_their_own(client, sample_movies):
    out = StringIO()
    call_command("import_movies", "--limit", "0", "--catalogue", "2", "--no-embed", "--no-progress", stdout=out)
    text = out.getvalue()
    assert "Catalogue (Wikidata films with no other text): 2 created, 0 updated, 0 unchanged, 0 removed, of 17459." in (
        text
    )
    assert (
        "Facts (Wikidata, CC0): 13 films matched (11 by title, year and director, 2 by its own entry), 3 not found; "
        "13 created, 0 updated, 0 removed. Fact sections: 39 created, 0 updated, 0 deleted."
    ) in text
    public = Movie.objects.get(source="wikidata", source_key="tt0498329")
    assert (public.title, public.year, public.director) == ("We Live in Public", 2009, "Ondi Timoner")
    assert [(s.kind, s.origin, s.content) for s in MovieSection.objects.for_movie(public)][:2] == [
        ("overview", "source", PUBLIC_OVERVIEW),
        ("production", "facts", PUBLIC_PRODUCTION),
    ]
    assert FilmFacts.objects.get(movie=public).matched_by == "its own entry"
    page = client.get(public.get_absolute_url()).content.decode()
    assert "Overview written from Wikidata&#x27;s facts, available under CC0." in page
    again = StringIO()
    call_command("import_movies", "--limit", "0", "--catalogue", "2", "--no-embed", "--no-progress", stdout=again)
    catalogue = "Catalogue (Wikidata films with no other text): 0 created, 0 updated, 2 unchanged, 0 removed"
    assert catalogue in again.getvalue()
    assert "0 created, 0 updated, 0 removed. Fact sections: 0 created, 0 updated, 0 deleted." in again.getvalue()


PUBLIC_OVERVIEW = "We Live in Public is a 2009 documentary film from the United States, directed by Ondi Timoner."
PUBLIC_PRODUCTION = (
    "We Live in Public is a documentary film. It runs 90 minutes. It was made in the United States. Its language is "
    "English. It was released on 19 January 2009. Its box office gross was $41,711 (the largest gross reported, often "
    "worldwide)."
)
