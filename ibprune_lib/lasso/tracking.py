"""The solvers' bookkeeping: the exact objective of every iterate, the best one, and the stopping rule."""

from __future__ import annotations

from collections import deque

import torch

from .penalties import Penalty

STALL_WINDOW = 5
PD_STALL_WINDOW = 25
"""Iterations over which the relative change of the exact objective is measured for stopping: 5 for FISTA, 25
for primal-dual, whose first iterations after a warm start at a nearby λ crawl (a shorter window stopped such
solves after 6 iterations with the warm start's support unchanged, and the λ search read stale counts)."""


def inner(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """⟨X, Y⟩ of two (p, q) tensors, without a copy when both are contiguous or both transposed views."""
    if not X.is_contiguous():
        X, Y = X.T, Y.T
    return torch.dot(X.reshape(-1), Y.reshape(-1))


class Tracker:
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
        loss = 0.5 * inner(W, GW) - inner(W, self.B if B_rows is None else B_rows)
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
