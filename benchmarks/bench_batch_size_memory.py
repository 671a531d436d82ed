"""Peak memory and seconds of pruning VGG-16 at Table 1's budget, per calibration batch size (Table 3).

Each batch size runs in a fresh Python process that loads only the committed VGG-16 and its calibration batch
(written by this script beforehand), then calls ``prune`` exactly as the ablation cells do (15% of the
parameters kept, the first four prunable layers whole, Laplacian kernel, adaptive λ). The child reports its
resident memory before ``prune`` and its peak resident memory (``ru_maxrss``) after: the difference is what the
pruning itself needed: captured features, the chunked Gram matrices, the regressions. Memory does not depend
on the lasso, so one method (sTLP-IB, the faster) is measured by default. Writes
``results/batch_size_memory.json``. Run it on a quiet machine (pause the grid: ``kill -STOP``/``-CONT``).

    python benchmarks/bench_batch_size_memory.py --batch-sizes 64 128 256 512 1024
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import calibration_images, load_benchmark_model, record

from ibprune_lib.harness.grid import load_table
from ibprune_lib.pruning import prune

MIB = 2**20


def resident_mib() -> float:
    """This process's resident memory now (Linux ``/proc``), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / MIB
    raise RuntimeError("no VmRSS in /proc/self/status: this benchmark needs Linux")


def peak_mib() -> float:
    """This process's peak resident memory so far (``ru_maxrss``, KiB on Linux), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MIB


def table1_vgg16_cell(method: str):
    """The Table 1 VGG-16 cell of ``method`` at cpu scale (weights, budget, kernel, skipped layers)."""
    return next(c for c in load_table("table1", "cpu") if c.model == "vgg16" and c.method == method)


def child(images_file: Path, method: str, threads: int) -> None:
    """Prune once and print one JSON line: memory before, peak, and seconds."""
    torch.set_num_threads(threads)
    cell = table1_vgg16_cell(method)
    model, _ = load_benchmark_model("vgg16", cell.weights_path())
    images = torch.load(images_file)
    before = resident_mib()
    tic = time.perf_counter()
    report = prune(model, images, model_name="vgg16", progress=False, **cell.prune_arguments()).report
    seconds = time.perf_counter() - tic
    print(json.dumps({
        "resident_before_mib": round(before, 1), "peak_mib": round(peak_mib(), 1),
        "prune_seconds": round(seconds, 2), "selection_seconds": round(report["seconds"]["selection"], 2),
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[64, 128, 256, 512, 1024])
    parser.add_argument("--method", default="stlp", choices=["stlp", "sglp", "apib", "lasso"])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.method, args.threads)
        return
    if any(n < 1 for n in args.batch_sizes):
        parser.error("--batch-sizes: every size must be >= 1")
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for batch_size in args.batch_sizes:
            images_file = Path(tmp) / f"images-{batch_size}.pt"
            torch.save(calibration_images("vgg16", batch_size), images_file)
            command = [sys.executable, __file__, "--child", str(images_file), "--method", args.method,
                       "--threads", str(args.threads)]  # fmt: skip
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            sizes[str(batch_size)] = measured = json.loads(out.strip().splitlines()[-1])
            measured["pruning_mib"] = round(measured["peak_mib"] - measured["resident_before_mib"], 1)
            print(f"batch {batch_size}: {measured}", flush=True)
    cell = table1_vgg16_cell(args.method)
    record(
        "batch_size_memory",
        {
            "model": "vgg16", "weights": cell.weights, "method": args.method, "kernel": cell.kernel,
            "budget": {"target_params": cell.target_params}, "skip_first": cell.skip_first, "threads": args.threads,
            "memory": "resident memory of a fresh process holding only the network and its calibration batch: "
                      "before prune, and its peak (ru_maxrss) after; pruning_mib is their difference",
            "batch_sizes": sizes,
        },
    )  # fmt: skip


if __name__ == "__main__":
    main()
