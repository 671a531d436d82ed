"""Time the information-bottleneck selection of every prunable layer at the Table 1 budgets, as the grid runs it.

``prune`` itself on the committed networks (``experiments/table1.py``: VGG-16 at 15% of the parameters kept,
ResNet-56 at 47% of the FLOPs, the first four prunable layers whole), one calibration batch of 128 CIFAR-10
training images (seed 0), Laplacian kernel, adaptive λ. Writes ``results/select_table1_<model>.json``: per
method the selection seconds and per layer the channels kept, λ, solves and seconds. Run it on a quiet
machine (pause the grid: ``kill -STOP``/``-CONT``); the JSON records the threads.

    python benchmarks/bench_select_table1.py --models vgg16 resnet56 --methods sglp stlp
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import torch

from common import add_common_arguments, calibration_images, record

from ibprune_lib.models import get_model, load_weights, weights_dir
from ibprune_lib.pruning import prune

ROOT = Path(__file__).resolve().parent.parent


def table1_networks() -> dict:
    """``NETWORKS`` of ``experiments/table1.py`` (weights and budget of each network)."""
    spec = importlib.util.spec_from_file_location("table1", ROOT / "experiments" / "table1.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.NETWORKS


def weights_file(reference: str) -> Path:
    """A cell's weights reference (``weights:<file>`` or a repository path) as a file."""
    return weights_dir() / reference.split(":", 1)[1] if reference.startswith("weights:") else ROOT / reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg16", "resnet56"], choices=["vgg16", "resnet56"])
    parser.add_argument("--methods", nargs="+", default=["sglp", "stlp"], choices=["sglp", "stlp", "apib", "lasso"])
    add_common_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    networks = table1_networks()
    for model_name in args.models:
        network = dict(networks[model_name])
        weights = weights_file(network.pop("weights"))
        model = get_model(model_name)
        load_weights(model, weights)
        images = calibration_images(model_name, args.batch_size)
        methods = {}
        for method in args.methods:
            report = prune(model.eval(), model_name, images, method=method, **network).report
            methods[method] = {
                "selection_seconds": round(report["seconds"]["selection"], 2),
                "layers": [
                    {key: layer[key] for key in ("name", "channels", "kept", "lam", "n_solves")}
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
                "weights": str(weights.relative_to(ROOT) if weights.is_relative_to(ROOT) else weights.name),
                "budget": network,
                "skip_first": 4,
                "batch_size": args.batch_size,
                "kernel": "laplacian",
                "methods": methods,
            },
        )


if __name__ == "__main__":
    main()
