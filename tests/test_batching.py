"""Question embeddings under a burst: embedded together, on a lower-priority thread, with the real model."""

import asyncio
import os

import numpy as np
import pytest

from reports import batching
from reports.embeddings import embed_query, get_embedder, normalize_query

QUESTIONS = [
    "Who directed Vertigo?",
    "What is the film about?",
    "Is there a famous score?",
    "Which actors star in it?",
    "Where was it filmed?",
]


def test_questions_that_arrive_together_are_embedded_in_one_pass():
    get_embedder().cache.clear()

    async def burst() -> tuple[list[np.ndarray], list[int]]:
        vectors = await asyncio.gather(*(batching.embed_query_async(q) for q in [*QUESTIONS, QUESTIONS[0]]))
        return vectors, batching.batcher().batches

    vectors, batches = asyncio.run(burst())
    assert batches == [5]  # five different questions (one asked twice), one pass
    assert vectors[0] is vectors[5]
    get_embedder().cache.clear()
    for question, vector in zip(QUESTIONS, vectors, strict=False):
        alone = embed_query(question)
        assert vector.shape == (384,)
        assert float(np.dot(vector, alone)) > 0.99999
    assert get_embedder().cache.get(normalize_query(QUESTIONS[1])) is not None


def test_a_cached_question_does_not_wait_for_a_pass():
    get_embedder().cache.clear()
    expected = embed_query("Who wrote the screenplay?")

    async def ask() -> tuple[np.ndarray, list[int]]:
        return await batching.embed_query_async("  who WROTE the screenplay? "), batching.batcher().batches

    vector, batches = asyncio.run(ask())
    assert vector is expected
    assert batches == []


def test_the_question_thread_runs_at_the_configured_lower_priority(settings):
    nice = batching._executor().submit(lambda: os.getpriority(os.PRIO_PROCESS, 0)).result()
    assert nice == settings.EMBEDDING_QUERY_NICE == 5


def test_a_failed_pass_fails_its_waiters_and_the_next_pass_works(monkeypatch):
    get_embedder().cache.clear()
    real = batching._embed_many
    monkeypatch.setattr(batching, "_embed_many", lambda keys: (_ for _ in ()).throw(RuntimeError("model gone")))

    async def failing() -> list[object]:
        return await asyncio.gather(*(batching.embed_query_async(q) for q in QUESTIONS[:3]), return_exceptions=True)

    results = asyncio.run(failing())
    assert [str(result) for result in results] == ["model gone"] * 3
    monkeypatch.setattr(batching, "_embed_many", real)
    assert asyncio.run(batching.embed_query_async(QUESTIONS[0])).shape == (384,)


@pytest.fixture(autouse=True)
def _fresh_batchers():
    batching._batchers.clear()
    yield
    batching._batchers.clear()
