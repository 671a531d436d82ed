"""The primal-dual solver (Condat 2013, Vũ 2013) for ½‖Y − XW‖²_F + Ω(W) in Gram form, with Ω_s kept exact.

The same exact prox of P as SPG, but Ω_s(W) = max_{A∈Q} ⟨K(W), A⟩ kept exact through its dual A ∈ Q instead of
smoothed: no μ, no smoothing bias, and the zeros of W are those of the exact problem. Steps touch only the rows
of W non-zero in the iterate or recently (:class:`_WorkingRows`). ``spg.fit_gram`` calls it (``solver=
"primal_dual"``, or ``"auto"`` whenever the penalty has an Ω_s).
"""

from __future__ import annotations

import math

import torch

from .penalties import Penalty

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


def primal_dual(G, B, penalty, W, A, tracker, g_norm, max_iter, tol) -> tuple[bool, torch.Tensor]:
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
