"""Time ``select`` on every prunable layer of VGG-16 (convs 5–13) and ResNet-56 (inner conv1 of each block).

Keep half of each layer's channels with adaptive λ, per method, at bs = 128 on CIFAR-10 training images
($IBPRUNE_DATA). Prints and writes ``results/select_all_layers_<model>[_<tag>].json``: per layer the
seconds (Gram problem and λ search), solves, iterations and λ; per method the total.

    python benchmarks/bench_select_all_layers.py --models vgg16 resnet56 --methods sglp stlp apib
"""

from __future__ import annotations

import argparse
import time

import torch
from tqdm import tqdm

from common import add_common_arguments, calibration_images, layer_features, load_benchmark_model, record

from ibprune_lib.selection import select


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg16", "resnet56"], choices=["vgg16", "resnet56"])
    parser.add_argument("--methods", nargs="+", default=["sglp", "stlp", "apib"])
    parser.add_argument("--weights", default=None, help="checkpoint (one model only); default: see common.py")
    parser.add_argument("--tag", default="", help="suffix of the result file name")
    add_common_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for model_name in args.models:
        model, weights = load_benchmark_model(model_name, args.weights)
        images = calibration_images(model_name, args.batch_size)
        start = time.perf_counter()
        layers = layer_features(model_name, model, images)
        capture_seconds = time.perf_counter() - start
        methods = {}
        for method in args.methods:
            rows = []
            for name, x, y in tqdm(layers, desc=f"{model_name} {method}"):
                k = x.shape[1] // 2
                selection = select(x, y, k, method=method)
                d = selection.diagnostics
                rows.append(
                    {
                        "layer": name,
                        "channels": x.shape[1],
                        "responses": y.shape[1],
                        "k": k,
                        "kept": len(selection.kept),
                        "seconds": round(d["seconds"], 3),
                        "seconds_problem": round(d["seconds_problem"], 3),
                        "seconds_search": round(d["seconds_search"], 3),
                        "n_solves": d["n_solves"],
                        "n_iter": d["n_iter"],
                        "lam": d["lam"],
                        "nonzero_at_lam": next(n for lam, n in reversed(d["trace"]) if lam == d["lam"]),  # the tight solve
                        **{key: d[key] for key in ("n_edges", "n_groups") if key in d},
                    }
                )
            methods[method] = {"total_seconds": round(sum(r["seconds"] for r in rows), 2), "layers": rows}
        name = f"select_all_layers_{model_name}" + (f"_{args.tag}" if args.tag else "")
        record(
            name,
            {
                "model": model_name,
                "weights": weights,
                "batch_size": args.batch_size,
                "kernel": "laplacian",
                "keep": "half of each layer's channels",
                "feature_capture_seconds": round(capture_seconds, 2),
                "methods": methods,
            },
        )


if __name__ == "__main__":
    main()
