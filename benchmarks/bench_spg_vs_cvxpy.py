"""The graph-lasso solvers against cvxpy on a 256 × 256 problem: time ratio and objective gap.

X (n, 256) Gaussian, W with 64 non-zero rows, Y = XW + noise with its 256 columns in 32 correlated
clusters; columns scaled to unit norm as ``gram_problem`` does; graph |r| > 0.6 over Y's columns;
λ = 0.1·max|XᵀY|, γ = λ. cvxpy solves the data form with CLARABEL (else ECOS, SCS); ours solve the Gram
form with the default primal-dual solver and with SPG (book/formulation.md §3). Prints and writes
``results/spg_vs_cvxpy.json``.
"""

from __future__ import annotations

import argparse
import time

import cvxpy as cp
import numpy as np
import torch

from common import add_common_arguments, record

from ibprune_lib.lasso import GraphLasso, count_nonzero, fit_gram, objective
from ibprune_lib.structure import pearson_graph


def make_problem(n: int, p: int, q: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, p, generator=g, dtype=torch.float64)
    W = torch.zeros(p, q, dtype=torch.float64)
    rows = torch.randperm(p, generator=g)[: p // 4]
    clusters = torch.arange(q) % 32
    centres = torch.randn(p // 4, 32, generator=g, dtype=torch.float64)
    W[rows] = centres[:, clusters] + 0.3 * torch.randn(p // 4, q, generator=g, dtype=torch.float64)
    Y = X @ W + 2.0 * torch.randn(n, q, generator=g, dtype=torch.float64)
    return X / X.norm(dim=0), Y / Y.norm(dim=0)


def cvxpy_solve(X: torch.Tensor, Y: torch.Tensor, penalty: GraphLasso) -> tuple[float, float, str]:
    solver = next(s for s in ("CLARABEL", "ECOS", "SCS") if s in cp.installed_solvers())
    p, q = X.shape[1], Y.shape[1]
    edges, r = penalty.graph.edges.numpy(), penalty.graph.weights.numpy()
    C = np.zeros((len(edges), q))
    C[np.arange(len(edges)), edges[:, 0]] = penalty.gamma * np.abs(r)
    C[np.arange(len(edges)), edges[:, 1]] = -penalty.gamma * r
    W = cp.Variable((p, q))
    fusion = cp.sum(cp.abs(W @ C.T)) if len(edges) else 0
    loss = 0.5 * cp.sum_squares(Y.numpy() - X.numpy() @ W)
    problem = cp.Problem(cp.Minimize(loss + penalty.lam * cp.sum(cp.abs(W)) + fusion))
    start = time.perf_counter()
    problem.solve(solver=solver)
    seconds = time.perf_counter() - start
    return objective(X, Y, torch.from_numpy(W.value), penalty), seconds, solver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--size", type=int, default=256, help="p = q")
    parser.add_argument("--seed", type=int, default=0)
    add_common_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    X, Y = make_problem(args.n, args.size, args.size, args.seed)
    graph = pearson_graph(Y, 0.6)
    G, B, yy = X.T @ X, X.T @ Y, float(Y.square().sum())
    lam = 0.1 * float(B.abs().max())
    penalty = GraphLasso(lam, lam, graph)
    reference, cvxpy_seconds, cvxpy_solver = cvxpy_solve(X, Y, penalty)
    ours = {}
    for solver, dtype in (("primal_dual", torch.float64), ("primal_dual", torch.float32), ("spg", torch.float64)):
        start = time.perf_counter()
        result = fit_gram(G.to(dtype), B.to(dtype), yy, penalty, solver=solver)
        seconds = time.perf_counter() - start
        value = objective(X, Y, result.W.double(), penalty)
        ours[f"{solver}_{str(dtype).removeprefix('torch.')}"] = {
            "seconds": round(seconds, 3),
            "objective": value,
            "relative_gap": (value - reference) / abs(reference),
            "time_ratio_vs_cvxpy": round(seconds / cvxpy_seconds, 4),
            "iterations": result.n_iter,
            "converged": result.converged,
            "nonzero_rows": count_nonzero(result.W),
        }
    record(
        "spg_vs_cvxpy",
        {
            "problem": {
                "n": args.n, "p": args.size, "q": args.size, "edges": graph.n_edges, "lam": lam, "gamma": lam,
                "seed": args.seed,
            },  # fmt: skip
            "cvxpy": {
                "solver": cvxpy_solver, "seconds": round(cvxpy_seconds, 3), "objective": reference,
                "version": cp.__version__,
            },  # fmt: skip
            "ours": ours,
        },
    )


if __name__ == "__main__":
    main()
