"""ITPruner layer widths (Zheng et al., book/formulation.md §7): keep more of the layers that share least information.

On one batch, every prunable layer's output maps (ReLU of its BN output) are flattened to (bs, d_i) and
compared by linear CKA, the normalised HSIC of their centred linear Gram matrices:

    nHSIC_ij = ⟨K̄_i, K̄_j⟩ / (‖K̄_i‖ ‖K̄_j‖),   K_i = X_i X_iᵀ.

A layer similar to many others is redundant: t_i = Σ_{j≠i} nHSIC_ij, normalised to sum 1, gives the importance
exp(−β t_i). Widths x ∈ (0, 1]ᴸ maximise Σ x_i·importance_i subject to count(x ∘ c) ≤ target·count(c), with
count the exact quadratic of :mod:`~ibprune_lib.pruning.budget` (ITPruner's a_i x_i + b_i x_i² + Σ c_ij x_i x_j),
by SLSQP from x = 1 as in ITPruner's code; the widths are then rounded to keep counts meeting the target like
the uniform ones. Any criterion fills them.

When a layer's removal scales only one side of each module (pruning the inner channels of ResNet blocks, as
here), the count has no x_i² terms and is linear in x for unchained layers: the problem is then a linear
programme whose optimum sits at the bounds, every layer either full or at ``min_width``. ITPruner's own
ResNets prune the block outputs too, which makes the constraint curved; ``min_width`` bounds the damage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import optimize
from torch import nn

from .budget import CountModel, Target, check_met, check_metric, check_ratio, round_to_target, target_range
from .capture import capture
from .layers import PrunableLayer

DEFAULT_BETA = 500.0
"""ITPruner's β for ResNet-56 on CIFAR-10 (its script for ResNet-20 uses 246)."""


def centred_linear_gram(features: torch.Tensor) -> torch.Tensor:
    """Centred linear Gram matrix of a batch of features.

    Args:
        features: (bs, ...) one row per sample after flattening.

    Returns:
        (bs, bs) float64 H X Xᵀ H, H = I − 11ᵀ/bs.
    """
    X = features.reshape(len(features), -1).double()
    X = X - X.mean(0, keepdim=True)
    return X @ X.T


def linear_cka_matrix(grams: Sequence[torch.Tensor]) -> torch.Tensor:
    """Pairwise linear CKA of layers from their centred linear Grams.

    Args:
        grams: L tensors (bs, bs) from :func:`centred_linear_gram`.

    Returns:
        (L, L) symmetric, ones on the diagonal (a constant layer correlates 0 with every other).
    """
    flat = torch.stack([g.flatten() for g in grams])  # (L, bs²)
    hsic = flat @ flat.T
    norms = hsic.diagonal().sqrt()
    cka = hsic / torch.outer(norms, norms).clamp_min(torch.finfo(hsic.dtype).tiny)
    cka.fill_diagonal_(1.0)
    return cka


def layer_importance(similarity: torch.Tensor, beta: float = DEFAULT_BETA) -> torch.Tensor:
    """ITPruner's importance exp(−β t), t_i = Σ_{j≠i} similarity_ij normalised to sum 1.

    Args:
        similarity: (L, L) e.g. linear CKA.
        beta: the temperature β > 0.

    Returns:
        (L,) importance in (0, 1].
    """
    t = similarity.sum(1) - similarity.diagonal()
    t = t / t.sum() if t.sum() > 0 else torch.full_like(t, 1 / len(t))
    return torch.exp(-beta * t)


def optimal_widths(
    importance: np.ndarray, model: CountModel, metric: str, target: float, min_width: float | None = None
) -> np.ndarray:
    """Widths x maximising Σ x·importance subject to count(x ∘ c) ≤ target·count(c), SLSQP from x = 1.

    Args:
        importance: (L,) positive layer importances.
        model: the count model over the same L layers.
        metric: ``"params"`` or ``"macs"``.
        target: keep ratio of the metric.
        min_width: lower bound of every width; None: one channel (ITPruner's bound is 0).

    Returns:
        (L,) widths in [max(min_width, 1/c_l), 1].
    """
    weights = np.asarray(importance, dtype=np.float64)
    weights = weights / weights.max()
    c = model.channels.astype(np.float64)
    lower = np.maximum(1 / c, min_width or 0.0)
    a, Q = model.linear[metric] * c / model.full[metric], model.quadratic[metric] * np.outer(c, c) / model.full[metric]
    c0 = model.constant[metric] / model.full[metric]
    result = optimize.minimize(
        lambda x: -weights @ x,
        x0=np.ones_like(c),
        jac=lambda x: -weights,
        method="SLSQP",
        bounds=list(zip(lower, np.ones_like(c))),
        constraints=[{"type": "ineq", "fun": lambda x: target - (c0 + a @ x + 0.5 * x @ Q @ x), "jac": lambda x: -(a + Q @ x)}],
        options={"maxiter": 500, "ftol": 1e-12},
    )
    return np.clip(result.x, lower, 1.0)


def itpruner_keep_counts(
    model: nn.Module,
    images: torch.Tensor,
    layers: Sequence[PrunableLayer],
    counts: CountModel,
    metric: str,
    target: Target,
    beta: float = DEFAULT_BETA,
    min_width: float | None = None,
    round_to: int = 1,
) -> tuple[list[int], dict]:
    """ITPruner's per-layer keep counts for ``layers`` meeting ``target``.

    Args:
        model: the unpruned network (not modified).
        images: (bs, c, h, w) normalised calibration inputs on the model's device.
        layers: its prunable layers.
        counts: their count model.
        metric: ``"params"`` or ``"macs"``.
        target: keep ratio in (0, 1], or a (lo, hi) range.
        beta: ITPruner's β.
        min_width: lower bound of the widths in (0, 1]; None: one channel per layer.
        round_to: keep multiples of this many channels per layer (``budget.round_to_target``).

    Returns:
        (keep counts (L,), diagnostics: ``similarity`` (L, L), ``importance`` (L,), ``widths`` (L,) as lists).

    Raises:
        ValueError: a bad metric, target or β, or widths that cannot meet the target.
    """
    check_metric(metric)
    if not beta > 0:
        raise ValueError(f"beta must be positive, got {beta!r}")
    if min_width is not None:
        check_ratio(min_width, "min_width")
    lo, hi = target_range(target, f"target {metric}")
    aim = (lo + hi) / 2 if isinstance(target, (tuple, list)) else float(target)
    grams = [centred_linear_gram(features.outputs) for _, features in capture(model, images, list(layers), "maps")]
    similarity = linear_cka_matrix(grams)
    importance = layer_importance(similarity, beta)
    widths = optimal_widths(importance.numpy(), counts, metric, aim, min_width)
    keep = round_to_target(widths * counts.channels, counts, metric, aim, round_to)
    check_met(counts, keep, metric, (lo, hi), round_to)
    diagnostics = {"similarity": similarity.tolist(), "importance": importance.tolist(), "widths": widths.tolist(), "beta": beta,
                   "min_width": min_width}
    return keep, diagnostics
