"""Adaptive λ (the paper's Algorithm 1, book/formulation.md §4): find λ at which exactly k candidates are non-zero.

A candidate is a row of W (``direction="rows"``: an input channel of the regression) or a column
(``"columns"``: a response channel). Start from λ = max|B| (λ_max of the plain lasso: W = 0 there) and walk
down a path until at least k candidates are non-zero: while the count does not grow λ halves; once it grows,
the next λ extrapolates the last two counts linearly in log λ to k, by a factor within [PATH_STEP_MIN,
PATH_STEP_MAX]. Short steps keep every warm start close and the solves sparse: a solve past k on a dense
support costs many times one just short of it. If a structured penalty keeps k already at max|B|, λ doubles
until fewer remain. Then bisect on log λ between the largest λ with ≥ k non-zero and the smallest with < k
(the next λ interpolates the counts linearly in log λ; plain bisection when one end keeps moving). Every
solve is warm-started from the solution at the nearest λ already solved. Stops at exactly k; if the count
jumps over k, or the solve budget runs out, the nearest λ with ≥ k non-zero candidates is taken and its
top k by score are kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from .penalties import Penalty
from .spg import FitResult, fit_gram

DIRECTIONS = ("rows", "columns")

LAMBDA_MIN_RATIO = 1e-6
"""The search gives up (k unreachable) below max|B| · LAMBDA_MIN_RATIO."""

PATH_STEP_MIN = 0.85
PATH_STEP_MAX = 0.99
"""Bounds of the factor by which λ shrinks along the path once the count grows."""

LAMBDA_REL_TOL = 1e-3
"""The search stops when the bracket [lo, hi] is narrower than this relative width (counts of inexact
solves are not resolved finer): lo's top k are kept."""


@dataclass
class AdaptiveResult:
    """The outcome of the λ search.

    Attributes:
        lam: the chosen λ.
        kept: (k,) long, the kept candidates, ascending.
        W: (p, q) the solution at ``lam``.
        scores: (n_candidates,) see ``candidate_scores``.
        trace: (λ, number of non-zero candidates) of every solve, in order.
        n_solves: solves run.
        n_iter: solver iterations over all solves.
    """

    lam: float
    kept: torch.Tensor
    W: torch.Tensor
    scores: torch.Tensor
    trace: list[tuple[float, int]] = field(default_factory=list)
    n_solves: int = 0
    n_iter: int = 0


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}: choose one of {', '.join(DIRECTIONS)}")


def _candidates(W: torch.Tensor, direction: str) -> torch.Tensor:
    """W oriented so that candidates are rows."""
    _check_direction(direction)
    return W if direction == "rows" else W.T


def count_nonzero(W: torch.Tensor, direction: str = "rows") -> int:
    """Number of candidates (rows or columns of W) with at least one non-zero entry."""
    return int((_candidates(W, direction) != 0).any(dim=1).sum())


def candidate_scores(W: torch.Tensor, direction: str = "rows") -> torch.Tensor:
    """(n_candidates,) float scores ordering candidates by (number of non-zeros, then Euclidean norm).

    score = nnz + ‖·‖ / (2 max‖·‖): the integer part is the count of non-zero entries, the fraction (< 1)
    ranks ties by norm; a zero candidate scores 0.
    """
    V = _candidates(W, direction)
    nnz = (V != 0).sum(dim=1).to(W.dtype)
    norms = V.norm(dim=1)
    top = norms.max() if norms.numel() else norms.new_zeros(())
    return nnz + (norms / (2 * top) if top > 0 else torch.zeros_like(norms))


def path_step(lam: float, count: int, previous: tuple[float, int] | None, k: int) -> float:
    """The next λ on the way down to k non-zero candidates.

    Args:
        lam: the last λ solved, with ``count`` < k non-zero candidates.
        count: its count.
        previous: (λ, count) of the solve before it (a larger λ), or None.
        k: the count sought.

    Returns:
        lam / 2 while the count does not grow; else the λ at which the counts of the last two solves,
        linear in log λ, reach k, but no further than lam·PATH_STEP_MIN and no nearer than lam·PATH_STEP_MAX.
    """
    if previous is None or count <= previous[1]:
        return lam / 2
    growth = (count - previous[1]) / math.log(previous[0] / lam)  # candidates gained per unit of log λ
    factor = math.exp(-(k - count) / growth)
    return lam * min(max(factor, PATH_STEP_MIN), PATH_STEP_MAX)


def _gram_parts(problem: Any) -> tuple[torch.Tensor, torch.Tensor, float]:
    if isinstance(problem, tuple) and len(problem) == 3:
        return problem[0], problem[1], float(problem[2])
    if all(hasattr(problem, a) for a in ("G", "B", "yy")):
        return problem.G, problem.B, float(problem.yy)
    raise ValueError("problem must be a GramProblem or a (G, B, yy) tuple")


def lambda_for_k(
    problem: Any,
    make_penalty: Callable[[float], Penalty],
    k: int,
    direction: str = "rows",
    max_solves: int = 30,
    tol: float = 1e-5,
    max_iter: int = 2000,
    solver: str = "auto",
    progress: bool = False,
) -> AdaptiveResult:
    """Search λ so that exactly k candidates of the solution are non-zero.

    Args:
        problem: a ``GramProblem`` or a (G, B, yy) tuple, G (p, p), B (p, q).
        make_penalty: λ ↦ the penalty at strength λ.
        k: candidates to keep, 1 ≤ k ≤ p (rows) or q (columns).
        direction: ``"rows"`` or ``"columns"`` of W are the candidates.
        max_solves: budget of solver calls.
        tol: the solver's relative stopping tolerance.
        max_iter: the solver's iteration cap per solve.
        solver: passed to ``fit_gram``.
        progress: show a tqdm bar over the solves.

    Returns:
        AdaptiveResult at the chosen λ.

    Raises:
        ValueError: k out of range, an unknown direction, a bad problem, or k unreachable (fewer than k
            candidates become non-zero even at max|B|·LAMBDA_MIN_RATIO, e.g. because of all-zero channels).
    """
    G, B, yy = _gram_parts(problem)
    _check_direction(direction)
    n_candidates = B.shape[0] if direction == "rows" else B.shape[1]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_candidates:
        raise ValueError(f"k must be an int in [1, {n_candidates}] (the number of candidate {direction}), got {k!r}")
    if not isinstance(max_solves, int) or max_solves < 2:
        raise ValueError(f"max_solves must be an int >= 2, got {max_solves!r}")
    g_norm = float(torch.linalg.eigvalsh(G.double())[-1])
    solved: dict[float, tuple[FitResult, int]] = {}
    trace: list[tuple[float, int]] = []
    bar = tqdm(total=max_solves, desc=f"λ search (k={k})", disable=not progress, leave=False)

    def solve(lam: float) -> int:
        if lam in solved:
            return solved[lam][1]
        warm = solved[min(solved, key=lambda s: abs(math.log(s / lam)))][0] if solved else None
        result = fit_gram(
            G, B, yy, make_penalty(lam),
            W0=None if warm is None else warm.W,
            dual0=None if warm is None else warm.dual,
            max_iter=max_iter, tol=tol, solver=solver, g_norm=g_norm,
        )  # fmt: skip
        count = count_nonzero(result.W, direction)
        solved[lam] = (result, count)
        trace.append((lam, count))
        bar.update(1)
        bar.set_postfix(lam=f"{lam:.3g}", nonzero=count)
        return count

    try:
        top = float(B.abs().max())
        if top == 0:
            raise ValueError("B = XᵀY is zero: no candidate explains the response (all-zero features?)")
        if solve(top) >= k:  # a structured penalty can keep candidates above max|B|: double
            lo, hi = top, 2 * top
            while solve(hi) >= k and len(trace) < max_solves:
                lo, hi = hi, 2 * hi
        else:
            lo, hi = path_step(top, trace[-1][1], None, k), top
            while solve(lo) < k:
                most = max(c for _, c in trace)
                if len(trace) >= max_solves:
                    raise ValueError(
                        f"solve budget max_solves = {max_solves} spent with at most {most} of k = {k} candidate "
                        f"{direction} non-zero (λ = {lo:.3g}): raise max_solves"
                    )
                if lo < top * LAMBDA_MIN_RATIO:
                    raise ValueError(
                        f"k = {k} unreachable: at most {most} of {n_candidates} candidate {direction} become non-zero "
                        f"(down to λ = {lo:.3g}); all-zero channels can never be kept, so lower k"
                    )
                lo, hi = path_step(lo, solved[lo][1], (hi, solved[hi][1]), k), lo
        last_side, streak = "", 0  # the same end moving twice in a row → plain bisection steps
        while solved[lo][1] != k and len(trace) < max_solves and hi / lo > 1 + LAMBDA_REL_TOL:
            c_lo, c_hi = solved[lo][1], solved[hi][1]
            frac = 0.5 if streak >= 2 else min(max((c_lo - k) / max(c_lo - c_hi, 1), 0.05), 0.95)
            lam = math.exp(math.log(lo) + frac * (math.log(hi) - math.log(lo)))
            side = "lo" if solve(lam) >= k else "hi"
            lo, hi = (lam, hi) if side == "lo" else (lo, lam)
            streak = streak + 1 if side == last_side else 1
            last_side = side
    finally:
        bar.close()
    result, _ = solved[lo]
    scores = candidate_scores(result.W, direction)
    kept = torch.sort(torch.topk(scores, k).indices).values
    n_iter = sum(r.n_iter for r, _ in solved.values())
    return AdaptiveResult(lo, kept, result.W, scores, trace, len(trace), n_iter)
