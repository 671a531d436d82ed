"""Time every criterion's channel selection on a ResNet-50 at 224×224: Table 2's network, speed only.

No ImageNet and no pretrained ResNet-50 can be had here, so the network has its seeded initial weights and the
calibration batch is 128 images of seeded Gaussian noise: the channels chosen mean nothing, the seconds are
what a user pays per criterion. ``prune`` at Table 2's budget (57% of the FLOPs removed, one shared keep ratio,
the first four prunable layers whole), Laplacian kernel, adaptive λ. Writes ``results/select_resnet50.json``:
per method the selection seconds, the seconds of the budget (count model) and of the whole call, and per layer
channels, kept, solves and seconds; a method is recorded as soon as it finishes, and a stopped run of the same
commit on the same machine goes on from the methods it recorded. Run it on a quiet machine (between grid cells:
a paused cell's wall time would count the pause); the JSON records the threads.

    python benchmarks/bench_select_resnet50.py --methods l1 fpgm random hrank apib lasso stlp sglp
"""

from __future__ import annotations

import argparse
import time

import torch

from common import add_common_arguments, earlier_record, record

from ibprune_lib.models import get_model, input_size
from ibprune_lib.pruning import METHODS, prune

TARGET_FLOPS = 0.43  # the paper's sGLP-IB / sTLP-IB row of Table 2 removes 57% of the FLOPs
SKIP_FIRST = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    add_common_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = get_model("resnet50", num_classes=1000).eval()
    images = torch.randn(args.batch_size, *input_size("resnet50"), generator=torch.Generator().manual_seed(0))
    settings = {"model": "resnet50", "target_flops": TARGET_FLOPS, "skip_first": SKIP_FIRST,
                "batch_size": args.batch_size, "kernel": "laplacian"}  # fmt: skip
    methods = earlier_record("select_resnet50", settings).get("methods", {})
    for method in args.methods:
        if method in methods:
            print(f"resnet50 {method}: {methods[method]['selection_seconds']} s, timed by a stopped run", flush=True)
            continue
        started = time.perf_counter()
        report = prune(model, images, method=method, target_flops=TARGET_FLOPS, skip_first=SKIP_FIRST,
                       model_name="resnet50").report  # fmt: skip
        methods[method] = {
            "selection_seconds": round(report["seconds"]["selection"], 2),
            "budget_seconds": round(report["seconds"]["budget"], 2),
            "call_seconds": round(time.perf_counter() - started, 2),
            "layers": [
                {key: layer[key] for key in ("name", "channels", "kept", "n_solves")} | {"seconds": round(layer["seconds"], 3)}
                for layer in report["layers"]
            ],
            "totals": report["totals"],
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
