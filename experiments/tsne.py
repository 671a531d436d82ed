"""The paper's Fig. 2: t-SNE maps of the pruned network's penultimate features before fine-tuning, with numbers.

Panels (the paper's layout): APIB, sGLP-IB and sTLP-IB with the linear kernel (row 1); sGLP-IB and sTLP-IB
with the Gaussian, sigmoid and Laplacian kernels (rows 2–3); and the unpruned network for reference. Each
prunes the network at Table 1's budget with one calibration batch (same seed for every panel), then reads the
features of the first ``test_images`` test images right after pruning (the paper's "before fine-tuning") and
after BatchNorm recalibration, and scores both with ``ibprune_lib.embedding.separation``; the map is of the
features right after pruning. One JSON, ``results/<scale>/tsne.json``, written after every panel: a killed
run resumes at the next panel.

    python experiments/tsne.py --scale cpu
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ibprune_lib.data import calibration_batch, load_cifar
from ibprune_lib.embedding import penultimate_features, separation, tsne_map
from ibprune_lib.harness.grid import CODE_COMMIT, PROTOCOLS
from ibprune_lib.models import load_model
from ibprune_lib.paths import REPO_ROOT, weights_dir
from ibprune_lib.provenance import provenance, save_json
from ibprune_lib.pruning import prune
from ibprune_lib.train import evaluate, recalibrate_batchnorm

PANELS = [("apib", "linear"), ("sglp", "linear"), ("stlp", "linear")] + [
    (method, kernel) for kernel in ("gaussian", "sigmoid", "laplacian") for method in ("sglp", "stlp")
]
SETTINGS = {
    "cpu": dict(model="vgg16", weights="results/cpu/baselines/vgg16/vgg16.pt", budget={"target_params": 0.15},
                test_images=2000, batch_size=128, panels=PANELS),
    "smoke": dict(model="resnet56", weights="weights:resnet56-4bfd9763.th", budget={"target_flops": 0.47},
                  test_images=300, batch_size=64, panels=[("stlp", "linear")]),
}  # fmt: skip
SEED = 0
SKIP_FIRST = 4


def weights_path(spec: str):
    return weights_dir() / spec.removeprefix("weights:") if spec.startswith("weights:") else REPO_ROOT / spec


def panel_record(network, name, data, images, labels, recalibration) -> dict:
    """Scores right after pruning (with the map) and after BatchNorm recalibration of a pruned network."""
    record = {"top1": evaluate(network, images, labels, name, progress=False)}
    features = penultimate_features(network, images, name)
    record |= {"separation": separation(features, labels), "map": tsne_map(features, SEED).round(2).tolist()}
    if recalibration is not None:
        recalibrate_batchnorm(network, data.x_train, name, *recalibration, seed=SEED)
        record["recalibrated"] = {"top1": evaluate(network, images, labels, name, progress=False),
                                  "separation": separation(penultimate_features(network, images, name), labels)}
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="cpu", choices=sorted(SETTINGS))
    parser.add_argument("--results", default=str(REPO_ROOT / "results"), help="results root")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    settings = SETTINGS[args.scale]
    if not weights_path(settings["weights"]).is_file():
        print(f"error: --scale {args.scale} needs {weights_path(settings['weights'])}: set IBPRUNE_WEIGHTS or "
              "train the baseline (results/cpu/baselines)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.results) / args.scale / "tsne.json"
    described = {key: value for key, value in settings.items() if key != "panels"}
    done = json.loads(out.read_text()) if out.is_file() else {}
    if done.get("settings") != json.loads(json.dumps(described)):
        done = {}
    panels = done.get("panels", {})
    protocol = PROTOCOLS[args.scale]
    recalibration = (protocol.recalibration_batches, protocol.recalibration_batch_size)
    data = load_cifar("cifar10", download=True)
    images, labels = data.x_test[: settings["test_images"]], data.y_test[: settings["test_images"]]
    model, name, _, _ = load_model(weights_path(settings["weights"]), settings["model"])
    calibration, _ = calibration_batch(data.x_train, data.y_train, settings["batch_size"], SEED)
    started = time.perf_counter()
    todo = [("unpruned", None), *settings["panels"]]
    for method, kernel in tqdm(todo, desc="t-SNE panels"):
        key = method if kernel is None else f"{method}-{kernel}"
        if key in panels:
            continue
        tic = time.perf_counter()
        if kernel is None:
            record = panel_record(model, name, data, images, labels, None)
        else:
            pruned = prune(model, calibration, method=method, kernel=kernel, skip_first=SKIP_FIRST, model_name=name,
                           **settings["budget"])  # fmt: skip
            record = panel_record(pruned.model, name, data, images, labels, recalibration)
            record["counts"] = pruned.report["totals"]
        panels[key] = {"method": method, "kernel": kernel, "seconds": time.perf_counter() - tic, **record}
        save_json(out, {"settings": described, "seed": SEED, "labels": labels.tolist(), "panels": panels,
                        "provenance": provenance(scale=args.scale, seeds=[SEED], code_commit=CODE_COMMIT,
                                                 this_run_seconds=time.perf_counter() - started)})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
