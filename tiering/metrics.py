"""Pure metric functions over recorded search results."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


def recall_at_k(found: Sequence[Sequence[object]], truth: npt.ArrayLike, k: int) -> float:
    """Return mean |found[:k] ∩ truth[:k]| / k over queries.

    ``found`` holds the returned ids per query (possibly fewer than ``k``);
    ``truth`` holds the exact neighbour ids per query, best first.
    """
    truth_rows = np.asarray(truth)
    if len(found) != len(truth_rows):
        raise ValueError(f"recall_at_k got {len(found)} result rows for {len(truth_rows)} queries.")
    if len(found) == 0:
        return 0.0
    total = 0
    for returned, exact in zip(found, truth_rows, strict=True):
        total += len({int(i) for i in list(returned)[:k]} & {int(i) for i in exact[:k]})  # type: ignore[call-overload]
    return total / (k * len(found))


def percentile_ms(latencies_s: Sequence[float], q: float) -> float:
    """Return the ``q``-th percentile (0-100, linear interpolation) of latencies, in milliseconds."""
    if len(latencies_s) == 0:
        return float("nan")
    return float(np.percentile(np.asarray(latencies_s, dtype=np.float64), q)) * 1000.0
