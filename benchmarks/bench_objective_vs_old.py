"""The exact sGLP-IB objective at the λ each layer's search chooses: this commit's solver against an older one's.

On the committed VGG-16 (``results/cpu/baselines/vgg16``) at Table 1's keep counts (taken from
``results/select_table1_vgg16.json``), one calibration batch of 128 (seed 0), Laplacian kernel, τ = 0.6: this
commit's λ search chooses λ per layer; at that λ the older commit's solver (run from a temporary git worktree,
in a subprocess) and this commit's solver each solve from a cold start at the search's settings (tolerance
1e-5, at most 2,000 iterations), and the exact objectives are compared with the search's own answer. Gaps are
given relative to the explained part |F − ‖Y‖²/2|, the part of the objective the solvers move. Writes
``results/objective_vs_old_vgg16.json``.

    python benchmarks/bench_objective_vs_old.py --old-commit 2b0ad7e --layers features.14 features.17 features.40
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from common import (
    RESULTS,
    add_common_arguments,
    calibration_images,
    layer_features,
    load_benchmark_model,
    record,
)

from ibprune_lib.kernels import gram_problem
from ibprune_lib.lasso import GraphLasso, fit_gram, lambda_for_k, objective_gram
from ibprune_lib.paths import REPO_ROOT
from ibprune_lib.structure import graph_from_correlation

SEARCH = dict(tol=1e-5, max_iter=2000)  # select's defaults

OLD_SOLVE = """
import json, sys, time, torch
from ibprune_lib.lasso import GraphLasso, fit_gram, objective_gram
from ibprune_lib.structure import Graph
torch.set_num_threads(int(sys.argv[2]))
answers = {}
for name, p in torch.load(sys.argv[1]).items():
    penalty = GraphLasso(p["lam"], p["lam"], Graph(p["edges"], p["weights"], p["n_nodes"]))
    tic = time.perf_counter()
    result = fit_gram(p["G"], p["B"], p["yy"], penalty, tol=p["tol"], max_iter=p["max_iter"])
    answers[name] = dict(objective=objective_gram(p["G"], p["B"], p["yy"], result.W, penalty),
                         n_iter=result.n_iter, seconds=time.perf_counter() - tic)
print(json.dumps(answers))
"""


def solve_in_old_commit(commit: str, problems: dict, threads: int) -> dict:
    """{layer: objective, iterations, seconds} of the older commit's cold solves, from a temporary worktree."""
    with tempfile.TemporaryDirectory() as folder:
        tree = Path(folder) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), commit], cwd=REPO_ROOT, check=True)
        try:
            torch.save(problems, Path(folder) / "problems.pt")
            done = subprocess.run([sys.executable, "-c", OLD_SOLVE, str(Path(folder) / "problems.pt"), str(threads)],
                                  cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                                  capture_output=True, text=True, check=True)  # fmt: skip
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO_ROOT, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-commit", default="2b0ad7e", help="the commit whose solver is compared")
    parser.add_argument("--layers", nargs="+", default=None, help="features.14 … features.40, the names of pruning.survey_layers (default: all nine)")
    add_common_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    table1 = json.loads((RESULTS / "select_table1_vgg16.json").read_text())
    weights = REPO_ROOT / table1["weights"]
    keep = [layer["kept"] for layer in table1["methods"]["sglp"]["layers"]]
    model, _ = load_benchmark_model("vgg16", weights)
    images = calibration_images("vgg16", args.batch_size)
    features = layer_features("vgg16", model, images)
    if len(features) != len(keep):
        raise SystemExit(f"{len(features)} prunable layers but {len(keep)} keep counts in select_table1_vgg16.json")
    layers = {}
    for (name, x, y), k in zip(features, keep):
        if args.layers and name not in args.layers:
            continue
        problem = gram_problem(x, y, kernel="laplacian")
        graph = graph_from_correlation(problem.response_corr, 0.6)
        search = lambda_for_k(problem, lambda lam: GraphLasso(lam, lam, graph), k, **SEARCH)
        penalty = GraphLasso(search.lam, search.lam, graph)
        cold = fit_gram(problem.G, problem.B, problem.yy, penalty, **SEARCH)
        layers[name] = dict(
            k=k, lam=search.lam, yy_half=problem.yy / 2, n_edges=graph.n_edges,
            search_answer=objective_gram(problem.G, problem.B, problem.yy, search.W, penalty),
            this_commit_cold=objective_gram(problem.G, problem.B, problem.yy, cold.W, penalty),
            this_commit_cold_n_iter=cold.n_iter,
            problem=dict(G=problem.G, B=problem.B, yy=problem.yy, lam=search.lam, edges=graph.edges,
                         weights=graph.weights, n_nodes=graph.n_nodes, **SEARCH),
        )  # fmt: skip
        print(name, f"λ = {search.lam:.4g}", flush=True)
    old = solve_in_old_commit(args.old_commit, {name: layer.pop("problem") for name, layer in layers.items()},
                              args.threads)  # fmt: skip
    for name, layer in layers.items():
        explained = abs(layer["search_answer"] - layer["yy_half"])
        layer.update(old_commit_cold=old[name]["objective"], old_commit_cold_n_iter=old[name]["n_iter"],
                     old_commit_cold_seconds=round(old[name]["seconds"], 2),
                     search_gap_vs_old_relative=(layer["search_answer"] - old[name]["objective"]) / explained,
                     cold_gap_vs_old_relative=(layer["this_commit_cold"] - old[name]["objective"]) / explained)
    record("objective_vs_old_vgg16", {
        "weights": table1["weights"], "old_commit": args.old_commit, "settings": SEARCH, "kernel": "laplacian",
        "threshold": 0.6, "batch_size": args.batch_size, "layers": layers,
        "largest_search_gap_vs_old_relative": max(layer["search_gap_vs_old_relative"] for layer in layers.values()),
        "largest_cold_gap_vs_old_relative": max(layer["cold_gap_vs_old_relative"] for layer in layers.values()),
    })  # fmt: skip


if __name__ == "__main__":
    main()
