"""The turn pipeline on its own, without HTTP or SSE: the domain events of one turn, from the real retrieval and the
offline answerer or the fake LLM server."""

import asyncio
import threading
import time

import pytest

from chat.pipeline import Answering, Done, Error, Event, Sources, Text, Turn, TurnError, answer_turn, searching
from llm import aclose_shared_client
from reports.embeddings import get_embedder, normalize_query
from reports.generations import forget_all
from reports.models import Movie, text_hash


def events_of(turn: Turn) -> list[Event]:
    async def collect() -> list[Event]:
        try:
            return [event async for event in answer_turn(turn=turn, opened=time.perf_counter())]
        finally:
            await aclose_shared_client()

    return asyncio.run(collect())


@pytest.fixture(params=["alone", "together"])
def search_path(request) -> object:
    """A turn searching with no other (its question embedded on its database thread), or beside another turn that
    is held searching for the test's length (its question embedded on the batching thread)."""
    if request.param == "alone":
        yield request.param
    else:
        with searching.turn() as alone:
            assert alone
            yield request.param


@pytest.fixture
def vertigo(sample_movies: dict[str, Movie]) -> Movie:
    return sample_movies["Vertigo (film)"]


def about(movie: Movie, question: str, **fields: object) -> Turn:
    return Turn(question=question, movie_id=movie.pk, movie_title=movie.title, **fields)


def test_an_offline_turn_yields_sources_the_answerer_its_text_and_done(vertigo):
    turn = about(vertigo, "Who directed Vertigo?")
    events = events_of(turn)
    sources, answering, *texts, done = events
    assert isinstance(sources, Sources)
    assert {hit.movie_slug for hit in sources.hits} == {"vertigo"}
    assert sources.embed_ms >= 0 and sources.search_ms >= 0
    assert answering == Answering("offline", "", cached=False, upstream_ms=answering.upstream_ms)
    assert texts and all(isinstance(text, Text) for text in texts)
    assert "Alfred Hitchcock" in "".join(text.text for text in texts)
    assert done == Done("")
    assert turn == about(vertigo, "Who directed Vertigo?")  # nothing it was given changed


def test_an_llm_turn_yields_each_piece_then_done_with_the_model(vertigo, llm):
    llm.set_scenario("scripted", tokens=["Alfred ", "Hitchcock."], model="vendor/answering-model")
    events = events_of(about(vertigo, "Who directed it, the pipeline asks?"))
    assert [type(event) for event in events] == [Sources, Answering, Text, Text, Done]
    answering = events[1]
    assert (answering.provider, answering.model, answering.cached) == ("openai-compatible", "test/model", False)
    assert answering.upstream_ms is not None
    assert [event.text for event in events[2:4]] == ["Alfred ", "Hitchcock."]
    assert events[-1] == Done("vendor/answering-model")


def test_an_llm_failure_is_an_error_event_after_the_text_so_far(vertigo, llm):
    llm.set_scenario("error_chunk_after_tokens", tokens=["so ", "far "], after=2)
    events = events_of(about(vertigo, "Will this fail?"))
    assert [type(event) for event in events] == [Sources, Answering, Text, Text, Error]
    error = events[-1].error
    assert isinstance(error, TurnError)
    assert (error.code, error.retryable) == ("upstream_error", True)


def test_a_repeated_first_question_is_answered_from_the_cache(vertigo, llm, settings, search_path):
    settings.RESPONSE_CACHE_TTL = 3600
    llm.set_scenario("scripted", tokens=["Cached ", "once."])
    first = events_of(about(vertigo, f"Which question does the pipeline cache ({search_path})?"))
    again = events_of(about(vertigo, f"which question does the pipeline  cache ({search_path})?"))
    assert [type(event) for event in first] == [Sources, Answering, Text, Text, Done]
    assert again[1:] == [
        Answering("openai-compatible", "test/model", cached=True),
        Text("Cached once."),
        Done("test/model"),
    ]
    assert len(llm.requests) == 1


LOCAL_CACHE = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "pipeline-answers"}}


def test_a_repeated_first_question_across_films_is_answered_from_the_cache(sample_movies, llm, settings, search_path):
    settings.CACHES = LOCAL_CACHE
    settings.RESPONSE_CACHE_TTL = 3600
    llm.set_scenario("scripted", tokens=["Vertigo, ", "cached."])
    turn = Turn(question=f"Which film follows a detective afraid of heights, asked twice ({search_path})?")
    first = events_of(turn)
    again = events_of(Turn(question=f"which film follows a detective afraid of heights,  asked twice ({search_path})?"))
    assert [type(event) for event in first] == [Sources, Answering, Text, Text, Done]
    assert again[0].hits == first[0].hits
    assert again[1:] == [
        Answering("openai-compatible", "test/model", cached=True),
        Text("Vertigo, cached."),
        Done("test/model"),
    ]
    assert len(llm.requests) == 1


def test_a_cached_answer_given_other_sections_is_not_reused(vertigo, llm, settings, search_path):
    """The entry may be read before the sections are known (turns searching together read it while the question is
    embedded): an answer written over other sections, or the same sections with other text, is not given again; the
    new answer replaces it."""
    from django.core.cache import cache

    from chat import pipeline
    from llm import config_from_settings

    settings.CACHES = LOCAL_CACHE
    settings.RESPONSE_CACHE_TTL = 3600
    turn = about(vertigo, f"Which sections did this cached answer see ({search_path})?")
    llm.set_scenario("scripted", tokens=["Before."])
    sources = events_of(turn)[0]
    key = pipeline._answer_key(turn, config_from_settings(settings))
    entry = cache.get(key)
    signature = ",".join(f"{hit.section_id}:{text_hash(hit.content)[:16]}" for hit in sources.hits)
    expected = {"content": "Before.", "provider": "openai-compatible", "model": "test/model", "sections": signature}
    assert entry == expected
    first_section = sources.hits[0].section_id
    cache.set(key, {**entry, "sections": signature.replace(f"{first_section}:", f"{first_section}:0", 1)})
    llm.set_scenario("scripted", tokens=["After."])
    events = events_of(turn)
    assert (events[1].cached, "".join(e.text for e in events if isinstance(e, Text))) == (False, "After.")
    assert cache.get(key) == {**entry, "content": "After."}
    assert len(llm.requests) == 2


def test_a_regenerated_answer_never_comes_from_the_cache(vertigo, llm, settings):
    settings.RESPONSE_CACHE_TTL = 3600
    llm.set_scenario("scripted", tokens=["Fresh."])
    events_of(about(vertigo, "Ask the pipeline again"))
    events = events_of(about(vertigo, "Ask the pipeline again", regenerated=True))
    assert events[1].cached is False
    assert len(llm.requests) == 2


def test_a_turn_alone_embeds_on_its_database_thread_and_turns_together_on_the_batching_thread(
    sample_movies, monkeypatch
):
    embedder = get_embedder()
    embedder.cache.clear()
    real = embedder.embed_queries
    threads: dict[str, str] = {}

    def recording(keys):
        threads.update({key: threading.current_thread().name.rsplit("_", 1)[0] for key in keys})
        return real(keys)

    monkeypatch.setattr(embedder, "embed_queries", recording)
    first = Turn(question="Which film follows a detective afraid of heights?")
    second = Turn(question="Which film is about a computer on a ship to Jupiter?")

    async def collect(turn: Turn) -> list[Event]:
        return [event async for event in answer_turn(turn=turn, opened=time.perf_counter())]

    async def together() -> list[list[Event]]:
        return list(await asyncio.gather(collect(first), collect(second)))

    both = asyncio.run(together())
    assert threads == {normalize_query(first.question): "chat-db", normalize_query(second.question): "embed-queries"}
    assert [events[0].hits[0].movie_title for events in both] == ["Vertigo", "2001: A Space Odyssey"]
    embedder.cache.clear()
    forget_all()  # the retrieval cache too: the question is searched again
    threads.clear()
    alone = asyncio.run(collect(second))
    assert threads == {normalize_query(second.question): "chat-db"}
    assert alone[0].hits == both[1][0].hits
