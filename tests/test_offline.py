from chat.citations import parse_citations
from chat.offline import INTRO, NO_ANSWER, NO_ANSWER_HINT, NO_MATCH, offline_answer, stem
from reports.search import Hit

PLOT = (
    "Scottie Ferguson, a San Francisco police detective, retires after an incident on a rooftop leaves him with "
    "acrophobia and vertigo. An old acquaintance, Gavin Elster, asks him to follow his wife Madeleine, who he says "
    "is possessed by the spirit of her great-grandmother Carlotta Valdes. Scottie follows her to a florist, a "
    "cemetery and a museum, and saves her when she jumps into San Francisco Bay."
)
CAST_CREW = (
    "Vertigo was directed by Alfred Hitchcock, who also produced it for Paramount Pictures. The screenplay was "
    "written by Alec Coppel and Samuel A. Taylor from the 1954 novel D'entre les morts by Boileau-Narcejac. "
    "Bernard Herrmann composed the score, and Robert Burks was the cinematographer."
)
RECEPTION = (
    "Vertigo received mixed reviews upon initial release, but is now often cited as a classic Hitchcock film and "
    "one of the defining works of his career. Attracting significant scholarly criticism, it replaced Citizen Kane "
    "(1941) as the greatest film ever made in the 2012 British Film Institute's Sight & Sound critics' poll."
)


def vertigo_hits() -> list[Hit]:
    # In the order retrieval returned them: the plot ranked first, as it often does for a short question.
    return [
        Hit(41, 3, "Vertigo", "vertigo", 1958, "plot", "Plot", PLOT, similarity=0.62, score=0.62),
        Hit(44, 3, "Vertigo", "vertigo", 1958, "cast_crew", "Cast and crew", CAST_CREW, similarity=0.58, score=0.58),
        Hit(47, 3, "Vertigo", "vertigo", 1958, "reception", "Reception", RECEPTION, similarity=0.41, score=0.41),
    ]


def test_who_directed_vertigo_quotes_the_sentence_naming_the_director_first():
    answer = "".join(offline_answer(question="Who directed Vertigo?", hits=vertigo_hits()))
    assert answer == (
        "No language model is configured, so here are the passages from the film reports that best match your "
        "question:\n\n"
        "> Vertigo was directed by Alfred Hitchcock, who also produced it for Paramount Pictures. [44]\n\n"
        "> Scottie Ferguson, a San Francisco police detective, retires after an incident on a rooftop leaves him "
        "with acrophobia and vertigo. [41]"
    )


def test_the_answer_streams_as_an_intro_then_one_piece_per_quote():
    pieces = list(offline_answer(question="Who composed the score?", hits=vertigo_hits()))
    assert pieces == [
        INTRO,
        "\n\n> Bernard Herrmann composed the score, and Robert Burks was the cinematographer. [44]",
        "\n\n> Scottie Ferguson, a San Francisco police detective, retires after an incident on a rooftop leaves "
        "him with acrophobia and vertigo. [41]",
    ]


def test_the_answer_cites_exactly_the_sections_it_quotes():
    hits = vertigo_hits()
    answer = "".join(offline_answer(question="How was Vertigo received and who wrote the screenplay?", hits=hits))
    quotes = answer.split("\n\n")[1:]
    # Both things asked, and no filler after them: a third sentence must share a word with the question.
    assert [quote[:30] for quote in quotes] == ["> The screenplay was written b", "> Vertigo received mixed revie"]
    assert [int(quote.rsplit(" [", 1)[1].rstrip("]")) for quote in quotes] == [44, 47]
    assert parse_citations(answer, allowed_ids={hit.section_id for hit in hits}) == [44, 47]


def test_a_question_term_in_the_heading_counts_for_its_sentences():
    answer = "".join(offline_answer(question="What is the plot?", hits=vertigo_hits()))
    assert parse_citations(answer, allowed_ids={41, 44, 47}) == [41]
    assert answer.count("\n\n> ") == 3


def test_no_hits_says_nothing_in_the_reports_matches():
    assert list(offline_answer(question="Who directed Vertigo?", hits=[])) == [NO_MATCH]
    assert NO_MATCH.startswith("Nothing in the film reports matches this question.")


def test_footnote_markers_in_the_source_are_not_quoted_as_citations():
    overview = "Vertigo was directed by Hitchcock.[8] It is a thriller."
    hits = [
        Hit(7, 3, "Vertigo", "vertigo", 1958, "overview", "Overview", overview, similarity=0.5, score=0.5),
        Hit(8, 3, "Vertigo", "vertigo", 1958, "plot", "Plot", "Scottie follows Madeleine.", similarity=0.4, score=0.4),
    ]
    answer = "".join(offline_answer(question="Who directed Vertigo?", hits=hits))
    assert answer == f"{INTRO}\n\n> Vertigo was directed by Hitchcock. [7]\n\n> It is a thriller. [7]"
    assert parse_citations(answer, allowed_ids={7, 8}) == [7]


def test_quotes_from_several_films_name_their_film():
    psycho = "Psycho was directed by Alfred Hitchcock and stars Anthony Perkins."
    hits = [
        vertigo_hits()[1],
        Hit(90, 5, "Psycho", "psycho", 1960, "cast_crew", "Cast and crew", psycho, similarity=0.55, score=0.55),
    ]
    answer = "".join(offline_answer(question="Which films were directed by Alfred Hitchcock?", hits=hits))
    assert answer == (
        f"{INTRO}\n\n"
        "> **Vertigo (1958):** Vertigo was directed by Alfred Hitchcock, who also produced it for Paramount "
        "Pictures. [44]\n\n"
        "> **Psycho (1960):** Psycho was directed by Alfred Hitchcock and stars Anthony Perkins. [90]"
    )


def test_a_words_common_forms_share_a_stem():
    assert {stem(word) for word in ["directed", "directing", "director", "direction", "directs"]} == {"direct"}
    assert stem("starring") == stem("stars") == "star"
    assert stem("released") == stem("release")
    assert stem("Hitchcock's") == "hitchcock"
    # ... but a genre is not a profession: an action film's facts do not answer "which actors".
    assert (stem("actors"), stem("action"), stem("actions")) == ("act", "action", "action")


def test_a_question_the_report_cannot_answer_gets_a_plain_no():
    answer = list(offline_answer(question="What was the budget of Vertigo?", hits=vertigo_hits()))
    assert answer == [NO_ANSWER + NO_ANSWER_HINT]
    assert answer[0] == (
        "The film reports found for this question do not say. They tell of the film's story, cast and crew, "
        "production and reception."
    )


def test_a_general_question_about_the_film_is_no_question_without_an_answer():
    answer = "".join(offline_answer(question="Tell me about Vertigo", hits=vertigo_hits()))
    assert answer.startswith(INTRO)
    assert parse_citations(answer, allowed_ids={41, 44, 47}) == [41, 44, 47]


def test_what_a_question_asks_finds_the_sentence_that_answers_in_other_words():
    # "music" is not in the answer; a composer is. "Oscars" is not either; Academy Awards are.
    pieces = list(offline_answer(question="Who did the music for Vertigo?", hits=vertigo_hits()))
    assert pieces[1] == "\n\n> Bernard Herrmann composed the score, and Robert Burks was the cinematographer. [44]"
    awards = Hit(48, 3, "Vertigo", "vertigo", 1958, "reception", "Reception", "It won two Academy Awards.", 0.3, 0.3)
    pieces = list(offline_answer(question="Which Oscars did Vertigo win?", hits=[*vertigo_hits(), awards]))
    assert pieces[1] == "\n\n> It won two Academy Awards. [48]"


def test_a_misspelt_title_still_counts_as_the_title():
    # "vertgo" is the title, so the question asks who was in it: the cast, which these sections do not name.
    assert list(offline_answer(question="who was in vertgo", hits=vertigo_hits())) == [NO_ANSWER + NO_ANSWER_HINT]
    cast = Hit(
        49, 3, "Vertigo", "vertigo", 1958, "cast_crew", "Cast", "It stars James Stewart and Kim Novak.", 0.3, 0.3
    )
    pieces = list(offline_answer(question="who was in vertgo", hits=[*vertigo_hits(), cast]))
    assert pieces[1] == "\n\n> It stars James Stewart and Kim Novak. [49]"
