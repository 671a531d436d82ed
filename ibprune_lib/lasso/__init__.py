"""Structured lasso on Gram matrices: penalties, solvers (SPG, primal-dual), adaptive λ."""

from .adaptive import AdaptiveResult, candidate_scores, count_nonzero, lambda_for_k, top_k
from .penalties import L1, GraphLasso, Penalty, TreeLasso
from .spg import SOLVERS, FitResult, fit, fit_gram, objective, objective_gram

__all__ = [
    "L1",
    "SOLVERS",
    "AdaptiveResult",
    "FitResult",
    "GraphLasso",
    "Penalty",
    "TreeLasso",
    "candidate_scores",
    "count_nonzero",
    "fit",
    "fit_gram",
    "lambda_for_k",
    "objective",
    "objective_gram",
    "top_k",
]
