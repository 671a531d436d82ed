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
Primal-dual steps touch only the rows of W non-zero in the iterate or recently (``_WorkingRows``). A
last step zeroes rows whose removal lowers the exact objective (first-order methods leave such rows tiny
rather than zero; the change is computed in float64), and the iterate with the best exact objective is
returned. Everything runs on the device and dtype of G.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import torch

from .penalties import Penalty

SOLVERS = ("auto", "spg", "primal_dual")

MU_RELATIVE = 1e-4
"""Default smoothing for SPG: μ = MU_RELATIVE · yy·q / (number of smoothed terms), see ``default_mu``."""

STALL_WINDOW = 5
PD_STALL_WINDOW = 25
"""Iterations over which the relative change of the exact objective is measured for stopping: 5 for FISTA, 25
for primal-dual, whose first iterations after a warm start at a nearby λ crawl (a shorter window stopped such
solves after 6 iterations with the warm start's support unchanged, and the λ search read stale counts)."""

CONTINUATION_STAGES = 4
CONTINUATION_FACTOR = 10.0
CONTINUATION_TOL = 1e-5
"""SPG's μ goes from μ·10³ to μ in 4 warm-started stages; all but the last stop at max(tol, 1e-5)."""

CHECK_EVERY = 10
"""Primal-dual looks for rows outside its working set that a step would make non-zero every 10 iterations
(and before it stops)."""

POWER_ITERS = 8
POWER_RESIDUAL = 0.01
"""Primal-dual's step uses λ_max(G_ww) of its working rows, estimated by 8 power iterations whenever the rows
change; λ_max(G) instead when the estimate's residual exceeds 1 % of it (``_WorkingRows.update_g_norm``)."""

CERTIFY_ITERS = 30
"""A primal-dual solve starts by looking for dual columns that keep the zero rows of its warm start at zero
(30 projected-gradient steps at most, ``_WorkingRows.certify``): rows whose columns never moved (they were
never non-zero) would otherwise all join at a lower λ, and the first hundreds of iterations would run on
nearly every row."""

PD_BALANCE = 2.0
PD_ADAPT_EVERY = 20
PD_ADAPT_UNTIL = 400
"""Primal-dual step balance ρ = σ‖K‖ ≈ 2‖A‖/‖W‖, re-estimated every 20 iterations up to the 400th."""


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


def _inner(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """⟨X, Y⟩ of two (p, q) tensors, without a copy when both are contiguous or both transposed views."""
    if not X.is_contiguous():
        X, Y = X.T, Y.T
    return torch.dot(X.reshape(-1), Y.reshape(-1))


class _Tracker:
    """Exact objective trace, best iterate, and the stopping test.

    The trace holds F − yy/2 = ½ tr WᵀGW − tr WᵀB + Ω(W), the objective less its constant. At the sparse
    solutions the λ search visits the constant is nearly all of F (yy/2 = q/2 with unit-norm responses,
    against an explained part often below 1), so a relative change of F itself stops far from the optimum
    and in float32 cannot even be resolved.
    """

    def __init__(self, B: torch.Tensor, yy: float, penalty: Penalty, W: torch.Tensor, GW: torch.Tensor):
        self.B, self.yy, self.penalty = B, yy, penalty
        self.trace: list[float] = []
        self.best_F = self.exact(W, GW)
        self.best: tuple[torch.Tensor | None, torch.Tensor] = (None, W)  # (rows or None for all of them, values)
        self.patterns: deque[torch.Tensor] = deque([self._pattern(W, None)], maxlen=PD_STALL_WINDOW + 1)
        self.slack = max(1, sum(B.shape) // 200)

    @property
    def best_W(self) -> torch.Tensor:
        """(p, q) the iterate with the lowest exact objective."""
        rows, values = self.best
        if rows is None:
            return values
        return values.new_zeros(self.B.shape).index_copy_(0, rows, values)

    def _pattern(self, W: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        """Which rows and which columns of the iterate have a non-zero entry, (p + q,) bool; W holds its
        ``rows`` (all of them if None), the others are zero."""
        magnitude = W.abs()
        row_sums = magnitude.sum(dim=1)
        if rows is not None:
            row_sums = row_sums.new_zeros(self.B.shape[0]).index_copy_(0, rows, row_sums)
        return torch.cat([row_sums, magnitude.sum(dim=0)]) > 0

    def exact(
        self, W: torch.Tensor, GW: torch.Tensor, structured: torch.Tensor | None = None,
        B_rows: torch.Tensor | None = None,
    ) -> float:
        """The exact objective less yy/2 of an iterate that is W on some rows and zero on the others, given
        GW = (G @ W) and B_rows = B on those rows (None: W has every row) and, if known, the value of Ω's
        structured part."""
        loss = 0.5 * _inner(W, GW) - _inner(W, self.B if B_rows is None else B_rows)
        penalty = self.penalty.value(W) if structured is None else self.penalty.l1_value(W) + structured
        return float(loss + penalty)

    def objectives(self) -> list[float]:
        """The exact objectives of the trace (which holds them less the constant yy/2)."""
        return [F + self.yy / 2 for F in self.trace]

    def record(
        self, W: torch.Tensor, GW: torch.Tensor, structured: torch.Tensor | None = None,
        rows: torch.Tensor | None = None, B_rows: torch.Tensor | None = None,
    ) -> float:
        """Add an iterate (W on its ``rows``, all if None; the others zero) to the trace; returns its objective.
        B_rows is B on those rows, in W's layout."""
        F = self.exact(W, GW, structured, B_rows)
        self.trace.append(F)
        if F < self.best_F:
            self.best, self.best_F = (rows, W), F
        self.patterns.append(self._pattern(W, rows))
        return F

    def stalled(self, since: int, tol: float, primal_dual: bool = False) -> bool:
        """Whether to stop: over the last w iterations after ``since`` the exact objective moved by ≤ tol
        relative, and at most ``slack`` rows and columns (0.5 %, at least 1: one entry at the edge of zero
        may flicker in float32) changed between zero and non-zero. w = STALL_WINDOW, or PD_STALL_WINDOW with
        ``primal_dual``."""
        run = len(self.trace) - since
        window = PD_STALL_WINDOW if primal_dual else STALL_WINDOW
        if run <= window:
            return False
        if abs(self.trace[-window - 1] - self.trace[-1]) > tol * max(abs(self.trace[-1]), abs(self.best_F), 1e-12):
            return False
        return int((self.patterns[-1] != self.patterns[-window - 1]).sum()) <= self.slack


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


class _WorkingRows:
    """The rows of W a primal-dual solve iterates on, with everything a step needs about them, contiguous.

    K acts row by row (``penalties``), and so do the prox and Ω: a row of W that is zero and that the prox step
    keeps at zero leaves its dual column A_i and its row of Kᵀ(A) where they are. So the solver iterates on
    the rows non-zero in the iterate or recently only, held transposed so that K and Kᵀ need no transpose:
    Wᵀ_w, Bᵀ_w, (GW)ᵀ_w and Kᵀ(A_w)ᵀ (q, w), the dual columns A_w and K(W_w) (m, w), and G_ww (w, w). A step
    costs one (q, w) × (w, w) product and a few operations on (m, w): a fraction of the whole on the sparse
    solutions the λ search looks for. Every CHECK_EVERY iterations, and before the solve stops, the gradient at
    the rows outside (one (p − w, w) × (w, q) product) says which of them the prox would make non-zero: they
    join (``violators``, ``join``); at a solve's first check, rows outside first get a chance to be certified at
    zero by their own dual columns (``certify``). Every PD_ADAPT_EVERY iterations the rows zero in the iterate
    leave (``shrink``): early iterations of a solve warm-started far from its λ are often dense.

    Buffers: G_cols = G[:, rows] (p, w) serves the gradient at the rows outside; ``spare`` (m, w) receives the
    next K(W_w), and the spent one becomes the next spare (allocating megabytes every iteration costs more
    than the arithmetic). ``g_norm`` is λ_max(G_ww), at most ``g_max`` = λ_max(G).
    """

    def __init__(
        self, G: torch.Tensor, B: torch.Tensor, penalty: Penalty, W: torch.Tensor, A: torch.Tensor, g_max: float
    ):
        self.G, self.B, self.penalty, self.A, self.g_max = G, B, penalty, A, g_max
        self.adjoint_A = penalty.adjoint(A).contiguous()  # (p, q) Kᵀ(A), current on the rows outside the set
        self.outside_sq = float(A.square().sum())  # ‖A‖² over the columns outside the set
        self.rows = torch.zeros(0, dtype=torch.long, device=W.device)
        self.Wt = self.Bt = self.adjoint_t = self.GWt = W.new_zeros((W.shape[1], 0))
        self.A_w = self.KW_w = self.spare = A[:, :0]
        self.G_cols, self.G_ww = G[:, :0], G[:0, :0]
        self.top = torch.ones(G.shape[0], dtype=G.dtype, device=G.device)  # G's top eigenvector, roughly
        self.g_norm = g_max
        self.join(torch.nonzero((W != 0).any(dim=1)).flatten(), W)

    def join(self, new_rows: torch.Tensor, W: torch.Tensor | None = None) -> None:
        """Add ``new_rows`` (not yet in the set) with their values in the full iterate W (zero if None)."""
        if len(new_rows) == 0:
            return
        Wt_new = self.Wt.new_zeros((self.B.shape[1], len(new_rows))) if W is None else W[new_rows].T
        A_new = self.A[:, new_rows]
        self.outside_sq -= float(A_new.square().sum())
        self.rows = torch.cat([self.rows, new_rows])
        self.Wt = torch.cat([self.Wt, Wt_new], dim=1)
        self.Bt = self.B[self.rows].T.contiguous()
        self.A_w = torch.cat([self.A_w, A_new], dim=1)
        self.KW_w = torch.cat([self.KW_w, self.penalty.operator_t(Wt_new.contiguous())], dim=1)
        self.adjoint_t = torch.cat([self.adjoint_t, self.adjoint_A[new_rows].T], dim=1)
        self.G_cols = self.G.index_select(1, self.rows)
        self.G_ww = self.G_cols[self.rows]
        self.GWt = self.Wt @ self.G_ww
        self.spare = torch.empty_like(self.KW_w)
        self.update_g_norm()

    def update_g_norm(self) -> None:
        """λ_max(G_ww) for the primal step, by POWER_ITERS power iterations from the last top eigenvector.

        The estimate is the Rayleigh quotient θ plus the residual ‖G_ww v − θv‖ (an eigenvalue lies within it
        of θ) when the residual is under POWER_RESIDUAL·θ, else λ_max(G), always a safe bound: on the Gram
        problems here G has one dominant eigenvalue and the power iterations converge in a few steps.
        """
        v = self.top[self.rows]
        if len(v) == 0 or float(v.norm()) == 0:
            self.g_norm = self.g_max
            return
        for _ in range(POWER_ITERS):
            v = self.G_ww @ v
            v = v / v.norm().clamp_min(torch.finfo(v.dtype).tiny)
        self.top.index_copy_(0, self.rows, v)
        Gv = self.G_ww @ v
        theta = float(v @ Gv)
        residual = float((Gv - theta * v).norm())
        self.g_norm = min(theta + residual, self.g_max) if residual <= POWER_RESIDUAL * theta else self.g_max

    def violators(self, tau: float, certify: bool = False) -> torch.Tensor:
        """The rows outside the set that a prox step of size tau from the current iterate makes non-zero; with
        ``certify``, those that ``certify`` cannot keep at zero."""
        outside = torch.ones(self.B.shape[0], dtype=torch.bool, device=self.rows.device)
        outside[self.rows] = False
        rows = torch.nonzero(outside).flatten()
        if len(rows) == 0:
            return rows
        gradient = self.G_cols[rows] @ self.Wt.T - self.B[rows]
        step = self.penalty.prox((gradient + self.adjoint_A[rows]).mul_(-tau), tau)
        moving = (step != 0).any(dim=1)
        if certify and bool(moving.any()):
            rows, gradient = rows[moving], gradient[moving]
            moving = self.certify(rows, gradient.T.contiguous())
        return rows[moving]

    def certify(self, rows: torch.Tensor, gradient_t: torch.Tensor) -> torch.Tensor:
        """Move the dual columns of zero rows towards certificates that keep them at zero; returns a mask of
        the rows still without one.

        Row i stays at zero exactly when r(g_i + Kᵀ(A)_i) = 0, r(v) = −prox(−v, 1) = v − proj_∂P(0)(v), and the
        dual column A_i acts on row i alone. Up to CERTIFY_ITERS projected-gradient steps of size 1/‖K‖² on
        ½‖r(g_i + Kᵀ(A)_i)‖² over A_i ∈ Q, with the gradient g (q, c) of the current iterate, move the columns;
        they stay in Q, so the iterations go on from a valid dual either way.
        """
        A = self.A[:, rows]
        before = float(A.square().sum())
        step = 1.0 / self.penalty.operator_norm_sq()
        for steps in range(CERTIFY_ITERS + 1):
            residual_t = -self.penalty.prox(-(gradient_t + self.penalty.adjoint_t(A)).T, 1.0).T  # (q, c)
            moving = (residual_t != 0).any(dim=0)
            if steps == CERTIFY_ITERS or not bool(moving.any()):
                break
            self.penalty.project_dual_(A.sub_(self.penalty.operator_t(residual_t), alpha=step))
        self.A.index_copy_(1, rows, A)
        self.adjoint_A.index_copy_(0, rows, self.penalty.adjoint_t(A).T)
        self.outside_sq += float(A.square().sum()) - before
        return moving

    def shrink(self) -> None:
        """Drop the rows that are zero in the iterate.

        Exact: a row that is zero in the iterate and in the next leaves its dual column and its row of Kᵀ(A)
        where they are, and one that the prox makes non-zero again joins again with them. (GW)ᵀ_w keeps its
        columns of the rows that stay: the rows that leave are zero.
        """
        live = (self.Wt != 0).any(dim=0)
        if bool(live.all()):
            return
        dead = self.rows[~live]
        self.A.index_copy_(1, dead, self.A_w[:, ~live])
        self.adjoint_A.index_copy_(0, dead, self.adjoint_t[:, ~live].T)
        self.outside_sq += float(self.A_w[:, ~live].square().sum())
        self.rows = self.rows[live]
        self.Wt, self.Bt, self.GWt, self.adjoint_t = (
            t[:, live].contiguous() for t in (self.Wt, self.Bt, self.GWt, self.adjoint_t)
        )
        self.A_w, self.KW_w = self.A_w[:, live].contiguous(), self.KW_w[:, live].contiguous()
        self.spare = torch.empty_like(self.KW_w)
        self.G_cols = self.G_cols[:, live]
        self.G_ww = self.G_ww[live][:, live]
        self.update_g_norm()

    def dual_norm(self) -> float:
        """‖A‖ over all columns."""
        return math.sqrt(max(self.outside_sq, 0.0) + float(self.A_w.square().sum()))

    def full_dual(self) -> torch.Tensor:
        """A (m, p) with the working columns written back."""
        return self.A.index_copy_(1, self.rows, self.A_w)


def _step_ratio(W: torch.Tensor, a_norm: float, current: float | None) -> float:
    """σ‖K‖ for primal-dual: PD_BALANCE·‖A‖/‖W‖ (the dual/primal scale ratio), within [current/2, 2·current]
    when there is a current value; 1 (or the current value) while W or A is zero."""
    w_norm = float(W.norm())
    if w_norm == 0 or a_norm == 0:
        return current or 1.0
    ratio = PD_BALANCE * a_norm / w_norm
    return ratio if current is None else min(max(ratio, current / 2), current * 2)


def _primal_dual(G, B, penalty, W, A, tracker, g_norm, max_iter, tol) -> tuple[bool, torch.Tensor]:
    """Condat–Vũ iterations with balanced steps; returns (converged, last dual).

    Steps σ = ρ/‖K‖ and τ = 0.99/(L/2 + ρ‖K‖), so τ(L/2 + σ‖K‖²) < 1 as convergence needs, with L the
    Lipschitz constant of the gradient on the rows the iterations move: λ_max(G_ww) of the working rows, not
    λ_max(G). The Gram matrices here have one dominant eigenvalue that grows with the number of channels
    (VGG-16's conv10: 139 against 19.5 next), so on a third of the rows L is about a third of λ_max(G) and, with
    ρ‖K‖ ≈ 100–120 there, τ about a third longer. The working rows change rarely late in a solve, so the steps
    settle like ρ, which tracks the scale ratio of dual and primal iterates (it balances their progress) every
    PD_ADAPT_EVERY iterations during the first PD_ADAPT_UNTIL, then stays fixed. A step works on the working
    rows of W only (``_WorkingRows``); the solve stops when the stopping rule holds and no row outside them
    would become non-zero.
    """
    k_norm = math.sqrt(penalty.operator_norm_sq())
    work = _WorkingRows(G, B, penalty, W, A, g_norm)
    ratio = _step_ratio(work.Wt, work.dual_norm(), None)

    def primal_step() -> float:
        return 0.99 / (work.g_norm / 2 + ratio * k_norm)

    for iteration in range(max_iter - len(tracker.trace)):
        if iteration and iteration % PD_ADAPT_EVERY == 0 and iteration <= PD_ADAPT_UNTIL:
            ratio = _step_ratio(work.Wt, work.dual_norm(), ratio)
        if iteration % PD_ADAPT_EVERY == 0:
            work.shrink()
        sigma = ratio / k_norm
        if iteration % CHECK_EVERY == 0:
            work.join(work.violators(primal_step(), certify=iteration == 0))
        tau = primal_step()
        step_t = (work.GWt - work.Bt).add_(work.adjoint_t).mul_(-tau).add_(work.Wt)
        Wt_new = penalty.prox(step_t.T, tau).T.contiguous()  # (q, w)
        KW_new = penalty.operator_t(Wt_new, out=work.spare)  # (m, w)
        penalty.project_dual_(work.A_w.add_(KW_new, alpha=2 * sigma).sub_(work.KW_w, alpha=sigma))
        structured = penalty.operator_value(KW_new, scratch=work.KW_w)  # the last K(W) is spent
        work.KW_w, work.spare = KW_new, work.KW_w
        work.adjoint_t = penalty.adjoint_t(work.A_w)
        work.Wt, work.GWt = Wt_new, Wt_new @ work.G_ww
        tracker.record(Wt_new.T, work.GWt.T, structured, work.rows, work.Bt.T)
        if tracker.stalled(0, tol, primal_dual=True):
            joining = work.violators(tau)
            if len(joining) == 0:
                return True, work.full_dual()
            work.join(joining)
    return False, work.full_dual()


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
    tracker = _Tracker(B, yy, penalty, W, GW)
    if penalty.has_operator and solver in ("auto", "primal_dual"):
        A = torch.zeros_like(penalty.operator(W)) if dual0 is None else penalty.project_dual(dual0.to(B))
        converged, A = _primal_dual(G, B, penalty, W, A, tracker, g_norm, max_iter, tol)
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
