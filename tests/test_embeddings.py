import numpy as np
import pytest
from django.conf import settings

from reports.embeddings import (
    DIMENSIONS,
    Embedder,
    QueryCache,
    bfloat16_is_fast,
    bfloat16_is_native,
    cpu_flags,
    get_embedder,
    normalize_query,
    resolve_dtype,
)

REAL_TEXTS = [
    "Vertigo. Overview. A retired San Francisco detective suffering from acrophobia is hired to follow a woman.",
    "Tokyo Story. Overview. An aging couple travel to Tokyo to visit their grown children, who have little time.",
    "Who directed Seven Samurai?",
    "Atanarjuat: The Fast Runner is a 2001 Canadian epic film directed by Zacharias Kunuk, in Inuktitut.",
    "films about loneliness in a big city",
    "2001: A Space Odyssey. Overview, part 2. HAL 9000 refuses: \"I'm sorry, Dave. I'm afraid I can't do that.\"",
]


def embedder_in(dtype: str) -> Embedder:
    embedder = Embedder(threads=1, cache_size=0, dtype=dtype)
    embedder._model = get_embedder().model  # share the loaded weights
    return embedder


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


# The flags lines of /proc/cpuinfo: a CPU with AMX, one with AVX512-BF16 alone (this machine's, 2026-11-28, where
# bfloat16 ran slower than float32), one with neither.
AMX_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
AVX512_BF16_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16\nbugs\t\t: spectre_v1\n"
AVX2_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"


def test_bfloat16_counts_as_fast_only_with_amx():
    assert [bfloat16_is_fast(cpu_flags(text)) for text in (AMX_CPUINFO, AVX512_BF16_CPUINFO, AVX2_CPUINFO)] == [
        True,
        False,
        False,
    ]
    assert cpu_flags(AVX512_BF16_CPUINFO) == {"fpu", "sse2", "avx2", "avx512f", "avx512_vnni", "avx512_bf16"}
    assert cpu_flags("processor\t: 0\n") == set()


def test_auto_is_bfloat16_only_where_the_cpu_multiplies_it_in_hardware():
    with open("/proc/cpuinfo") as cpuinfo:
        amx = "amx_bf16" in cpu_flags(cpuinfo.read())
    assert bfloat16_is_native() is amx
    assert resolve_dtype("auto") == ("bfloat16" if amx else "float32")
    assert (resolve_dtype("float32"), resolve_dtype("bfloat16")) == ("float32", "bfloat16")
    assert get_embedder().dtype == resolve_dtype(settings.EMBEDDING_DTYPE)
    with pytest.raises(ValueError, match="Unknown embedding dtype 'float16'"):
        Embedder(threads=1, cache_size=0, dtype="float16")


def test_float32_gives_exactly_what_the_model_encodes():
    import torch

    vectors = embedder_in("float32").embed_batch(REAL_TEXTS, batch_size=4, threads=2)
    # On as many threads: on some CPUs (AVX-512 here) the matrix products' sums split by thread differ in the last
    # bit, so the same model on one thread and on two gives vectors that are equal only to about 1e-7.
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        plain = get_embedder().model.encode(REAL_TEXTS, batch_size=4, normalize_embeddings=True, convert_to_numpy=True)
    finally:
        torch.set_num_threads(threads)
    assert vectors.dtype == np.float32
    assert np.array_equal(vectors, plain)


def test_bfloat16_vectors_are_float32_normalised_and_within_cosine_0_9999_of_float32():
    # Runs where bfloat16 is emulated too (slower there, which is why auto picks float32).
    reference = embedder_in("float32").embed_batch(REAL_TEXTS, batch_size=4, threads=2)
    vectors = embedder_in("bfloat16").embed_batch(REAL_TEXTS, batch_size=4, threads=2)
    assert vectors.dtype == np.float32
    assert not np.array_equal(vectors, reference)  # the setting switched the dtype the model ran in
    assert np.abs(np.linalg.norm(vectors, axis=1) - 1).max() < 1e-6
    assert float(np.sum(vectors * reference, axis=1).min()) > 0.9999
    query = embedder_in("bfloat16").embed_query(REAL_TEXTS[2])
    assert float(query @ reference[2]) > 0.9999


def test_token_counts_match_the_models_own_tokenizer_past_its_128_token_default():
    text = " ".join(REAL_TEXTS * 4)
    expected = len(get_embedder().model.tokenizer(text, truncation=False)["input_ids"])
    assert expected > 128
    assert get_embedder().count_tokens(text) == expected
