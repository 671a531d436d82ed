"""Training-step time in fp32 and with a bf16 forward pass (``TrainConfig.precision``), on the CPU.

For each model: SGD steps on a real CIFAR-10 batch (bs 128, channels_last), fp32 and bf16 steps interleaved so
that both see the same machine load; after warm-up, the median of the timed steps. The ratio fp32 / bf16 is the
speed-up (> 1 means bf16 is faster); it needs a CPU with AVX512-BF16 or AMX (``bf16_in_hardware`` in the
result), and is below 1 without. Prints and writes ``results/train_precision[_<tag>].json``.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from common import add_common_arguments, calibration_images, record, step_seconds

from ibprune_lib.models import get_model
from ibprune_lib.train import has_fast_bf16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet56", "resnet110", "vgg16"])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per precision")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--note", default="", help="conditions worth recording (e.g. another job running)")
    parser.add_argument("--tag", default="", help="suffix of the result file name (e.g. the CPU)")
    add_common_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for name in args.models:
        images = calibration_images(name, args.batch_size).contiguous(memory_format=torch.channels_last)
        labels = torch.arange(len(images)) % 10
        runs = {}
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            model = get_model(name).to(memory_format=torch.channels_last).train()
            runs[precision] = (model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), [])
        for i in range(args.warmup + args.steps):
            for precision, (model, optimizer, times) in runs.items():
                seconds = step_seconds(model, optimizer, images, labels, precision == "bf16")
                if i >= args.warmup:
                    times.append(seconds)
        medians = {precision: statistics.median(times) for precision, (_, _, times) in runs.items()}
        results[name] = {
            "median_step_seconds": {k: round(v, 4) for k, v in medians.items()},
            "speedup_fp32_over_bf16": round(medians["fp32"] / medians["bf16"], 2),
            "epoch_minutes_at_391_steps": {k: round(v * 391 / 60, 2) for k, v in medians.items()},
        }
        print(name, results[name], flush=True)
    record("train_precision" + (f"_{args.tag}" if args.tag else ""),
           {"batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup, "note": args.note,
            "bf16_in_hardware": has_fast_bf16(torch.device("cpu")), "models": results})


if __name__ == "__main__":
    main()
