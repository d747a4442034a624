"""The vectors of the bundled films' sections, shipped with the code: a fresh start serves the 761 Wikipedia films
in seconds instead of after the two minutes their 2,739 sections take to embed on two cores.

`section_vectors.npz` holds each section's vector as the model gives it for the text it reads
(`MovieSection.embedding_text`), made in float32 and kept in float16 (2 MB; cosine to float32's above 0.999999),
keyed by the SHA-256 of that text, with the hash of the weights that made them. An import takes a section's vector
from the file when the hash of its text is there and the installed model is the one that made the file; any other
section is embedded as before. So a change to a section's text costs its embedding, never a wrong vector, and a
file left behind by a change only makes imports slower (a test says when: `tests/test_shipped_vectors.py`).
`python manage.py ship_vectors` makes the file again from the sections in the database.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reports.encoder import bundled_model_hash

logger = logging.getLogger(__name__)

PATH = Path(__file__).with_name("section_vectors.npz")


@dataclass(frozen=True)
class ShippedVectors:
    rows: dict[str, int]  # text hash -> row of `vectors`
    vectors: np.ndarray  # float16, one row a section
    model_sha256: str

    def get(self, text_hash: str) -> np.ndarray | None:
        """The unit vector of the text whose hash is `text_hash` in float32, or None when the file lacks it."""
        row = self.rows.get(text_hash)
        if row is None:
            return None
        vector = self.vectors[row].astype(np.float32)
        return vector / np.linalg.norm(vector)


def write(path: Path, hashes: Sequence[str], vectors: np.ndarray, *, model_sha256: str) -> None:
    if len(hashes) != len(vectors) or len(set(hashes)) != len(hashes):
        raise ValueError("One vector for each text hash, each hash once")
    order = np.argsort(np.array(hashes))  # sorted: the same sections give the same arrays, whatever their order
    np.savez_compressed(
        path,
        hashes=np.array(hashes, dtype="S64")[order],
        vectors=np.asarray(vectors, dtype=np.float16)[order],
        model_sha256=np.array(model_sha256),
    )


def read(path: Path) -> ShippedVectors:
    with np.load(path, allow_pickle=False) as file:
        hashes, vectors, model_sha256 = file["hashes"], file["vectors"], str(file["model_sha256"])
    rows = {value.decode(): row for row, value in enumerate(hashes)}
    return ShippedVectors(rows, vectors, model_sha256)


@functools.cache
def shipped() -> ShippedVectors | None:
    """The shipped vectors this process may use: None when the file is missing or was made by other weights than
    the installed model's (logged once; every section is then embedded)."""
    if not PATH.is_file():
        logger.warning("No shipped section vectors (%s): every section is embedded", PATH)
        return None
    vectors = read(PATH)
    if vectors.model_sha256 != bundled_model_hash():
        logger.warning("The shipped section vectors were made by other weights than the installed model's: unused")
        return None
    return vectors
