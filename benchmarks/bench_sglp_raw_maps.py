"""Where sGLP-IB's selection time goes on the raw maps: VGG-16 at Table 1's budget, Gram form against raw maps.

The ablation grid's Gram-against-raw cells (``experiments/ablations.py``) time sGLP-IB's whole selection several
times slower on the raw maps, where ``bench_gram_vs_raw.py`` (the regression alone, half of each layer's channels
kept) finds the two forms alike. This benchmark runs the cells' own selection, ``prune`` on the committed VGG-16 at
15% of the parameters kept, the first four prunable layers whole and calibration batch 128 (seed 0), once per
form, and keeps per layer the channels kept, the λ search's solves, the edges of sGLP-IB's graph (built from the
regressed features, so each form has its own) and the seconds. Run it on a quiet machine. Prints and writes
``results/sglp_raw_maps.json``.

    python benchmarks/bench_sglp_raw_maps.py --threads 2
"""

from __future__ import annotations

import argparse

import torch

from common import add_common_arguments, record

from ibprune_lib.data import calibration_batch, load_cifar
from ibprune_lib.harness.grid import Cell
from ibprune_lib.models import load_model
from ibprune_lib.pruning import prune

LAYER_KEYS = ("name", "channels", "kept", "n_solves", "n_edges")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_cifar("cifar10")
    forms = {}
    for form, use_gram in (("gram", True), ("raw", False)):
        cell = Cell("vgg16", weights="results/cpu/baselines/vgg16/vgg16.pt", method="sglp", target_params=0.15,
                    batch_size=args.batch_size, use_gram=use_gram)  # fmt: skip
        model, name, _, _ = load_model(cell.weights_path(), cell.model)
        images, _ = calibration_batch(data.x_train, data.y_train, cell.batch_size, seed=0)
        report = prune(model, images, seed=0, model_name=name, progress=False, **cell.prune_arguments()).report
        forms[form] = {
            "selection_seconds": round(report["seconds"]["selection"], 2),
            "layers": [
                {key: layer[key] for key in LAYER_KEYS} | {"seconds": round(layer["seconds"], 3)}
                for layer in report["layers"]
            ],
        }
        print(f"vgg16 sglp {form}: {forms[form]['selection_seconds']} s", flush=True)
    record("sglp_raw_maps", {"model": "vgg16", "weights": cell.weights, "target_params": cell.target_params,
                             "skip_first": cell.skip_first, "batch_size": args.batch_size, "forms": forms})  # fmt: skip


if __name__ == "__main__":
    main()
