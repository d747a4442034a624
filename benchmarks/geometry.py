"""The geometry of a corpus's vectors: what makes nearest-neighbour search hard or easy (distances to the nearest
neighbours, local intrinsic dimension, participation ratio)."""

from __future__ import annotations

from typing import Any

import numpy as np

# Neighbours for the local intrinsic dimension (maximum-likelihood estimate, Levina & Bickel) in `geometry`.
LID_NEIGHBOURS = 20


def top_similarities(vectors: np.ndarray, points: np.ndarray, k: int, exclude: np.ndarray | None = None) -> Any:
    """For each point, its k highest cosine similarities among `vectors` (descending); `exclude`: each point's own
    row in `vectors`."""
    out = []
    for start in range(0, len(points), 256):
        similarities = points[start : start + 256] @ vectors.T
        if exclude is not None:
            similarities[np.arange(len(similarities)), exclude[start : start + 256]] = -np.inf
        top = np.partition(similarities, -k, axis=1)[:, -k:]
        out.append(-np.sort(-top, axis=1))
    return np.vstack(out)


def nearest_other_film_distances(vectors: np.ndarray, films: np.ndarray) -> np.ndarray:
    out = []
    for start in range(0, len(vectors), 256):
        similarities = vectors[start : start + 256] @ vectors.T
        similarities[films[start : start + 256, None] == films[None, :]] = -np.inf
        out.append(1.0 - similarities.max(axis=1))
    return np.concatenate(out)


def local_intrinsic_dimension(similarities: np.ndarray) -> np.ndarray:
    """Maximum-likelihood estimate (Levina & Bickel) from each point's k nearest distances."""
    distances = np.sqrt(np.maximum(2.0 - 2.0 * similarities.astype(np.float64), 1e-12))
    k = distances.shape[1]
    with np.errstate(divide="ignore"):
        return (k - 1) / np.sum(np.log(distances[:, -1:] / distances[:, :-1]), axis=1)


def quantiles(values: np.ndarray) -> dict[str, float]:
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    return {"p10": round(float(p10), 4), "p50": round(float(p50), 4), "p90": round(float(p90), 4)}


def geometry(vectors: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    """Distances to the nearest neighbours and local intrinsic dimension, at 2,000 sections and at the questions;
    the participation ratio of the corpus's covariance (its global effective dimension)."""
    sample = np.random.default_rng(3).choice(len(vectors), size=min(2000, len(vectors)), replace=False)
    at_sections = top_similarities(vectors, vectors[sample], LID_NEIGHBOURS, exclude=sample)
    at_queries = top_similarities(vectors, queries, LID_NEIGHBOURS)
    second_moment = np.zeros((vectors.shape[1], vectors.shape[1]))
    for start in range(0, len(vectors), 100_000):
        chunk = vectors[start : start + 100_000].astype(np.float64)
        second_moment += chunk.T @ chunk
    mean = vectors.astype(np.float64).mean(axis=0)
    eigenvalues = np.clip(np.linalg.eigvalsh(second_moment / len(vectors) - np.outer(mean, mean)), 0.0, None)
    return {
        "nearest_section_distance": quantiles(1.0 - at_sections[:, 0]),
        "lid_sections": round(float(np.median(local_intrinsic_dimension(at_sections))), 1),
        "query_10th_neighbour_distance": quantiles(1.0 - at_queries[:, 9]),
        "lid_queries": round(float(np.median(local_intrinsic_dimension(at_queries))), 1),
        "participation_ratio": round(float(eigenvalues.sum() ** 2 / (eigenvalues**2).sum()), 1),
        "lid_neighbours": LID_NEIGHBOURS,
    }
