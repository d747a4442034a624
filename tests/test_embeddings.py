import numpy as np
import pytest

from reports.embeddings import DIMENSIONS, Embedder, QueryCache, get_embedder, normalize_query


def test_it_loads_the_model_once_per_process():
    assert get_embedder() is get_embedder()
    model = get_embedder().model
    get_embedder().embed_query("warm up")
    assert get_embedder().model is model


def test_query_vectors_are_384_dimensional_and_normalised():
    vector = get_embedder().embed_query("Who directed Vertigo?")
    assert vector.shape == (DIMENSIONS,)
    assert vector.dtype == np.float32
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)


def test_the_cache_serves_the_same_question_however_it_is_spaced_or_cased():
    embedder = Embedder(threads=1, cache_size=8)
    embedder._model = get_embedder().model  # share the loaded weights; the cache is this instance's own
    first = embedder.embed_query("Who directed  Vertigo?")
    second = embedder.embed_query("who directed vertigo?")
    assert second is first
    stats = embedder.cache.stats()
    assert (stats.hits, stats.misses, stats.size) == (1, 1, 1)
    assert stats.hit_rate == 0.5


def test_the_cache_evicts_the_least_recently_used_query():
    cache = QueryCache(2)
    a, b, c = (np.full(3, n, dtype=np.float32) for n in range(3))
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") is a
    cache.put("c", c)
    assert cache.get("b") is None
    assert cache.get("a") is a
    assert cache.get("c") is c
    assert cache.stats().size == 2


def test_batch_vectors_match_query_vectors():
    embedder = get_embedder()
    texts = ["A film about a detective with vertigo.", "Two old parents visit their children in Tokyo."]
    batch = embedder.embed_batch(texts, batch_size=2, threads=2)
    assert batch.shape == (2, DIMENSIONS)
    single = embedder._encode([normalize_query(texts[1])], batch_size=1)[0]
    assert float(batch[1] @ single) == pytest.approx(1.0, abs=1e-4)


def test_similar_meanings_are_closer_than_unrelated_ones():
    embedder = get_embedder()
    question = embedder.embed_query("a detective afraid of heights")
    vertigo, tokyo = embedder.embed_batch(
        [
            "A retired police detective suffering from acrophobia is hired to follow a woman.",
            "An aging couple travel to Tokyo to visit their grown children.",
        ]
    )
    assert float(question @ vertigo) > float(question @ tokyo) + 0.2


def test_it_counts_word_pieces_with_the_special_tokens():
    assert get_embedder().count_tokens("Hello world") == 4
