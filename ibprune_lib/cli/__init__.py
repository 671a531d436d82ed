"""Command line: ``python -m ibprune_lib {train,eval,count,...} --help`` (also installed as ``ibprune``)."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import OptionError
from ..paths import results_dir, work_dir
from ..runtime import keep_freed_memory
from .arguments import (
    MODEL_HELP,
    OneLineErrorParser,
    add_data_arguments,
    add_device_argument,
    add_progress_argument,
    model_name,
    threads,
)
from .commands import run_count, run_eval, run_prune, run_train
from .experiments import parse_until, run_experiments

# How the command line names the options that library errors (``errors.OptionError``) name as Python parameters.
PYTHON_NAMES_AS_FLAGS = {
    "target_flops": "--target-flops", "target_params": "--target-params", "skip_first": "--skip-first",
    "min_width": "--min-width", "batch_size": "--batch-size", "round_to": "--round-to",
    "allocation": "--allocation", "widths": "--widths", "device": "--device", "image_size": "--image-size",
    "batches": "--recalibrate-bn",
}


def build_parser() -> argparse.ArgumentParser:
    from ..kernels import KERNELS
    from ..lasso.adaptive import DIRECTIONS
    from ..models import MODEL_NAMES
    from ..pruning import METHODS, WIDTHS
    from ..harness.grid.protocol import SCALES
    from ..settings import PRESETS
    from ..train import PRECISIONS, SCHEDULES

    parser = OneLineErrorParser(prog="ibprune", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train",
                                help="train a model from scratch (or from --init) on CIFAR or your --data-folder")
    train.add_argument("--model", required=True, type=model_name, help=MODEL_HELP.format(", ".join(MODEL_NAMES)))
    train.add_argument("--epochs", type=int, default=200)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--lr", type=float, default=0.1)
    train.add_argument("--momentum", type=float, default=0.9)
    train.add_argument("--nesterov", action="store_true")
    train.add_argument("--weight-decay", type=float, default=5e-4)
    train.add_argument("--schedule", choices=SCHEDULES, default="cosine")
    train.add_argument("--label-smoothing", type=float, default=0.0)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--precision", choices=PRECISIONS, default="fp32",
                       help="bf16: mixed-precision forward pass (fp32 weights), faster on CPUs with AVX512-BF16/AMX")
    train.add_argument("--train-subset", type=int, default=None, help="train on N seeded images (smoke runs)")
    train.add_argument("--test-subset", type=int, default=None, help="evaluate on the first N test images")
    train.add_argument("--init", default=None, help="start from these weights")
    add_device_argument(train)
    add_progress_argument(train)
    train.add_argument("--out", required=True, help="run folder: checkpoint.pt (resumed if present), weights, log.json")
    add_data_arguments(train)
    train.set_defaults(run=run_train)

    evaluate = commands.add_parser("eval", help="top-1 of a model on the CIFAR test set or your --data-folder")
    evaluate.add_argument("--model", type=model_name, default=None,
                          help="needed for weights-only files: " + MODEL_HELP.format(", ".join(MODEL_NAMES)))
    evaluate.add_argument("--weights", required=True, help="a weights file or a saved (pruned) model")
    evaluate.add_argument("--test-subset", type=int, default=None)
    add_device_argument(evaluate)
    add_progress_argument(evaluate)
    add_data_arguments(evaluate)
    evaluate.set_defaults(run=run_eval)

    count = commands.add_parser("count", help="MACs and parameters (thop convention), optionally CPU latency")
    count.add_argument("--model", type=model_name, default=None, help=MODEL_HELP.format(", ".join(MODEL_NAMES)))
    count.add_argument("--weights", default=None, help="count a saved (pruned) model instead")
    count.add_argument("--num-classes", type=int, default=None,
                       help="default: 1000 for resnet50 and torchvision's models, else 10")
    count.add_argument("--input-size", type=int, default=None, metavar="N",
                       help="count at N×N images (default: the saved model's or the zoo's: 32, 224 for resnet50 and "
                            "torchvision's models)")
    count.add_argument("--latency", action="store_true", help="also time batch 1 and 64 on the CPU")
    count.add_argument("--runtime", default="eager", choices=("eager", "onnxruntime"),
                       help="what runs the timed forwards: eager PyTorch (default) or the ONNX export in ONNX Runtime")
    count.add_argument("--threads", type=int, default=None)
    count.set_defaults(run=run_count)

    prune = commands.add_parser("prune", help="prune filters to a params/FLOPs budget; writes the model and a report")
    prune.add_argument("--model", type=model_name, default=None,
                       help="needed for weights-only files: " + MODEL_HELP.format(", ".join(MODEL_NAMES)))
    prune.add_argument("--weights", required=True, help="the trained model's weights (or a saved model)")
    prune.add_argument("--method", default="stlp", choices=METHODS, help="the criterion (default: stlp)")
    prune.add_argument("--target-params", type=float, default=None, help="keep ratio of the parameters, in (0, 1]")
    prune.add_argument("--target-flops", type=float, default=None, help="keep ratio of the MACs, in (0, 1]")
    prune.add_argument("--kernel", default=None, choices=KERNELS,
                       help="Gram kernel of the information-bottleneck methods (default: the preset's)")
    prune.add_argument("--preset", default="paper", choices=tuple(PRESETS),
                       help="settings of the information-bottleneck methods, the paper's stated ones (default) or "
                            "the settings study's (notebook 06b): " + "; ".join(
                                f"{name}: " + ("; ".join(
                                    f"{method} with " + ", ".join(f"{key} {value}"
                                                                  for key, value in settings.changes().items())
                                    for method, settings in methods.items()) or "as the paper states them")
                                for name, methods in PRESETS.items()))
    prune.add_argument("--direction", default="rows", choices=DIRECTIONS,
                       help="which side of the regression holds the candidates (default: rows; see the book's "
                            "formulation page)")
    prune.add_argument("--batch-size", type=int, default=128, help="calibration images from the training set")
    prune.add_argument("--seed", type=int, default=0, help="calibration draw, random baseline, fine-tuning")
    prune.add_argument("--skip-first", type=int, default=4, help="leading prunable layers kept whole (default 4)")
    prune.add_argument("--widths", default="uniform", choices=WIDTHS,
                       help="uniform (one shared ratio, default) or itpruner (ITPruner's per-layer widths)")
    prune.add_argument("--beta", type=float, default=500.0, help="ITPruner's beta (default 500, its ResNet-56 value)")
    prune.add_argument("--min-width", type=float, default=None,
                       help="ITPruner's lower bound on a layer's keep ratio (default: one channel)")
    prune.add_argument("--finetune-epochs", type=int, default=0,
                       help="fine-tuning epochs (default 0); checkpointed every epoch to "
                            "<out>.finetune-checkpoint.pt, so rerunning the same command resumes a killed run")
    prune.add_argument("--finetune-lr", type=float, default=0.01, help="initial fine-tuning learning rate (cosine to 0)")
    prune.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fine-tuning precision (see train)")
    prune.add_argument("--recalibrate-bn", type=int, nargs="?", const=40, default=None, metavar="N",
                       help="recompute the BatchNorm statistics on N training batches of 128 after pruning "
                            "(the flag alone: 40, enough for the CIFAR networks); off when left out")
    prune.add_argument("--allocation", choices=("uniform", "global"), default="uniform",
                       help="uniform: one shared keep ratio per layer (the paper's, default); global: the widths from "
                            "one threshold on the criterion's per-layer normalised scores, at least --min-width "
                            "(default 0.1) of each layer")
    prune.add_argument("--round-to", type=int, default=1, metavar="N",
                       help="keep a multiple of N channels in every pruned layer, the budget still met (widths a "
                            "runtime's kernels like, e.g. 8 or 16; default 1: any width)")
    prune.add_argument("--reconstruct", action="store_true",
                       help="refit each pruned layer's consumer by least squares to the unpruned network's output "
                            "on the calibration images (ThiNet-style); the report gives each one's error")
    add_device_argument(prune)
    add_progress_argument(prune)
    prune.add_argument("--test-subset", type=int, default=None,
                       help="evaluate on the first N test images (default all; 0 skips the evaluation)")
    prune.add_argument("--out", required=True, help="pruned model file; the report goes to <out>.json")
    add_data_arguments(prune)
    prune.set_defaults(run=run_prune)

    experiments = commands.add_parser(
        "experiments", help="a table of the paper as a resumable grid of cells (experiments/<table>.py)")
    experiments.add_argument("action", choices=("list", "status", "run"))
    experiments.add_argument("table", help="a table under experiments/ (e.g. table1) or a path to a table file")
    experiments.add_argument("--cell", action="append", default=None,
                             help="only this cell id (repeatable); one cell per scheduler task")
    experiments.add_argument("--scale", choices=SCALES, default=os.environ.get("IBPRUNE_SCALE", "cpu"),
                             help="protocol and results folder (default: $IBPRUNE_SCALE or cpu)")
    add_device_argument(experiments)
    experiments.add_argument("--results", default=str(results_dir()),
                             help="results root: <results>/<scale>/<table>/<id>.json (default: $IBPRUNE_RESULTS or "
                                  "results/)")
    experiments.add_argument("--work", default=str(work_dir()),
                             help="working files (checkpoints, locks): <work>/<scale>/<table>/ (default: "
                                  "$IBPRUNE_WORK or runs/; keep it outside the work tree to survive a fresh clone)")
    add_progress_argument(experiments)
    experiments.add_argument("--until", default=None,
                             help="run: start no cell expected to end after this time, HH:MM (the next time the "
                                  "clock shows it) or ISO date and time, e.g. when the machine goes away "
                                  "(expected: a half-run cell's own fine-tuning epochs, else the done cells of its "
                                  "network, solver and fine-tuning precision, on this CPU with these threads first; "
                                  "a cell nothing has timed is left for a run without --until)")
    experiments.add_argument("--threads", type=threads, default=None,
                             help="torch threads (default: torch's, which OMP_NUM_THREADS sets); status times the "
                                  "cells to do as a runner of this many threads would take them")
    experiments.set_defaults(run=run_experiments)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; errors a user can fix print one line and exit 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    keep_freed_memory()
    if args.command == "count":
        if args.model is None and args.weights is None:
            parser.error("count needs --model or --weights")
        if args.num_classes is None:
            args.num_classes = 1000 if args.model == "resnet50" or str(args.model).startswith("torchvision:") else 10
    try:
        return args.run(args)
    except (FileNotFoundError, ValueError) as error:
        message = error.worded(PYTHON_NAMES_AS_FLAGS) if isinstance(error, OptionError) else str(error)
        print(f"error: {message.splitlines()[0]}", file=sys.stderr)
        return 2


__all__ = ["build_parser", "main", "parse_until"]
