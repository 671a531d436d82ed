"""Adaptive λ (the paper's Algorithm 1, book/formulation.md §4): find λ at which exactly k candidates are non-zero.

A candidate is a row of W (``direction="rows"``: an input channel of the regression) or a column
(``"columns"``: a response channel). Start from λ = max|B| (λ_max of the plain lasso: W = 0 there) and walk
down a path until at least k candidates are non-zero: while the count stays the same λ halves; once it grows,
the next λ extrapolates the last two counts linearly in log λ to k, by a factor within [PATH_STEP_MIN,
PATH_STEP_MAX] ([PATH_STEP_MIN_FAR, PATH_STEP_MAX] while fewer than k/2 are non-zero). Short steps keep every
warm start close and the solves sparse: a solve past k on a dense support costs many times one just short of
it. If a structured penalty keeps k already at max|B|, λ doubles until fewer remain. Then bisect on log λ
between the largest λ with ≥ k non-zero and the smallest with < k (the next λ interpolates the counts
linearly in log λ; plain bisection when one end keeps moving). Every solve is warm-started from the solution
at the nearest λ already solved. Stops at k non-zero candidates, or up to 0.5 % more (COUNT_SLACK: the solver
does not resolve the count finer); if the count jumps over k, or the solve budget runs out, the nearest λ with
≥ k non-zero candidates is taken. Whenever more than k are non-zero, the top k by score are kept.

When no λ makes k candidates non-zero (degenerate features, untrained weights, all-zero channels: the walk
reaches max|B|·LAMBDA_MIN_RATIO, or spends its solves, short of k), the search does not fail: it keeps the m < k
candidates non-zero at the smallest λ solved, ranked by score, and **completes** the selection with the k − m
others of largest ‖B_i‖ (their correlation with the responses at W = 0: the order in which the plain lasso's
path would let them in), ties to the lower index. ``AdaptiveResult.completed`` says how many were chosen so.

When the caller asks for a tighter tolerance than SEARCH_TOL, the path runs on loose solves (SEARCH_TOL), which
cost a fraction of the iterations but whose counts can be off by tens of candidates either way near k
(measured on VGG-16 layers): they only bracket λ. The tight search starts where the loose bracket's counts,
linear in log λ, reach k, steps out from there by its own count's distance to k at the loose bracket's slope
(doubling until it brackets k) and bisects on tight solves. The answer is always a tight solve.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from .penalties import Penalty
from .spg import FitResult, fit_gram

DIRECTIONS = ("rows", "columns")
SCORES = ("nnz_then_norm", "norm")
"""How candidates are ranked when the λ search keeps more than k: by the number of non-zero coefficients,
ties by norm (the default), or by the norm alone."""

LAMBDA_MIN_RATIO = 1e-6
"""The walk down λ stops below max|B| · LAMBDA_MIN_RATIO: no λ reaches k there, and the selection is completed."""

PATH_STEP_MIN = 0.85
PATH_STEP_MIN_FAR = 0.6
PATH_STEP_MAX = 0.99
"""Bounds of the factor by which λ shrinks along the path once the count grows: down to PATH_STEP_MIN_FAR
while fewer than k/2 candidates are non-zero (sparse solves, no overshoot in reach), else PATH_STEP_MIN."""

SEARCH_TOL = 1e-3
"""The solver's relative tolerance while the search walks down to k (when the caller asks for a tighter one):
cheap solves whose counts near k can be off by tens of candidates, so they only bracket λ."""

COUNT_SLACK = 0.005
"""The bisection accepts a count within [k, k + ⌈COUNT_SLACK·candidates⌉ − 1] (exactly k below 200 candidates):
the solver's stopping rule lets 0.5 % of the rows flicker between zero and non-zero, so a count is not resolved
finer, and the top k by score are kept."""

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
        completed: how many of the k candidates were chosen by the completion rule (by ‖B_i‖) because no λ made
            k non-zero; 0 when the search reached k.
        stopped: why the search fell short of k (empty when it did not).
    """

    lam: float
    kept: torch.Tensor
    W: torch.Tensor
    scores: torch.Tensor
    trace: list[tuple[float, int]] = field(default_factory=list)
    n_solves: int = 0
    n_iter: int = 0
    completed: int = 0
    stopped: str = ""


class _ShortOfK(Exception):
    """The walk down λ cannot reach k non-zero candidates (internal: the selection is completed instead)."""


class NoSignalError(ValueError):
    """A layer's features carry no signal for the regression (B = XᵀY is zero): nothing to rank its filters by."""


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


def candidate_scores(W: torch.Tensor, direction: str = "rows", score: str = "nnz_then_norm") -> torch.Tensor:
    """(n_candidates,) float scores, higher kept first.

    ``"nnz_then_norm"``: score = nnz + ‖·‖ / (2 max‖·‖), the integer part the count of non-zero entries, the
    fraction (< 1) ranking ties by Euclidean norm. ``"norm"``: the Euclidean norm alone. A zero candidate
    scores 0 either way.
    """
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}: choose one of {', '.join(SCORES)}")
    V = _candidates(W, direction)
    norms = V.norm(dim=1)
    if score == "norm":
        return norms
    nnz = (V != 0).sum(dim=1).to(W.dtype)
    top = norms.max() if norms.numel() else norms.new_zeros(())
    return nnz + (norms / (2 * top) if top > 0 else torch.zeros_like(norms))


def complete_scores(scores: torch.Tensor, B_candidates: torch.Tensor) -> torch.Tensor:
    """Scores that rank every candidate: the non-zero ones by ``scores`` (all positive), then the zero ones by the
    norm of their row of B = XᵀY (candidates as rows), mapped into (−1, −0.5] so that they follow every non-zero
    one; the completion rule of a search that cannot reach k.

    Args:
        scores: (n,) :func:`candidate_scores` of the solution (0 for a zero candidate).
        B_candidates: (n, q) B with candidates as rows.
    """
    norms = B_candidates.norm(dim=1).to(scores.dtype)
    top = norms.max()
    entering = -1 + (norms / (2 * top) if top > 0 else torch.zeros_like(norms))
    return torch.where(scores > 0, scores, entering)


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """(k,) ascending indices of the k highest scores; ties go to the lower index, so the choice never depends on
    the order a sort happens to visit equal scores in."""
    if not 1 <= k <= len(scores):
        raise ValueError(f"k must be in [1, {len(scores)}], got {k}")
    return torch.argsort(scores, descending=True, stable=True)[:k].sort().values


def path_step(lam: float, count: int, previous: tuple[float, int] | None, k: int) -> float:
    """The next λ on the way down to k non-zero candidates.

    Args:
        lam: the last λ solved, with ``count`` < k non-zero candidates.
        count: its count.
        previous: (λ, count) of the solve before it (a larger λ), or None.
        k: the count sought.

    Returns:
        lam / 2 while the count stays the same; the longest step when it fell; else the λ at
        which the counts of the last two solves, linear in log λ, reach k, but no further than
        lam·PATH_STEP_MIN (lam·PATH_STEP_MIN_FAR while count < k/2) and no nearer than lam·PATH_STEP_MAX.
    """
    longest = PATH_STEP_MIN_FAR if 2 * count < k else PATH_STEP_MIN
    if previous is None or count == previous[1]:
        return lam / 2
    if count < previous[1]:  # loose solves' counts wobble by a few
        return lam * longest
    growth = (count - previous[1]) / math.log(previous[0] / lam)  # candidates gained per unit of log λ
    factor = math.exp(-(k - count) / growth)
    return lam * min(max(factor, longest), PATH_STEP_MAX)


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
    score: str = "nnz_then_norm",
) -> AdaptiveResult:
    """Search λ so that exactly k candidates of the solution are non-zero.

    Two phases when ``tol`` < SEARCH_TOL: the path and the bisection on solves at SEARCH_TOL, then, from the
    λ they chose, a bracket and a bisection on solves at ``tol``; the answer is always a solve at ``tol``.

    Args:
        problem: a ``GramProblem`` or a (G, B, yy) tuple, G (p, p), B (p, q).
        make_penalty: λ ↦ the penalty at strength λ.
        k: candidates to keep, 1 ≤ k ≤ p (rows) or q (columns).
        direction: ``"rows"`` or ``"columns"`` of W are the candidates.
        max_solves: budget of solver calls of each phase.
        tol: the solver's relative stopping tolerance for the answer.
        max_iter: the solver's iteration cap per solve.
        solver: passed to ``fit_gram``.
        progress: show a tqdm bar over the solves.
        score: how the top k are ranked when more than k stay non-zero (``SCORES``).

    Returns:
        AdaptiveResult at the chosen λ.

    Raises:
        ValueError: k out of range, an unknown direction or a bad problem. A k that no λ reaches is no error:
            the selection is completed (module docstring) and ``completed`` says by how many.
        NoSignalError: B = XᵀY is zero (nothing to rank by).
    """
    G, B, yy = _gram_parts(problem)
    _check_direction(direction)
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}: choose one of {', '.join(SCORES)}")
    n_candidates = B.shape[0] if direction == "rows" else B.shape[1]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_candidates:
        raise ValueError(f"k must be an int in [1, {n_candidates}] (the number of candidate {direction}), got {k!r}")
    if not isinstance(max_solves, int) or max_solves < 2:
        raise ValueError(f"max_solves must be an int >= 2, got {max_solves!r}")
    top = float(B.abs().max())
    if top == 0:
        raise NoSignalError("B = XᵀY is zero: no candidate explains the response (all-zero features?)")
    search = _LambdaSearch(G, B, yy, make_penalty, k, direction, max_solves, max_iter, solver, top)
    phase_tols = [tol] if tol >= SEARCH_TOL else [SEARCH_TOL, tol]
    search.bar = tqdm(total=max_solves * len(phase_tols), desc=f"λ search (k={k})", disable=not progress, leave=False)
    try:
        loose = lambda lam: search.solve(lam, phase_tols[0])  # noqa: E731
        lo, hi = search.path(loose)
        if len(phase_tols) == 1:
            lo, hi = search.bisect(loose, lo, hi)
        else:
            # Loose counts are off by several candidates: start the tight search where the loose bracket's
            # counts, linear in log λ, reach k, and step out by 1.5× the tight count's distance to k at their
            # slope, so that the first step out usually brackets k.
            c_lo, c_hi = loose(lo), loose(hi)
            slope = max(c_lo - c_hi, 1) / math.log(hi / lo)  # candidates per unit of log λ
            start = lo * math.exp((c_lo - k) / slope) if c_hi < k else lo
            tight = lambda lam: search.solve(lam, tol)  # noqa: E731
            step = max(1.5 * abs(tight(start) - k), 2) / slope
            lo, hi = search.bisect(tight, *search.expand(tight, start, step))
    except _ShortOfK as short:
        return search.completed(score, str(short))
    finally:
        search.bar.close()
    result, _ = search.solved[lo, phase_tols[-1]]
    scores = candidate_scores(result.W, direction, score)
    return AdaptiveResult(lo, top_k(scores, k), result.W, scores, search.trace, len(search.trace), search.n_iter())


class _LambdaSearch:
    """The state of one λ search: every solve so far (a warm start for the next), the trace of (λ, count), and the
    three moves :func:`lambda_for_k` makes with them: the path down from max|B|, a bracket outward from a λ, and a
    bisection of a bracket. ``count_at`` is a solve at a fixed tolerance, λ ↦ non-zero candidates.

    Args:
        G, B, yy: the problem's Gram parts.
        make_penalty: λ ↦ the penalty at strength λ.
        k: candidates to keep.
        direction: ``"rows"`` or ``"columns"``.
        max_solves: solves each move may make.
        max_iter, solver: passed to ``fit_gram``.
        top: max|B|, where the path starts.
    """

    def __init__(self, G, B, yy, make_penalty, k, direction, max_solves, max_iter, solver, top):
        self.G, self.B, self.yy = G, B, yy
        self.make_penalty, self.k, self.direction = make_penalty, k, direction
        self.max_solves, self.max_iter, self.solver, self.top = max_solves, max_iter, solver, top
        self.g_norm = float(torch.linalg.eigvalsh(G.double())[-1])
        self.n_candidates = B.shape[0] if direction == "rows" else B.shape[1]
        self.count_slack = math.ceil(COUNT_SLACK * self.n_candidates) - 1
        self.solved: dict[tuple[float, float], tuple[FitResult, int]] = {}  # (λ, tol) → (solution, count)
        self.trace: list[tuple[float, int]] = []
        self.bar = None

    def accepted(self, count: int) -> bool:
        return self.k <= count <= self.k + self.count_slack

    def n_iter(self) -> int:
        return sum(result.n_iter for result, _ in self.solved.values())

    def solve(self, lam: float, solve_tol: float) -> int:
        """Non-zero candidates of the solution at ``lam`` (solved once per tolerance, warm from the nearest λ)."""
        if (lam, solve_tol) in self.solved:
            return self.solved[lam, solve_tol][1]
        warm = None
        if self.solved:  # the nearest λ solved, the tighter solve first on a tie
            warm = self.solved[min(self.solved, key=lambda key: (abs(math.log(key[0] / lam)), key[1]))][0]
        result = fit_gram(
            self.G, self.B, self.yy, self.make_penalty(lam),
            W0=None if warm is None else warm.W,
            dual0=None if warm is None else warm.dual,
            max_iter=self.max_iter, tol=solve_tol, solver=self.solver, g_norm=self.g_norm,
        )  # fmt: skip
        count = count_nonzero(result.W, self.direction)
        self.solved[lam, solve_tol] = (result, count)
        self.trace.append((lam, count))
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(lam=f"{lam:.3g}", nonzero=count)
        return count

    def give_up_below(self, lam: float, solves: int) -> None:
        """Raise if the walk down to ≥ k non-zero candidates, now at λ, cannot go on."""
        most = max(c for _, c in self.trace)
        if solves >= self.max_solves:
            raise _ShortOfK(f"the solve budget ({self.max_solves}) was spent with {most} of {self.k} non-zero")
        if lam < self.top * LAMBDA_MIN_RATIO:
            raise _ShortOfK(f"at most {most} of {self.n_candidates} candidate {self.direction} become non-zero "
                            f"down to λ = {lam:.3g}")

    def path(self, count_at: Callable[[float], int]) -> tuple[float, float]:
        """(lo, hi), count(lo) ≥ k > count(hi), walking down from max|B| (up by doubling if needed)."""
        k, top, start = self.k, self.top, len(self.trace)
        if count_at(top) >= k:  # a structured penalty can keep candidates above max|B|: double
            lo, hi = top, 2 * top
            while count_at(hi) >= k and len(self.trace) - start < self.max_solves:
                lo, hi = hi, 2 * hi
            return lo, hi
        lo, hi = path_step(top, count_at(top), None, k), top
        while count_at(lo) < k:
            self.give_up_below(lo, len(self.trace) - start)
            lo, hi = path_step(lo, count_at(lo), (hi, count_at(hi)), k), lo
        return lo, hi

    def expand(self, count_at: Callable[[float], int], lam: float, step: float) -> tuple[float, float]:
        """(lo, hi), count(lo) ≥ k > count(hi), from λ outward by steps of step, 2·step, 4·step… in log λ."""
        k, start = self.k, len(self.trace)
        if self.accepted(count_at(lam)):
            return lam, lam
        if count_at(lam) > k:
            lo, hi = lam, lam * math.exp(step)
            while count_at(hi) >= k and len(self.trace) - start < self.max_solves:
                step *= 2
                lo, hi = hi, hi * math.exp(step)
            return lo, hi
        lo, hi = lam * math.exp(-step), lam
        while count_at(lo) < k:
            self.give_up_below(lo, len(self.trace) - start)
            step *= 2
            lo, hi = lo * math.exp(-step), lo
        return lo, hi

    def bisect(self, count_at: Callable[[float], int], lo: float, hi: float) -> tuple[float, float]:
        """Narrow (lo, hi) until count(lo) is accepted or the bracket is LAMBDA_REL_TOL wide."""
        k, start = self.k, len(self.trace)
        last_side, streak = "", 0  # the same end moving twice in a row → plain bisection steps
        while (not self.accepted(count_at(lo)) and len(self.trace) - start < self.max_solves
               and hi / lo > 1 + LAMBDA_REL_TOL):
            c_lo, c_hi = count_at(lo), count_at(hi)
            frac = 0.5 if streak >= 2 else min(max((c_lo - k) / max(c_lo - c_hi, 1), 0.05), 0.95)
            lam = math.exp(math.log(lo) + frac * (math.log(hi) - math.log(lo)))
            side = "lo" if count_at(lam) >= k else "hi"
            lo, hi = (lam, hi) if side == "lo" else (lo, lam)
            streak = streak + 1 if side == last_side else 1
            last_side = side
        return lo, hi

    def completed(self, score: str, stopped: str) -> AdaptiveResult:
        """The answer when no λ reaches k: the solve with the most non-zero candidates (the largest λ, then the
        tighter tolerance, among equals), its selection completed by ‖B_i‖ (module docstring)."""
        (lam, _), (result, _) = max(self.solved.items(), key=lambda item: (item[1][1], -item[0][0], -item[0][1]))
        scores = complete_scores(candidate_scores(result.W, self.direction, score), _candidates(self.B, self.direction))
        completed = self.k - count_nonzero(result.W, self.direction)
        return AdaptiveResult(lam, top_k(scores, self.k), result.W, scores, self.trace, len(self.trace),
                              self.n_iter(), completed, stopped)
