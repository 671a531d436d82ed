"""Solvers for ½‖Y − XW‖²_F + Ω(W), in Gram form.

The loss is ½(tr WᵀGW − 2 tr WᵀB + yy) with G = XᵀX (p, p), B = XᵀY (p, q), yy = ‖Y‖²_F; its gradient GW − B is
Lipschitz with λ_max(G). Ω = P + Ω_s (see ``penalties``): P has an exact prox (soft-thresholding, and the
whole tree for ``TreeLasso``), Ω_s(W) = max_{A∈Q} ⟨K(W), A⟩ is linear-structured. Two solvers:

* ``"spg"``, smoothing proximal gradient (Chen et al. 2012, book/formulation.md §3): Ω_s is replaced by its Nesterov
  smoothing with parameter μ, whose gradient Kᵀ proj_Q(K(W)/μ) is Lipschitz with ‖K‖²/μ; FISTA steps of size
  1/L, L = λ_max(G) + ‖K‖²/μ, exact prox of P, momentum restarted whenever the exact objective goes up
  (O'Donoghue & Candès 2015). μ decreases from 10³μ to μ in warm-started stages. Without Ω_s this is plain
  FISTA with an exact prox, and exact.
* ``"primal_dual"`` (Condat 2013, Vũ 2013): the same exact prox of P, but Ω_s kept exact through its dual
  A ∈ Q instead of smoothed: no μ, no smoothing bias, and the zeros of W are those of the exact problem.
  On the graph lasso it reaches the convex optimum to ~1e-7 where SPG stops near 1e-3 with more non-zero
  rows (tests/test_lasso.py, benchmarks/results/spg_vs_cvxpy.json), so ``"auto"`` uses it whenever the
  penalty has an Ω_s.

Both stop when the exact, unsmoothed objective less its constant yy/2 changes by less than ``tol`` relative
over a window of iterations (5; 25 for primal-dual) over which the sets of non-zero rows and columns of W stay
the same up to 0.5 % (the support is what selection reads). Measured against F itself, the window would
compare changes with yy/2, which at sparse solutions is nearly all of F.
Primal-dual steps touch only the rows of W non-zero in the iterate or recently (``primal_dual``). A
last step zeroes rows whose removal lowers the exact objective (first-order methods leave such rows tiny
rather than zero; the change is computed in float64), and the iterate with the best exact objective is
returned. Everything runs on the device and dtype of G.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .penalties import Penalty
from .primal_dual import primal_dual
from .tracking import Tracker

SOLVERS = ("auto", "spg", "primal_dual")

MU_RELATIVE = 1e-4
"""Default smoothing for SPG: μ = MU_RELATIVE · yy·q / (number of smoothed terms), see ``default_mu``."""

CONTINUATION_STAGES = 4
CONTINUATION_FACTOR = 10.0
CONTINUATION_TOL = 1e-5
"""SPG's μ goes from μ·10³ to μ in 4 warm-started stages; all but the last stop at max(tol, 1e-5)."""


@dataclass
class FitResult:
    """A solver's answer.

    Attributes:
        W: (p, q) the iterate with the lowest exact objective.
        objective_trace: exact (unsmoothed) objective after every iteration.
        n_iter: iterations run.
        converged: whether the stopping rule fired before ``max_iter``.
        solver: ``"spg"`` or ``"primal_dual"``.
        mu: SPG's final smoothing parameter (0 for primal-dual or without a structured part).
        dual: the primal-dual solver's last dual iterate (m, p), a warm start for the next solve; else None.
    """

    W: torch.Tensor
    objective_trace: list[float] = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False
    solver: str = "spg"
    mu: float = 0.0
    dual: torch.Tensor | None = None

    @property
    def objective(self) -> float:
        """The exact objective of ``W``."""
        return min(self.objective_trace) if self.objective_trace else math.nan


def _check_finite(t: torch.Tensor, name: str) -> None:
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or inf")


def _check_gram(G: torch.Tensor, B: torch.Tensor, yy: float, W0: torch.Tensor | None, penalty: Penalty) -> None:
    if not isinstance(penalty, Penalty):
        raise ValueError(f"penalty must be a Penalty (L1, GraphLasso, TreeLasso), got {type(penalty).__name__}")
    if G.ndim != 2 or G.shape[0] != G.shape[1]:
        raise ValueError(f"G must be a square (p, p) matrix, got shape {tuple(G.shape)}")
    if B.ndim != 2 or B.shape[0] != G.shape[0]:
        raise ValueError(f"B must be (p, q) with p = {G.shape[0]} rows as G, got shape {tuple(B.shape)}")
    _check_finite(G, "G")
    _check_finite(B, "B")
    if not math.isfinite(yy) or yy < 0:
        raise ValueError(f"yy = ‖Y‖² must be finite and >= 0, got {yy}")
    if W0 is not None and tuple(W0.shape) != tuple(B.shape):
        raise ValueError(f"W0 must have B's shape {tuple(B.shape)}, got {tuple(W0.shape)}")
    penalty.check_shape(B.shape[1])


def objective_gram(G: torch.Tensor, B: torch.Tensor, yy: float, W: torch.Tensor, penalty: Penalty) -> float:
    """Exact objective ½(tr WᵀGW − 2 tr WᵀB + yy) + Ω(W).

    Args:
        G: (p, p) XᵀX.
        B: (p, q) XᵀY.
        yy: ‖Y‖²_F.
        W: (p, q) coefficients.
        penalty: Ω.
    """
    return float(0.5 * ((W * (G @ W)).sum() - 2 * (W * B).sum() + yy) + penalty.value(W))


def objective(X: torch.Tensor, Y: torch.Tensor, W: torch.Tensor, penalty: Penalty) -> float:
    """Exact objective ½‖Y − XW‖²_F + Ω(W) for X (n, p), Y (n, q), W (p, q)."""
    return float(0.5 * (Y - X @ W).square().sum() + penalty.value(W))


def default_mu(yy: float, penalty: Penalty, p: int, q: int) -> float:
    """SPG's smoothing parameter when none is given.

    Each smoothed term (an edge or an internal group, times a row of W) is within μ/2 of its exact value, and
    the loss at W = 0 is yy/2. μ = MU_RELATIVE · yy·q / (number of smoothed terms) caps the total smoothing
    bias at MU_RELATIVE·q·yy/2 in the worst case, every term near zero; in practice only rows near zero
    contribute, and SPG's answer is within ~1e-3 relative of the optimum (tests/test_lasso.py).
    """
    terms = max(1, penalty.smoothing_terms(p))
    return MU_RELATIVE * max(yy, 1e-12) * q / terms


def _spg(G, B, penalty, W, GW, tracker, g_norm, mu, max_iter, tol) -> bool:
    """FISTA with restarts on the μ-smoothed problem, μ in continuation stages; True if it converged."""
    smoothed = penalty.has_operator
    stages = [mu * CONTINUATION_FACTOR**k for k in range(CONTINUATION_STAGES - 1, -1, -1)] if smoothed else [mu]
    F = tracker.best_F
    for stage, stage_mu in enumerate(stages):
        last_stage = stage == len(stages) - 1
        stage_tol = tol if last_stage else max(tol, CONTINUATION_TOL)
        step = 1.0 / max(g_norm + penalty.operator_norm_sq() / stage_mu, 1e-12)
        Z, GZ, t = W, GW, 1.0
        since = len(tracker.trace)
        while len(tracker.trace) < max_iter:
            grad = GZ - B
            if smoothed:
                grad += penalty.smoothed_gradient(Z, stage_mu)
            W_new = penalty.prox(torch.add(Z, grad, alpha=-step), step)
            GW_new = G @ W_new
            F_new = tracker.record(W_new, GW_new)
            if F_new > F:  # restart the momentum
                t_next, beta = 1.0, 0.0
            else:
                t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
                beta = (t - 1.0) / t_next
            Z = torch.lerp(W, W_new, 1.0 + beta) if beta else W_new  # W_new + β(W_new − W)
            GZ = torch.lerp(GW, GW_new, 1.0 + beta) if beta else GW_new
            W, GW, F, t = W_new, GW_new, F_new, t_next
            if tracker.stalled(since, stage_tol):
                if last_stage:
                    return True
                break
    return False


def _drop_negligible_rows(G, B, penalty, tracker) -> None:
    """Zero the rows of the best iterate whose removal lowers the exact objective.

    First-order solvers leave rows that the exact problem zeroes at tiny non-zero values while the duals
    that certify their zeros creep along. Ω is a sum over rows, so removing a set D of rows changes the
    objective by ΔF = −Σ_{i∈D} ⟨W_i, (GW − B)_i⟩ + ½ Σ_{i,k∈D} W_iᵀ G_ik W_k − Σ_{i∈D} Ω_i(W_i), computed
    directly in float64 (the objective's own rounding in float32 would hide such small changes). D is every
    row whose removal alone lowers the objective, or if together they do not, the single best one.
    """
    W = tracker.best_W.double()
    G64, B64 = G.double(), B.double()
    grad = G64 @ W - B64
    row_values = penalty.row_values(W)
    alone = -(W * grad).sum(dim=1) + 0.5 * G64.diagonal() * W.square().sum(dim=1) - row_values
    candidates = (alone < 0) & (W != 0).any(dim=1)
    if not candidates.any():
        return
    for rows in (candidates, alone == alone.min()):
        D = torch.nonzero(rows).flatten()
        WD = W[D]
        change = -(WD * grad[D]).sum() + 0.5 * (WD * (G64[D][:, D] @ WD)).sum() - row_values[D].sum()
        if change < 0:
            dropped = tracker.best_W.clone()
            dropped[D] = 0
            tracker.best, tracker.best_F = (None, dropped), tracker.best_F + float(change)
            tracker.trace.append(tracker.best_F)
            return


def fit_gram(
    G: torch.Tensor,
    B: torch.Tensor,
    yy: float,
    penalty: Penalty,
    W0: torch.Tensor | None = None,
    max_iter: int = 5000,
    tol: float = 1e-7,
    mu: float | None = None,
    solver: str = "auto",
    g_norm: float | None = None,
    dual0: torch.Tensor | None = None,
) -> FitResult:
    """Minimise ½(tr WᵀGW − 2 tr WᵀB + yy) + Ω(W).

    Args:
        G: (p, p) XᵀX, symmetric positive semi-definite.
        B: (p, q) XᵀY.
        yy: ‖Y‖²_F (only shifts the objective).
        penalty: Ω, built for q columns.
        W0: (p, q) warm start; zeros if None.
        max_iter: iteration cap (all SPG stages together).
        tol: stop when the exact objective changed by less than tol·|objective| over the last 5 iterations
            (primal-dual: 25) with (nearly) unchanged non-zero rows and columns; at least 10× the dtype's
            machine epsilon.
        mu: SPG's smoothing parameter; None means ``default_mu``. Ignored by primal-dual.
        solver: ``"auto"`` (primal-dual when the penalty has a structured operator, else FISTA with the exact
            prox), ``"spg"`` or ``"primal_dual"``.
        g_norm: λ_max(G) if already known (computed otherwise).
        dual0: warm start of the primal-dual dual variable, as returned in ``FitResult.dual``.

    Returns:
        FitResult with the best iterate by exact objective.

    Raises:
        ValueError: mismatched shapes, NaN/inf inputs, a non-positive mu, an unknown solver.
    """
    _check_gram(G, B, yy, W0, penalty)
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}: choose one of {', '.join(SOLVERS)}")
    p, q = B.shape
    if g_norm is None:
        g_norm = float(torch.linalg.eigvalsh(G.double())[-1])
    tol = max(tol, 10 * torch.finfo(B.dtype).eps)  # the objective's own rounding
    W = torch.zeros_like(B) if W0 is None else W0.to(B).clone()
    GW = G @ W
    tracker = Tracker(B, yy, penalty, W, GW)
    if penalty.has_operator and solver in ("auto", "primal_dual"):
        A = torch.zeros_like(penalty.operator(W)) if dual0 is None else penalty.project_dual(dual0.to(B))
        converged, A = primal_dual(G, B, penalty, W, A, tracker, g_norm, max_iter, tol)
        _drop_negligible_rows(G, B, penalty, tracker)
        return FitResult(tracker.best_W, tracker.objectives(), len(tracker.trace), converged, "primal_dual", 0.0, A)
    if mu is None:
        mu = default_mu(yy, penalty, p, q)
    if not math.isfinite(mu) or mu <= 0:
        raise ValueError(f"mu must be a positive number, got {mu}")
    converged = _spg(G, B, penalty, W, GW, tracker, g_norm, mu, max_iter, tol)
    _drop_negligible_rows(G, B, penalty, tracker)
    final_mu = mu if penalty.has_operator else 0.0
    return FitResult(tracker.best_W, tracker.objectives(), len(tracker.trace), converged, "spg", final_mu)


def fit(
    X: torch.Tensor,
    Y: torch.Tensor,
    penalty: Penalty,
    W0: torch.Tensor | None = None,
    max_iter: int = 5000,
    tol: float = 1e-7,
    mu: float | None = None,
    solver: str = "auto",
) -> FitResult:
    """Minimise ½‖Y − XW‖²_F + Ω(W) for X (n, p), Y (n, q); forms G, B, yy and calls ``fit_gram``.

    Raises:
        ValueError: X and Y not 2-D with the same rows, NaN/inf inputs, and everything ``fit_gram`` checks.
    """
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"X (n, p) and Y (n, q) need the same n rows, got {tuple(X.shape)} and {tuple(Y.shape)}")
    _check_finite(X, "X")
    _check_finite(Y, "Y")
    return fit_gram(X.T @ X, X.T @ Y, float(Y.square().sum()), penalty, W0, max_iter, tol, mu, solver)
