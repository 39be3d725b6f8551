"""Exact top-k scoring in numpy, in the score convention of :mod:`tiering.records`."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tiering.records import Metric, Vector


def score_matrix(queries: Vector, vectors: Vector, metric: Metric) -> npt.NDArray[np.float32]:
    """Return scores of shape (len(queries), len(vectors)); higher is better.

    For ``cosine`` both sides must already be unit-normalised.
    """
    products = queries @ vectors.T
    if metric is Metric.L2:
        squared = (
            np.einsum("ij,ij->i", queries, queries)[:, None]
            - 2.0 * products
            + np.einsum("ij,ij->i", vectors, vectors)[None, :]
        )
        return -np.maximum(squared, 0.0).astype(np.float32)
    return products.astype(np.float32)


def top_k(
    queries: Vector, vectors: Vector, k: int, metric: Metric
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Return row indices and scores of the ``k`` best rows of ``vectors`` per query.

    Rows are ordered best first; ties go to the lower row index. Fewer than ``k``
    columns come back when ``vectors`` has fewer rows.
    """
    n_queries = len(queries)
    if len(vectors) == 0:
        return np.zeros((n_queries, 0), np.int64), np.zeros((n_queries, 0), np.float32)
    scores = score_matrix(queries, vectors, metric)
    take = min(k, len(vectors))
    if take < len(vectors):
        part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
    else:
        part = np.tile(np.arange(len(vectors)), (n_queries, 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    # Sort by score descending, then by row index ascending for stable ties.
    order = np.lexsort((part, -part_scores), axis=1)
    rows = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return rows, np.take_along_axis(part_scores, order, axis=1)
