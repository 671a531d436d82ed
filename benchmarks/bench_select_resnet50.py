"""Time every criterion's channel selection on a ResNet-50 at 224×224: Table 2's network, speed only.

No ImageNet and no pretrained ResNet-50 can be had here, so the network has its seeded initial weights and the
calibration batch is 128 images of seeded Gaussian noise: the channels chosen mean nothing, and the seconds are what
a user pays per criterion, save sGLP-IB's: at initial weights every channel's centred Gram is nearly the same, so
every pair of response columns correlates beyond τ, sGLP-IB's graph is complete and this is its slowest case
(notebook 11 shows it). ``prune`` at Table 2's budget (57% of the FLOPs removed, one shared keep ratio, the first
four prunable layers whole), Laplacian kernel, adaptive λ. Writes ``results/select_resnet50.json``: per method the
selection seconds, the seconds of the budget (count model) and of the whole call, per layer channels, kept, solves,
the edges of sGLP-IB's graph or the groups of sTLP-IB's tree, and seconds, and the commit it ran; a method is
recorded as soon as it finishes, and with ``--keep-earlier`` a stopped run goes on from the methods it recorded
(same machine, threads and settings). Run it on a quiet machine (between grid cells: a paused cell's wall time
would count the pause); the JSON records the threads.

    python benchmarks/bench_select_resnet50.py --methods l1 fpgm random hrank apib lasso stlp sglp
    python benchmarks/bench_select_resnet50.py --keep-earlier --methods stlp   # the one a stopped run left
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from common import add_common_arguments, earlier_record, record

from ibprune_lib.models import get_model, input_size
from ibprune_lib.provenance import git_commit
from ibprune_lib.pruning import METHODS, prune

TARGET_FLOPS = 0.43  # the paper's sGLP-IB / sTLP-IB row of Table 2 removes 57% of the FLOPs
SKIP_FIRST = 4
LAYER_KEYS = ("name", "channels", "kept", "n_solves", "n_edges", "n_groups")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--keep-earlier", action="store_true",
                        help="keep the methods results/select_resnet50.json holds (each with its commit) and time the "
                             "others; without it the record starts over")  # fmt: skip
    add_common_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = {"model": "resnet50", "target_flops": TARGET_FLOPS, "skip_first": SKIP_FIRST,
                "batch_size": args.batch_size, "kernel": "laplacian"}  # fmt: skip
    earlier = earlier_record("select_resnet50", settings) if args.keep_earlier else {}
    if earlier is None:
        print("--keep-earlier: results/select_resnet50.json was measured on another machine, thread count or batch "
              "size; drop the flag to start the record over", file=sys.stderr)  # fmt: skip
        sys.exit(2)
    methods = {method: {"commit": earlier["commit"]} | run for method, run in earlier.get("methods", {}).items()}
    torch.manual_seed(0)
    model = get_model("resnet50", num_classes=1000).eval()
    images = torch.randn(args.batch_size, *input_size("resnet50"), generator=torch.Generator().manual_seed(0))
    for method in args.methods:
        if method in methods:
            print(f"resnet50 {method}: {methods[method]['selection_seconds']} s, kept from the earlier run", flush=True)
            continue
        started = time.perf_counter()
        report = prune(model, images, method=method, target_flops=TARGET_FLOPS, skip_first=SKIP_FIRST,
                       model_name="resnet50").report  # fmt: skip
        methods[method] = {
            "selection_seconds": round(report["seconds"]["selection"], 2),
            "budget_seconds": round(report["seconds"]["budget"], 2),
            "call_seconds": round(time.perf_counter() - started, 2),
            "layers": [
                {key: layer[key] for key in LAYER_KEYS} | {"seconds": round(layer["seconds"], 3)}
                for layer in report["layers"]
            ],
            "totals": report["totals"],
            "commit": git_commit(),
        }
        print(f"resnet50 {method}: {methods[method]['selection_seconds']} s", flush=True)
        record(
            "select_resnet50",
            {
                "weights": "seeded initial weights (torch.manual_seed(0)): speed only",
                "images": f"{args.batch_size} seeded Gaussian-noise images at 224x224: speed only",
                **settings,
                "methods": methods,
            },
        )


if __name__ == "__main__":
    main()
