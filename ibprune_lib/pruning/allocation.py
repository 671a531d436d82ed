"""Network-wide allocation: the layers' widths from one threshold on the criterion's scores, not one shared ratio.

``allocation="uniform"`` (the paper's Table 1) keeps one shared keep ratio in every pruned layer. ``"global"`` lets
the criterion say where the budget goes, as APIB's one λ for the whole network does and as PruningBench's "global
pruning with protection" does for the norms: each layer's channel scores (the criterion's own ``Selection.scores``
at the uniform counts: L1 and FPGM their norms and distances, the information-bottleneck methods their non-zeros
then norms) are divided by the layer's largest, so that every layer's best channel scores 1; one threshold t for
every layer keeps the channels scoring ≥ t, never fewer than ``min_width`` of a layer's channels; t is found by
bisection so that the network meets the budget. A layer keeps its highest-scoring channels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .budget import CountModel, Target, check_met, target_range

ALLOCATIONS = ("uniform", "global")
GLOBAL_MIN_WIDTH = 0.1
"""The least share of a layer's channels the global allocation keeps when the caller names none: a layer pruned to
one channel would cut the network."""


def normalised_scores(scores: torch.Tensor) -> torch.Tensor:
    """A layer's scores over its largest, in [0, 1] where the scores are non-negative (shifted to be so first)."""
    scores = scores.double()
    scores = scores - min(float(scores.min()), 0.0)
    top = float(scores.max())
    return scores / top if top > 0 else torch.ones_like(scores)


def counts_at(threshold: float, scores: Sequence[torch.Tensor], floors: np.ndarray) -> np.ndarray:
    """Channels each layer keeps at ``threshold``: those scoring ≥ it, at least the layer's floor."""
    return np.maximum([int((s >= threshold).sum()) for s in scores], floors)


def global_keep_counts(
    scores: Sequence[torch.Tensor], counts: CountModel, metric: str, target: Target, min_width: float | None = None,
    iterations: int = 60,
) -> tuple[list[int], float]:
    """Per-layer keep counts from one threshold on the layers' normalised scores, meeting ``target``.

    Args:
        scores: (c_l,) each layer's channel scores, higher is more important.
        counts: the count model of the network at these layers.
        metric: ``"params"`` or ``"macs"``.
        target: keep ratio in (0, 1] of the metric, or a (lo, hi) range.
        min_width: the least share of a layer's channels kept (default :data:`GLOBAL_MIN_WIDTH`).
        iterations: bisection steps on the threshold.

    Returns:
        (keep counts (L,), the threshold).

    Raises:
        ValueError: a target the threshold cannot meet (the floors keep too much).
    """
    lo, hi = target_range(target, f"target {metric}")
    aim = (lo + hi) / 2 if isinstance(target, (tuple, list)) else float(target)
    width = GLOBAL_MIN_WIDTH if min_width is None else min_width
    floors = np.array([max(1, math.ceil(width * c)) for c in counts.channels])
    normalised = [normalised_scores(s) for s in scores]
    low, high = 0.0, 1.0 + 1e-9  # ratio(low) is the most kept, ratio(high) the floors
    for _ in range(iterations):
        middle = (low + high) / 2
        if counts.ratio(counts_at(middle, normalised, floors), metric) >= aim:
            low = middle
        else:
            high = middle
    keep = min((counts_at(t, normalised, floors) for t in (low, high)),
               key=lambda k: abs(counts.ratio(k, metric) - aim))
    check_met(counts, keep, metric, (lo, hi))
    return keep.tolist(), low
