"""BM25 in PostgreSQL: the document frequencies the triggers keep, and exact rankings on a small fixed corpus."""

import math

import pytest
from django.db import connection

from reports import ingest
from reports.models import Corpus, Lexeme, Movie, MovieSection
from reports.search import (
    BM25_B,
    BM25_K1,
    LEXICAL_COMMON,
    TITLE_SQL,
    VECTOR_ONLY,
    run_prepared,
    search_all,
    search_movie,
)

# A corpus small enough to rank by hand. Every film but the last has a section that says "film" and "story": common
# words; "lighthouse" is in one section only.
FILMS = {
    "Harbour Light": "Harbour Light is a film about a keeper who tends a lighthouse on a rocky island through a storm.",
    "City Lights Again": "City Lights Again is a film about a tramp in a city, a story of love and of a flower girl.",
    "Desert Song": "Desert Song is a film and a story of a caravan crossing the desert to reach a distant oasis.",
    "Winter Orchard": "Winter Orchard is a film, a story of a family who keep an apple orchard through a hard winter.",
    "Vertigo": "A retired detective with a fear of heights follows a woman through San Francisco.",
}


def lexicon() -> tuple[dict[str, int], tuple[int, int]]:
    corpus = Corpus.objects.get()
    return dict(Lexeme.objects.values_list("lexeme", "sections")), (corpus.sections, corpus.lexemes)


def recomputed() -> tuple[dict[str, int], tuple[int, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT lexeme, count(*) FROM reports_moviesection, unnest(tsvector_to_array(search_vector)) lexeme "
            "GROUP BY lexeme"
        )
        frequencies = dict(cursor.fetchall())
        cursor.execute("SELECT count(*), coalesce(sum(length(search_vector)), 0) FROM reports_moviesection")
        return frequencies, tuple(cursor.fetchone())


@pytest.fixture
def fixed_corpus(db):
    """Only the films above (the session's sample films are deleted inside the test's transaction)."""
    Movie.objects.all().delete()
    records = [
        ingest.FilmRecord(source="file", source_key=title, title=title, text=text) for title, text in FILMS.items()
    ]
    ingest.import_records(records)
    ingest.embed_sections()
    # The HNSW graph rebuilt on what the table holds now. Earlier tests' rolled-back sections (thousands of
    # near-duplicates, `populated`) stay in the index until a vacuum; a new section close to them can be left with no
    # edge pointing to it, so that no scan reaches it (measured: Vertigo's, after 3,000 of them).
    with connection.cursor() as cursor:
        cursor.execute("REINDEX INDEX section_embedding_hnsw")
    return {movie.title: movie for movie in Movie.objects.all()}


def test_the_triggers_keep_document_frequencies_exact_through_every_kind_of_write(sample_movies):
    assert lexicon() == recomputed()
    movie = sample_movies["Vertigo (film)"]
    section = MovieSection.objects.create(
        movie=movie, position=90, heading="Trivia", content="Zyzzyva lighthouse zyzzyva.", content_hash="x"
    )
    frequencies, (sections, _) = lexicon()
    assert frequencies["zyzzyva"] == 1
    assert (frequencies, sections) == (recomputed()[0], MovieSection.objects.count())
    MovieSection.objects.filter(pk=section.pk).update(content="Quokka island.")
    frequencies, _ = lexicon()
    assert ("zyzzyva" in frequencies, frequencies["quokka"]) == (False, 1)
    assert lexicon() == recomputed()
    # Storing an embedding leaves the text as it was: nothing changes.
    before = lexicon()
    MovieSection.objects.filter(pk=section.pk).update(embedded_hash="y")
    assert lexicon() == before
    movie.delete()
    assert lexicon() == recomputed()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("TRUNCATE reports_moviesection CASCADE")
    assert lexicon() == ({}, (0, 0))


def test_a_rare_word_outranks_a_common_one(fixed_corpus):
    result = search_all(query="film story lighthouse", k=4, per_film=1)
    assert [hit.movie_title for hit in result.hits][0] == "Harbour Light"
    first = result.films[0]
    # BM25 by hand: each term's idf times its saturated, length-normalised frequency in the section.
    frequencies, (sections, lexemes) = lexicon()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT length(search_vector) FROM reports_moviesection WHERE movie_id = %s",
            [fixed_corpus["Harbour Light"].pk],
        )
        (length,) = cursor.fetchone()
    mean = lexemes / sections

    def weight(term: str) -> float:
        idf = math.log(1 + (sections - frequencies[term] + 0.5) / (frequencies[term] + 0.5))
        return idf * (BM25_K1 + 1) / (1 + BM25_K1 * (1 - BM25_B + BM25_B * length / mean))

    assert (frequencies["film"], frequencies["stori"], frequencies["lighthous"]) == (4, 3, 1)
    # "film" is in 4 of the 5 sections, more than LEXICAL_COMMON of them: it ranks no film (it still orders a film's
    # sections, below).
    assert LEXICAL_COMMON < 4 / 5
    assert first.lexical == pytest.approx(weight("lighthous"), rel=1e-6)
    assert weight("lighthous") > 4 * weight("film")
    assert first.text_rank == 1


def test_a_question_matching_no_section_still_returns_vector_hits(fixed_corpus):
    result = search_all(query="acrophobia", k=3, per_film=1)
    assert len(result.hits) == 3
    assert {film.text_rank for film in result.films} == {None}
    assert result.hits[0].movie_title == "Vertigo"


def test_a_named_title_comes_first_even_misspelt(fixed_corpus):
    for question in ("What year is Vertigo from?", "who made vertigoo", "tell me about the winter orchad"):
        titles = [hit.movie_title for hit in search_all(query=question, k=3, per_film=1).hits]
        assert titles[0] == ("Winter Orchard" if "orchad" in question else "Vertigo"), question


def test_a_short_entry_weighs_no_more_than_a_long_one_for_the_same_word(fixed_corpus):
    # BM25_B is 0: a word once in a one-line entry and once in a long text weigh the same (with length normalisation,
    # the short entry would win whatever the long one says).
    Movie.objects.filter(title__in=["Desert Song", "Winter Orchard"]).delete()
    short, long = (
        Movie.objects.create(slug=slug, title=title, source="file", source_key=slug) for slug, title in
        [("win-win", "Win Win"), ("network", "Network")]
    )  # fmt: skip
    MovieSection.objects.create(movie=short, position=0, heading="Overview", content="A heist.", content_hash="a")
    MovieSection.objects.create(
        movie=long,
        position=0,
        heading="Overview",
        content="A television network news anchor, told he will be fired, announces on air that he will shoot himself; "
        "the ratings soar, and the network plans a heist of its own: to sell his rage as a show.",
        content_hash="b",
    )
    ingest.embed_sections()
    films = {film.movie_id: film.lexical for film in search_all(query="heist", k=5, per_film=1).films}
    assert films[short.pk] == pytest.approx(films[long.pk], rel=1e-9)
    assert BM25_B == 0


def test_a_title_is_named_only_when_the_question_has_all_its_words(fixed_corpus):
    def named(question: str) -> list[str]:
        ids = [row[0] for row in run_prepared(TITLE_SQL, {"text": question})]
        return sorted(movie.title for movie in Movie.objects.filter(pk__in=ids))

    assert named("the harbour light at night") == ["Harbour Light"]  # not City Lights Again: one word of three
    assert named("is City Lights Again a sequel?") == ["City Lights Again"]
    assert named("lights of a city") == ["City Lights Again"]  # "again" is a stop word
    assert named("a city at night") == []
    assert named("What year is Vertigo from?") == ["Vertigo"]
    assert named("a song of the desert, in winter") == ["Desert Song"]


def test_per_film_search_puts_the_section_holding_the_words_first(fixed_corpus):
    movie = fixed_corpus["Harbour Light"]
    MovieSection.objects.create(
        movie=movie, position=5, heading="Reception", content="Critics praised the storm scenes.", content_hash="r"
    )
    ingest.embed_sections()
    hits = search_movie(movie_id=movie.pk, query="what did critics say", k=2).hits
    assert [hit.heading for hit in hits] == ["Reception", "Overview"]


def test_vector_only_fusion_ignores_the_words(fixed_corpus):
    fused = search_all(query="lighthouse", k=5, per_film=1)
    vector = search_all(query="lighthouse", k=5, per_film=1, fusion=VECTOR_ONLY)
    assert fused.hits[0].movie_title == "Harbour Light"
    assert [film.similarity for film in vector.films] == sorted((f.similarity for f in vector.films), reverse=True)
