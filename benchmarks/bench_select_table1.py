"""Time the information-bottleneck selection of every prunable layer at the Table 1 budgets, as the grid runs it.

``prune`` itself on the committed networks (``experiments/table1.py``: VGG-16 at 15% of the parameters kept,
ResNet-56 at 47% of the FLOPs, the first four prunable layers whole), one calibration batch of 128 CIFAR-10
training images (seed 0), Laplacian kernel, adaptive λ. Each selection runs ``--repeats`` times (3): this
machine's timings vary by about ±10 % from run to run. Writes ``results/select_table1_<model>.json``: per
method the median run's selection seconds, every run's seconds, and per layer the channels kept, λ, solves,
solver iterations and seconds. Run it on a quiet machine (pause the grid: ``kill -STOP``/``-CONT``); the JSON
records the threads.

    python benchmarks/bench_select_table1.py --models vgg16 resnet56 --methods sglp stlp
"""

from __future__ import annotations

import argparse

import torch

from common import add_common_arguments, calibration_images, record

from ibprune_lib.harness.grid import load_table
from ibprune_lib.paths import REPO_ROOT
from ibprune_lib.models import get_model, load_weights
from ibprune_lib.pruning import prune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg16", "resnet56"], choices=["vgg16", "resnet56"])
    parser.add_argument("--methods", nargs="+", default=["sglp", "stlp"], choices=["sglp", "stlp", "apib", "lasso"])
    parser.add_argument("--repeats", type=int, default=3, help="selections per method; the median run is recorded")
    add_common_arguments(parser)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    torch.set_num_threads(args.threads)
    table = [cell for cell in load_table("table1", "cpu") if cell.widths == "uniform"]
    for model_name in args.models:
        cells = {cell.method: cell for cell in table if cell.model == model_name and cell.method in args.methods}
        first = next(iter(cells.values()))
        weights = first.weights_path()
        model = get_model(model_name)
        load_weights(model, weights)
        images = calibration_images(model_name, args.batch_size)
        budget = {key: getattr(first, key) for key in ("target_flops", "target_params") if getattr(first, key)}
        methods = {}
        for method, cell in cells.items():
            reports = sorted(
                (prune(model.eval(), images, model_name=model_name, **cell.prune_arguments()).report
                 for _ in range(args.repeats)),
                key=lambda report: report["seconds"]["selection"],
            )  # fmt: skip
            report = reports[len(reports) // 2]
            methods[method] = {
                "selection_seconds": round(report["seconds"]["selection"], 2),
                "selection_seconds_runs": [round(r["seconds"]["selection"], 2) for r in reports],
                "layers": [
                    {key: layer[key] for key in ("name", "channels", "kept", "lam", "n_solves", "n_iter")}
                    | {"seconds": round(layer["seconds"], 3)}
                    for layer in report["layers"]
                ],
                "totals": report["totals"],
            }
            print(f"{model_name} {method}: {methods[method]['selection_seconds']} s", flush=True)
        record(
            f"select_table1_{model_name}",
            {
                "model": model_name,
                "weights": str(weights.relative_to(REPO_ROOT) if weights.is_relative_to(REPO_ROOT) else weights.name),
                "budget": budget,
                "skip_first": first.skip_first,
                "batch_size": args.batch_size,
                "kernel": first.kernel,
                "methods": methods,
            },
        )


if __name__ == "__main__":
    main()
