"""Gram vs no-Gram regression time on real VGG-16 layers (the paper's speed ablation, book/formulation.md §1).

For each prunable VGG-16 conv (5–13) and bs = 128 CIFAR-10 training images: ``select`` keeping half the
channels with the Gram problem (laplacian kernel, bs(bs+1)/2 rows per channel) and with the raw maps
(bs·h'·w' rows), timing the problem build and the λ search separately, and the overlap of the two kept sets.
Both reduce to the same p × p solver work; the difference is the rows that are summed into G and B.
Prints and writes ``results/gram_vs_raw.json``.
"""

from __future__ import annotations

import argparse

import torch

from common import add_common_arguments, calibration_images, layer_features, load_benchmark_model, record

from ibprune_lib.selection import select


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["lasso", "stlp"])
    parser.add_argument("--weights", default=None, help="VGG-16 checkpoint; default: see common.py")
    add_common_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, weights = load_benchmark_model("vgg16", args.weights)
    images = calibration_images("vgg16", args.batch_size)
    results = {}
    for method in args.methods:
        rows = []
        for name, x, y in layer_features("vgg16", model, images):
            k = x.shape[1] // 2
            row = {"layer": name, "channels": x.shape[1], "x_shape": list(x.shape), "y_shape": list(y.shape)}
            kept = {}
            for variant, use_gram in (("gram", True), ("raw", False)):
                d = select(x, y, k, method=method, use_gram=use_gram)
                kept[variant] = set(d.kept.tolist())
                row[variant] = {
                    "seconds": round(d.diagnostics["seconds"], 3),
                    "seconds_problem": round(d.diagnostics["seconds_problem"], 3),
                    "seconds_search": round(d.diagnostics["seconds_search"], 3),
                    "n_solves": d.diagnostics["n_solves"],
                    "n_iter": d.diagnostics["n_iter"],
                }
            row["kept_overlap"] = len(kept["gram"] & kept["raw"]) / k
            rows.append(row)
        results[method] = {
            "total_seconds": {v: round(sum(r[v]["seconds"] for r in rows), 2) for v in ("gram", "raw")},
            "total_seconds_problem": {v: round(sum(r[v]["seconds_problem"] for r in rows), 2) for v in ("gram", "raw")},
            "layers": rows,
        }
    record("gram_vs_raw", {"model": "vgg16", "weights": weights, "batch_size": args.batch_size, "methods": results})


if __name__ == "__main__":
    main()
