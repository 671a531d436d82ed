"""Training throughput of one grid runner with every core against one single-thread runner per core.

The grid fine-tunes small pruned CIFAR networks, whose convolutions split poorly over threads. For each
Table 1 network, pruned to its Table 1 budget by L1-norm (the shapes the grid trains; weights seeded, since the
time of a step does not depend on them): SGD steps of the cpu scale's recipe (batch 128, channels_last, its
precision) in one process with ``--threads`` threads, then in ``--threads`` processes of one thread each, all
timed together. Throughput is training steps a second over all processes; the ratio is what
``recipes/grid_cpu.sh`` gains by starting one runner per core. Prints and writes ``results/grid_runners.json``.
Run it on an otherwise idle machine (pause the grid: ``kill -STOP``, then ``kill -CONT``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time

import torch

from common import record, step_seconds

from ibprune_lib.harness.grid import PROTOCOLS, load_table
from ibprune_lib.models import get_model
from ibprune_lib.pruning import prune

RECIPE = PROTOCOLS["cpu"].finetune


def pruned_network(name: str) -> torch.nn.Module:
    """``name`` (seeded weights) pruned by L1-norm to the budget of its Table 1 cells."""
    cell = next(c for c in load_table("table1", "cpu") if c.model == name and c.method == "l1" and c.widths == "uniform")
    torch.manual_seed(0)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    result = prune(get_model(name), images, method="l1", target_params=cell.target_params,
                   target_flops=cell.target_flops, skip_first=cell.skip_first, normalization=name, progress=False)
    return result.model


def time_steps(model: torch.nn.Module, threads: int, steps: int, warmup: int, start=None) -> dict:
    """Median step seconds and wall seconds of ``steps`` SGD steps after ``warmup``, on ``threads`` threads;
    ``start`` (a barrier) lines up the timed steps of concurrent processes."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=RECIPE.momentum, nesterov=RECIPE.nesterov,
                                weight_decay=RECIPE.weight_decay)
    images = torch.randn(RECIPE.batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (RECIPE.batch_size,))

    bf16 = RECIPE.precision == "bf16"
    for _ in range(warmup):
        step_seconds(model, optimizer, images, labels, bf16)
    if start is not None:
        start.wait()
    began = time.perf_counter()
    times = [step_seconds(model, optimizer, images, labels, bf16) for _ in range(steps)]
    return {"median_step_seconds": statistics.median(times), "wall_seconds": time.perf_counter() - began}


def _worker(model, steps, warmup, start, results) -> None:
    results.put(time_steps(model, 1, steps, warmup, start))


def concurrent_runners(model: torch.nn.Module, runners: int, steps: int, warmup: int) -> list[dict]:
    """``time_steps`` in ``runners`` single-thread processes at once."""
    context = mp.get_context("spawn")
    start, results = context.Barrier(runners), context.Queue()
    processes = [context.Process(target=_worker, args=(model, steps, warmup, start, results)) for _ in range(runners)]
    for process in processes:
        process.start()
    timings = [results.get() for _ in processes]
    for process in processes:
        process.join()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet56", "resnet110", "vgg16"])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="threads of the one runner, and the number of single-thread runners")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--note", default="", help="conditions worth recording (e.g. another job running)")
    args = parser.parse_args()
    results = {}
    for name in args.models:
        model = pruned_network(name)
        one = time_steps(model, args.threads, args.steps, args.warmup)
        many = concurrent_runners(model, args.threads, args.steps, args.warmup)
        one_rate = args.steps / one["wall_seconds"]
        many_rate = sum(args.steps / timing["wall_seconds"] for timing in many)
        results[name] = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "one_runner": {"threads": args.threads, "steps_per_second": round(one_rate, 3),
                           "median_step_seconds": round(one["median_step_seconds"], 4)},
            "single_thread_runners": {"runners": args.threads, "steps_per_second": round(many_rate, 3),
                                      "median_step_seconds": [round(t["median_step_seconds"], 4) for t in many]},
            "throughput_ratio": round(many_rate / one_rate, 2),
        }
        print(name, results[name], flush=True)
    record("grid_runners", {"precision": RECIPE.precision, "batch_size": RECIPE.batch_size, "steps": args.steps,
                            "warmup": args.warmup, "weights": "seeded (a step's time does not depend on them)",
                            "note": args.note, "models": results})


if __name__ == "__main__":
    main()
