"""Latency of Table 1's networks before and after pruning, on this CPU: the paper's Table 10 (a Raspberry Pi 4B).

For each network, the unpruned model and the model pruned to Table 1's budget (``experiments/table1.py``:
one shared keep ratio, the first four prunable layers whole). With uniform widths every criterion keeps the
same number of channels in every layer, so the pruned *architecture*, and with it the latency, is the same for
sGLP-IB, sTLP-IB and every other criterion; the weights (seeded initial ones here) do not change the time of
a dense forward. Where a Table 1 cell of the network is committed, its per-layer kept counts are checked
against the architecture timed. Two runtimes: eager PyTorch (``channels_last``) and the ONNX export run by ONNX
Runtime, the deployment path for a small ARM board; batch 1 and 64; median and quartiles after warm-up. With
``--round-to N …`` the network is also pruned with its kept widths rounded to multiples of N (the budget still
met, ``prune(round_to=N)``), widths the runtimes' kernels may like better, and timed the same way.
Writes ``results/latency.json``. Run it on a quiet machine (pause the grid); the JSON records the threads.

    python benchmarks/bench_latency.py --threads 2 --round-to 8 16
"""

from __future__ import annotations

import argparse
import json

import torch

from common import add_common_arguments, record

from ibprune_lib.counting import RUNTIMES, count, latency
from ibprune_lib.errors import OptionError
from ibprune_lib.harness.grid import load_table
from ibprune_lib.models import get_model, input_size
from ibprune_lib.paths import REPO_ROOT
from ibprune_lib.pruning import prune

NETWORKS = ("vgg16", "resnet56", "resnet110", "googlenet")
BATCHES = {1: dict(repeats=200, warmup=20), 64: dict(repeats=20, warmup=3)}


def table1_budget(model_name: str) -> dict:
    """The target and skip_first of the network's uniform-width Table 1 cells (GoogLeNet's need a GPU)."""
    cell = next(c for c in load_table("table1", "cpu") if c.model == model_name and c.widths == "uniform")
    budget = {key: getattr(cell, key) for key in ("target_flops", "target_params") if getattr(cell, key) is not None}
    return {**budget, "skip_first": cell.skip_first}


def committed_keep_counts(model_name: str) -> dict[str, list[int]]:
    """Cell id → per-layer kept counts of the committed uniform-width Table 1 cells of the network."""
    found = {}
    for path in sorted((REPO_ROOT / "results" / "cpu" / "table1").glob(f"{model_name}-*.json")):
        result = json.loads(path.read_text())
        if result["cell"]["widths"] == "uniform":
            found[path.stem] = [layer["kept"] for layer in result["seeds"][0]["layers"]]
    return found


def time_model(model: torch.nn.Module, size: tuple[int, int, int], threads: int) -> list[dict]:
    rows = []
    for runtime in RUNTIMES:
        for batch_size, repeats in BATCHES.items():
            timing = latency(model, batch_size, size, threads=threads, runtime=runtime, **repeats)
            rows.append({"runtime": runtime, "batch_size": batch_size, "median_ms": round(timing.median_ms, 3),
                         "q1_ms": round(timing.q1_ms, 3), "q3_ms": round(timing.q3_ms, 3),
                         "repeats": timing.repeats, "threads": timing.threads})  # fmt: skip
            print(f"  {runtime:<12} batch {batch_size:>3}: {timing.median_ms:9.2f} ms", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    parser.add_argument("--round-to", nargs="*", type=int, default=[], metavar="N",
                        help="also time the network pruned with widths rounded to multiples of each N")
    add_common_arguments(parser)
    args = parser.parse_args()
    if any(n < 2 for n in args.round_to):
        parser.error(f"--round-to {' '.join(map(str, args.round_to))}: give multiples of 2 or more (1 is the "
                     "plain pruned network, always timed)")
    torch.set_num_threads(args.threads)
    networks = {}
    for model_name in args.models:
        torch.manual_seed(0)
        model = get_model(model_name).eval()
        size = input_size(model_name)
        budget = table1_budget(model_name)
        images = torch.randn(2, *size, generator=torch.Generator().manual_seed(0))
        result = prune(model, images, method="l1", model_name=model_name, **budget)
        kept = [layer["kept"] for layer in result.report["layers"]]
        matches = committed_keep_counts(model_name)
        if any(counts != kept for counts in matches.values()):
            raise RuntimeError(f"{model_name}: a committed Table 1 cell kept other counts than the architecture timed")
        print(model_name, flush=True)
        networks[model_name] = {}
        for label, network in (("unpruned", model), ("pruned", result.model)):
            counts = count(network, size)
            print(f" {label}: {counts}", flush=True)
            networks[model_name][label] = {"macs": counts.macs, "params": counts.params,
                                           "timings": time_model(network, size, args.threads)}  # fmt: skip
        networks[model_name]["budget"] = budget
        networks[model_name]["kept"] = kept
        networks[model_name]["same_architecture_as"] = sorted(matches)
        networks[model_name]["rounded"] = {}
        for round_to in args.round_to:
            try:
                rounded = prune(model, images, method="l1", model_name=model_name, round_to=round_to, **budget)
            except OptionError as error:  # a stage narrower than a multiple of N stays whole: the budget is lost
                print(f" widths rounded to multiples of {round_to}: {error}", flush=True)
                networks[model_name]["rounded"][str(round_to)] = {"unreachable": str(error)}
                continue
            counts = count(rounded.model, size)
            print(f" widths rounded to multiples of {round_to}: {counts}", flush=True)
            networks[model_name]["rounded"][str(round_to)] = {
                "macs": counts.macs, "params": counts.params,
                "kept": [layer["kept"] for layer in rounded.report["layers"]],
                "timings": time_model(rounded.model, size, args.threads)}  # fmt: skip
    record("latency", {
        "weights": "seeded initial weights (the time of a dense forward does not depend on them)",
        "batches": {str(k): v for k, v in BATCHES.items()},
        "round_to": args.round_to,
        "networks": networks,
    })


if __name__ == "__main__":
    main()
