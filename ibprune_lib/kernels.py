"""Per-channel Gram matrices and the Gram-space regression problem of one layer (book/formulation.md §1).

Every channel i of a feature tensor gives a (bs, d) matrix X_i (its maps over a batch, d = h·w); its sample
Gram matrix K(X_i) is (bs, bs) and the centred one is K̄ = H K H, H = I − 11ᵀ/bs. A layer's regression is
between the vectorised centred Grams of its input channels (design X̃, bs² × c_in) and of its output channels
(response Ỹ, bs² × c_out). The solver never sees the bs² rows: :func:`gram_problem` returns G = X̃ᵀX̃,
B = X̃ᵀỸ and ‖Ỹ‖²_F.

Kernels follow ``sklearn.metrics.pairwise`` (default γ = 1/d):

========== ==========================
linear     ⟨x, y⟩
gaussian   exp(−γ‖x − y‖²)
sigmoid    tanh(γ⟨x, y⟩ + 1)
laplacian  exp(−γ‖x − y‖₁)
========== ==========================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .structure import correlation_from_moments

KERNELS = ("linear", "gaussian", "sigmoid", "laplacian")

GRAM_MEMORY_BUDGET = 256 * 2**20
"""Bytes of scratch memory one chunk of channels may use while its Gram matrices are computed."""


@dataclass(frozen=True)
class GramProblem:
    """The quadratic form of ½‖Ỹ − X̃W‖²_F = ½(tr WᵀGW − 2 tr WᵀB + yy).

    Attributes:
        G: (p, p) X̃ᵀX̃, one row/column per candidate input channel.
        B: (p, q) X̃ᵀỸ, one column per response channel.
        yy: ‖Ỹ‖²_F.
        response_corr: (q, q) Pearson correlation of Ỹ's columns (constant columns correlate 0 with the
            rest, 1 with themselves).
    """

    G: torch.Tensor
    B: torch.Tensor
    yy: float
    response_corr: torch.Tensor


def check_features(features: torch.Tensor, name: str = "features") -> None:
    """Raise a ValueError unless ``features`` is a finite (bs, c, h, w) or (bs, c) floating tensor, bs ≥ 2."""
    if not isinstance(features, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(features).__name__}")
    if features.ndim not in (2, 4):
        raise ValueError(f"{name} must be (bs, c, h, w) or (bs, c), got shape {tuple(features.shape)}")
    if features.shape[0] < 2 or features.shape[1] < 1:
        raise ValueError(f"{name} needs at least 2 samples and 1 channel, got shape {tuple(features.shape)}")
    if not torch.isfinite(features).all():
        raise ValueError(f"{name} contains NaN or inf: check the model's activations on this batch")


def _channels_first(features: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(bs, c, h, w) or (bs, c) → (c, bs, d) with d = h·w (d = 1 for a 2-D input)."""
    bs, c = features.shape[:2]
    return features.reshape(bs, c, -1).transpose(0, 1).to(dtype)


def _auto_chunk_size(bs: int, d: int, itemsize: int, budget: int = GRAM_MEMORY_BUDGET) -> int:
    """Channels per chunk so that a chunk's inputs and ~3 (bs, bs) temporaries fit in ``budget`` bytes."""
    per_channel = itemsize * (bs * d + 3 * bs * bs)
    return max(1, budget // per_channel)


def _resolve_gamma(kernel: str, gamma: float | None, d: int) -> float:
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}: choose one of {', '.join(KERNELS)}")
    if gamma is None:
        return 1.0 / d
    if not math.isfinite(gamma) or gamma <= 0:
        raise ValueError(f"gamma must be a positive number or None (1/d), got {gamma}")
    return float(gamma)


def _kernel_chunk(Z: torch.Tensor, kernel: str, gamma: float) -> torch.Tensor:
    """Gram matrices (chunk, bs, bs) of a chunk of channels Z (chunk, bs, d)."""
    if kernel == "linear":
        return Z @ Z.transpose(1, 2)
    if kernel == "sigmoid":
        return torch.tanh(gamma * (Z @ Z.transpose(1, 2)) + 1.0)
    if kernel == "gaussian":
        return torch.exp(-gamma * torch.cdist(Z, Z, p=2.0).square())
    return torch.exp(-gamma * torch.cdist(Z, Z, p=1.0))


def centre_gram(K: torch.Tensor) -> torch.Tensor:
    """Centre Gram matrices, H K H with H = I − 11ᵀ/bs, without forming H.

    Args:
        K: (..., bs, bs) Gram matrices.

    Returns:
        (..., bs, bs) K minus its row means, column means, plus its grand mean: every row and column of the
        result sums to zero.
    """
    row_mean = K.mean(dim=-1, keepdim=True)
    col_mean = K.mean(dim=-2, keepdim=True)
    return K - row_mean - col_mean + row_mean.mean(dim=-2, keepdim=True)


def _iter_gram_chunks(features, kernel, gamma, centre, chunk_size, dtype):
    """Yield (start, K) with K (chunk, bs, bs) the (centred) Grams of channels start..start+chunk."""
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None (automatic), got {chunk_size!r}")
    Z = _channels_first(features, dtype)
    c, bs, d = Z.shape
    gamma = _resolve_gamma(kernel, gamma, d)
    step = chunk_size or _auto_chunk_size(bs, d, Z.element_size())
    for start in range(0, c, step):
        K = _kernel_chunk(Z[start : start + step].contiguous(), kernel, gamma)
        yield start, centre_gram(K) if centre else K


def gram_matrices(
    features: torch.Tensor,
    kernel: str = "laplacian",
    gamma: float | None = None,
    centre: bool = True,
    chunk_size: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Per-channel sample Gram matrices of a batch of feature maps.

    Runs on the device of ``features``: one batched matmul (linear, sigmoid) or one batched ``torch.cdist``
    (gaussian with p=2 squared, laplacian with p=1) per chunk of channels.

    Args:
        features: (bs, c, h, w) maps, or (bs, c) (d = 1 per channel).
        kernel: one of ``KERNELS``.
        gamma: kernel width; None means 1/d with d = h·w, as sklearn.
        centre: return K̄ = H K H instead of K.
        chunk_size: channels per batched kernel call; None picks it from ``GRAM_MEMORY_BUDGET``.
        dtype: computation and result dtype (float64 on request).

    Returns:
        (c, bs, bs) Gram matrices, one per channel.

    Raises:
        ValueError: a malformed or non-finite ``features``, an unknown kernel, a non-positive gamma or
            chunk_size.
    """
    check_features(features)
    bs, c = features.shape[:2]
    out = None
    for start, K in _iter_gram_chunks(features, kernel, gamma, centre, chunk_size, dtype):
        if out is None:
            out = K.new_empty((c, bs, bs))
        out[start : start + K.shape[0]] = K
    return out


def _half_vectorise(K: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Symmetric (chunk, bs, bs) → (chunk, bs(bs+1)/2) preserving Frobenius inner products.

    The upper triangle with the off-diagonal entries scaled by √2, so that ⟨hv(A), hv(B)⟩ = ⟨A, B⟩_F: the
    Gram-space products cost half the memory and half the flops of the full vec.
    """
    V = K[:, rows, cols]
    V[:, rows != cols] *= math.sqrt(2.0)
    return V


def _vectorised_grams(features, kernel, gamma, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Half-vectorised centred Grams (c, bs(bs+1)/2) and the plain entry sums (c,) of each K̄."""
    bs, c = features.shape[:2]
    rows, cols = torch.triu_indices(bs, bs, device=features.device)
    V = torch.empty((c, rows.numel()), dtype=dtype, device=features.device)
    sums = torch.empty(c, dtype=dtype, device=features.device)
    for start, K in _iter_gram_chunks(features, kernel, gamma, True, None, dtype):
        V[start : start + K.shape[0]] = _half_vectorise(K, rows, cols)
        sums[start : start + K.shape[0]] = K.sum(dim=(1, 2))
    return V, sums


def _unit_norm_scale(cross: torch.Tensor) -> torch.Tensor:
    """1/‖column‖ from a Gram of columns; zero columns get scale 0 (they stay zero, no NaN)."""
    norms = cross.diagonal().clamp_min(0).sqrt()
    return torch.where(norms > 0, 1.0 / norms.clamp_min(torch.finfo(norms.dtype).tiny), torch.zeros_like(norms))


def _assemble(xx, xy, yy_cross, y_sums, n_rows, normalise) -> GramProblem:
    """GramProblem from X̃ᵀX̃, X̃ᵀỸ, ỸᵀỸ and Ỹ's column sums over n_rows rows."""
    response_corr = correlation_from_moments(yy_cross, y_sums, n_rows).to(xx.dtype)
    if normalise:
        sx = _unit_norm_scale(xx)
        sy = _unit_norm_scale(yy_cross)
        xx = sx[:, None] * xx * sx[None, :]
        xy = sx[:, None] * xy * sy[None, :]
        yy_cross = sy[:, None] * yy_cross * sy[None, :]
    return GramProblem(G=xx, B=xy, yy=float(yy_cross.diagonal().sum()), response_corr=response_corr)


def gram_problem(
    x_features: torch.Tensor,
    y_features: torch.Tensor,
    kernel: str = "laplacian",
    gamma: float | None = None,
    normalise: bool = True,
    dtype: torch.dtype = torch.float32,
) -> GramProblem:
    """The Gram-space regression of one layer, as G, B, ‖Ỹ‖² (book/formulation.md §1).

    X̃ = [vec K̄(X_1) … vec K̄(X_p)] and Ỹ = [vec K̄(Y_1) … vec K̄(Y_q)] are never formed; each channel's centred
    Gram is kept once, half-vectorised (bs(bs+1)/2 numbers), and G, B come from two matmuls. Memory:
    (p + q)·bs(bs+1)/2 numbers (1 GiB at bs = 1024, p + q = 1024, float32).

    Args:
        x_features: (bs, p, h, w) or (bs, p) maps of the candidate side (the design).
        y_features: (bs, q, h', w') or (bs, q) maps of the response side, same batch.
        kernel: one of ``KERNELS``, used for both sides.
        gamma: kernel width for both sides; None means 1/d of each side.
        normalise: scale every column of X̃ and Ỹ to unit norm (a zero column stays zero).
        dtype: computation dtype of the Grams and of the returned matrices.

    Returns:
        The GramProblem; ``response_corr`` is Pearson's correlation of Ỹ's columns (normalisation does not
        change it).

    Raises:
        ValueError: malformed or non-finite features, different batch sizes, an unknown kernel.
    """
    check_features(x_features, "x_features")
    check_features(y_features, "y_features")
    if x_features.shape[0] != y_features.shape[0]:
        raise ValueError(
            "x_features and y_features must hold the same batch, "
            f"got bs {x_features.shape[0]} and {y_features.shape[0]}"
        )
    if x_features.device != y_features.device:
        raise ValueError(f"x_features is on {x_features.device} but y_features on {y_features.device}: move one")
    Vx, _ = _vectorised_grams(x_features, kernel, gamma, dtype)
    Vy, y_sums = _vectorised_grams(y_features, kernel, gamma, dtype)
    bs = x_features.shape[0]
    return _assemble(Vx @ Vx.T, Vx @ Vy.T, Vy @ Vy.T, y_sums, bs * bs, normalise)


def raw_problem(
    x_features: torch.Tensor,
    y_features: torch.Tensor,
    normalise: bool = True,
    dtype: torch.dtype = torch.float32,
) -> GramProblem:
    """The same regression on the raw maps ("no Gram" variant, book/formulation.md §1).

    X̃ column i = vec X_i (bs·h'·w' rows), Ỹ column j = vec Y_j. When the spatial sizes differ (a strided
    consumer, or a consumer whose output is (bs, q)), the input is adaptive-average-pooled to the output's
    size (1×1 for a (bs, q) output).

    Args:
        x_features: (bs, p, h, w) or (bs, p) candidate-side maps.
        y_features: (bs, q, h', w') or (bs, q) response-side maps.
        normalise: scale every column of X̃ and Ỹ to unit norm (a zero column stays zero).
        dtype: computation dtype.

    Returns:
        The GramProblem of the raw regression.

    Raises:
        ValueError: malformed or non-finite features, different batch sizes, or a 2-D input with a 4-D output.
    """
    check_features(x_features, "x_features")
    check_features(y_features, "y_features")
    bs = x_features.shape[0]
    if y_features.shape[0] != bs:
        raise ValueError(f"x_features and y_features must hold the same batch, got bs {bs} and {y_features.shape[0]}")
    out_size = tuple(y_features.shape[2:]) or (1, 1)
    if x_features.ndim == 2 and out_size != (1, 1):
        raise ValueError("a (bs, p) x_features cannot be pooled to a spatial y_features; pass (bs, p, h, w)")
    if x_features.ndim == 4 and tuple(x_features.shape[2:]) != out_size:
        x_features = F.adaptive_avg_pool2d(x_features.to(dtype), out_size)
    X = x_features.reshape(bs, x_features.shape[1], -1).transpose(1, 2).reshape(-1, x_features.shape[1]).to(dtype)
    Y = y_features.reshape(bs, y_features.shape[1], -1).transpose(1, 2).reshape(-1, y_features.shape[1]).to(dtype)
    return _assemble(X.T @ X, X.T @ Y, Y.T @ Y, Y.sum(dim=0), Y.shape[0], normalise)
