"""All pruning criteria side by side on the shared ResNet-56 at one FLOPs budget (issue 4, item 7).

The same calibration batch (training set, bs = 128, seed 0), the same per-layer keep counts (one shared ratio
meeting the target, first four prunable layers kept whole) and the same surgery for every method; top-1 on the
full CIFAR-10 test set before any fine-tuning, MACs, params, and selection time. The JSON is rewritten
atomically after every method (``"complete": false`` until the last), so an interrupted run keeps its results.

    IBPRUNE_DATA=... IBPRUNE_WEIGHTS=... python experiments/compare_resnet56.py [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from ibprune_lib.data import calibration_batch, load_cifar
from ibprune_lib.models import get_model, load_weights
from ibprune_lib.paths import weights_dir
from ibprune_lib.provenance import provenance, save_json
from ibprune_lib.pruning import prune
from ibprune_lib.train import evaluate

METHODS = ("stlp", "sglp", "apib", "l1", "random", "hrank", "fpgm")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(weights_dir() / "resnet56-4bfd9763.th"))
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--target-flops", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kernel", default="laplacian")
    parser.add_argument("--skip-first", type=int, default=4)
    parser.add_argument("--test-subset", type=int, default=None, help="first N test images (default: all 10,000)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--cpu-contention", default=None, help="a note on what else shared the CPU")
    parser.add_argument("--out", default="results/cpu/compare_resnet56_flops50.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    started = time.perf_counter()
    data = load_cifar("cifar10")
    n = args.test_subset or len(data.x_test)
    model = load_weights(get_model("resnet56"), args.weights).eval()
    images, labels = calibration_batch(data.x_train, data.y_train, args.batch_size, args.seed)
    payload = {
        "experiment": "compare_resnet56",
        "complete": False,
        "settings": {
            "model": "resnet56", "weights": args.weights, "target_flops": args.target_flops, "kernel": args.kernel,
            "skip_first": args.skip_first, "widths": "uniform", "direction": "rows", "calibration_batch": args.batch_size,
            "calibration_seed": args.seed, "calibration_class_counts": torch.bincount(labels, minlength=10).tolist(),
            "random_seed": args.seed, "test_images": n, "fine_tuning": None,
        },
        "unpruned_top1": evaluate(model, data.x_test[:n], data.y_test[:n], "resnet56", progress=False),
        "results": {},
    }
    for method in args.methods:
        result = prune(model, images, method=method, target_flops=args.target_flops, kernel=args.kernel,
                       skip_first=args.skip_first, seed=args.seed)
        report = result.report
        payload["results"][method] = {
            "top1": evaluate(result.model, data.x_test[:n], data.y_test[:n], "resnet56", progress=False),
            **{key: report["totals"][key] for key in ("macs_after", "params_after", "macs_ratio", "params_ratio")},
            "selection_seconds": report["seconds"]["selection"],
            "selection_seconds_per_layer_sum": report["seconds"]["selection_per_layer_sum"],
            "budget_seconds": report["seconds"]["budget"],
            "layers": [{key: layer[key] for key in ("name", "channels", "kept", "lam", "n_solves", "seconds")}
                       for layer in report["layers"]],
        }
        payload["totals_before"] = {key: report["totals"][key] for key in ("macs_before", "params_before")}
        payload["provenance"] = provenance(
            command=" ".join(sys.argv), wall_seconds=time.perf_counter() - started, cpu_contention=args.cpu_contention,
        )
        save_json(args.out, payload)
        print(f"{method:>6}: top-1 {payload['results'][method]['top1']:.2f}%  "
              f"MACs {100 * report['totals']['macs_ratio']:.1f}%  params {100 * report['totals']['params_ratio']:.1f}%  "
              f"selection {report['seconds']['selection']:.1f}s", flush=True)
    payload["complete"] = True
    payload["provenance"]["wall_seconds"] = time.perf_counter() - started
    save_json(args.out, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
