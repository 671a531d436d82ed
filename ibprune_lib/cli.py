"""Command line: ``python -m ibprune_lib {train,eval,count,...} --help`` (also installed as ``ibprune``)."""

from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path

import torch

from .provenance import REPO_ROOT
from .runtime import keep_freed_memory


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default=None, choices=("cifar10", "cifar100"), help="default: cifar10")
    parser.add_argument("--data", default=None, help="CIFAR's folder (default: $IBPRUNE_DATA or data/)")
    parser.add_argument("--download", action="store_true", help="let torchvision download CIFAR if missing")
    parser.add_argument("--data-folder", default=None, metavar="PATH",
                        help="your own images instead of CIFAR: PATH/train/<class>/* and PATH/val/<class>/* "
                             "(torchvision's ImageFolder layout), read into memory")
    parser.add_argument("--image-size", type=int, default=None, metavar="N",
                        help="with --data-folder: resize and centre-crop every image to N×N (default: keep the "
                             "files' size, which must then be square and common)")
    parser.add_argument("--normalization", type=_normalization, default=None,
                        help="input normalisation: imagenet (default; the zoo's and torchvision's), cifar, or "
                             "MEAN,MEAN,MEAN/STD,STD,STD in [0, 1] units")


def _normalization(text: str) -> str | tuple:
    """``--normalization``: a name of ``data.NORMALIZATIONS`` or ``m,m,m/s,s,s``."""
    from .data import NORMALIZATIONS, mean_std_for

    if text in NORMALIZATIONS:
        return text
    try:
        return mean_std_for(tuple(tuple(float(v) for v in part.split(",")) for part in text.split("/")))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: choose {', '.join(NORMALIZATIONS)} or MEAN,MEAN,MEAN/STD,STD,STD (e.g. 0.5,0.5,0.5/0.2,0.2,0.2)"
        ) from None


def _model_name(text: str) -> str:
    """``--model``: a zoo name, ``torchvision:NAME`` or ``package.module:factory`` that imports."""
    from .models import MODEL_NAMES, is_model_name, model_factory

    if not is_model_name(text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: choose one of {', '.join(MODEL_NAMES)}, torchvision:NAME or package.module:factory"
        )
    if ":" in text:
        try:
            model_factory(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _threads(text: str) -> int:
    """``--threads``: an int >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give the number of torch threads, an int >= 1")
    return int(text)


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block): the message, and where the help is."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


MODEL_HELP = "a zoo name ({}), torchvision:NAME (e.g. torchvision:resnet18) or package.module:factory"


def _load_data(args):
    """The dataset the flags name: ``--data-folder``'s images, or CIFAR."""
    from .data import load_cifar, load_image_folder

    if args.data_folder is not None:
        if args.dataset is not None or args.data is not None or args.download:
            raise ValueError("--data-folder replaces CIFAR: drop --dataset, --data and --download")
        return load_image_folder(args.data_folder, args.image_size, progress=args.progress)
    if args.image_size is not None:
        raise ValueError("--image-size applies to --data-folder images; CIFAR's are 32×32: drop it")
    return load_cifar(args.dataset or "cifar10", args.data, args.download)


# Library errors name Python parameters; the command line names its flags instead.
PYTHON_NAMES_AS_FLAGS = {
    "target_flops": "--target-flops", "target_params": "--target-params", "skip_first": "--skip-first",
    "min_width": "--min-width", "batch_size": "--batch-size",
}


def _add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")


def _add_progress_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bars (when writing to a log file)")


def _train(args) -> int:
    from .models import get_model, load_weights
    from .provenance import provenance, save_json, save_torch
    from .train import TrainConfig, evaluate, fit, resolve_device

    device = resolve_device(args.device)
    data = _load_data(args)
    normalization = args.normalization or "imagenet"
    config = TrainConfig(
        model=args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
        nesterov=args.nesterov, weight_decay=args.weight_decay, schedule=args.schedule,
        label_smoothing=args.label_smoothing, seed=args.seed, train_subset=args.train_subset,
        precision=args.precision,
    )
    torch.manual_seed(args.seed)
    model = get_model(args.model, data.num_classes)
    if args.init:
        load_weights(model, args.init)
    model.to(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = fit(model, data, config, checkpoint=out / "checkpoint.pt", test_subset=args.test_subset,
                 normalization=normalization, progress=args.progress)
    weights = {k: v.cpu().half() if v.is_floating_point() else v.cpu() for k, v in model.state_dict().items()}
    file_name = re.sub(r"[^\w.-]", "_", args.model) + ".pt"
    weights_file = save_torch(out / file_name, {"state_dict": weights, "config": asdict(config)})
    reloaded = load_weights(get_model(args.model, data.num_classes), weights_file).to(device)
    n = args.test_subset or len(data.x_test)
    fp16_top1 = evaluate(reloaded, data.x_test[:n], data.y_test[:n], normalization, progress=args.progress)
    log = {
        "model": args.model, "dataset": data.label, "config": asdict(config), "history": result.history,
        "normalization": normalization, "test_top1_final": result.test_top1, "test_top1_fp16_file": fp16_top1,
        "test_images": n,
        "wall_seconds": result.wall_seconds, "provenance": provenance(command=" ".join(sys.argv)),
    }
    save_json(out / "log.json", log)
    print(f"{args.model}: {data.label} test top-1 {fp16_top1:.2f}% (fp16 weights, {n} images) after "
          f"{config.epochs} epochs ({result.wall_seconds / 60:.1f} min); weights in {weights_file}")
    return 0


def _eval(args) -> int:
    from .models import check_outputs, load_model
    from .train import evaluate, resolve_device

    _check_at_least(("--test-subset", args.test_subset, 1))
    device = resolve_device(args.device)
    data = _load_data(args)
    model, name, _, saved_normalization = load_model(args.weights, args.model, data.num_classes)
    check_outputs(model, name, data.num_classes, data.label)
    model.to(device)
    n = args.test_subset or len(data.x_test)
    top1 = evaluate(model.to(memory_format=torch.channels_last), data.x_test[:n], data.y_test[:n],
                    args.normalization or saved_normalization, progress=args.progress)
    print(f"{name}: {data.label} test top-1 {top1:.2f}% on {n} images")
    return 0


def _count(args) -> int:
    from .counting import count, latency
    from .models import get_model, input_size, load_model

    _check_at_least(("--input-size", args.input_size, 8), ("--num-classes", args.num_classes, 1))
    if args.weights:
        model, name, size, _ = load_model(args.weights, args.model, args.num_classes)
    else:
        name = args.model
        model, size = get_model(name, args.num_classes), input_size(name)
    if args.input_size is not None:
        size = (3, args.input_size, args.input_size)
    if size is None:
        raise ValueError(f"the input size of {name} is unknown: pass --input-size N (its images are N×N)")
    counts = count(model, size)
    print(f"{name} at {size[1]}×{size[2]}: {counts}\n  exactly: {counts.macs:,} MACs; {counts.params:,} params, "
          f"{counts.params_without_norm:,} without batch norm")
    if args.latency:
        for batch_size in (1, 64):
            timing = latency(model, batch_size, size, threads=args.threads, runtime=args.runtime)
            print(f"  CPU latency ({timing.runtime}), batch {batch_size}: {timing.median_ms:.2f} ms "
                  f"(median of {timing.repeats}, quartiles {timing.q1_ms:.2f}–{timing.q3_ms:.2f}; "
                  f"{timing.threads} threads)")
    return 0


def _check_at_least(*checks: tuple[str, int | None, int]) -> None:
    """Raise a one-line error for the first (flag, value, lowest) whose given value is below its lowest."""
    for flag, value, low in checks:
        if value is not None and value < low:
            raise ValueError(f"{flag} must be >= {low}, got {value}")


def _prune(args) -> int:
    from .data import calibration_batch
    from .models import check_outputs, load_model, save_model
    from .provenance import check_output_file, save_json
    from .pruning import finetune, prune
    from .pruning.pipeline import check_options
    from .selection import METHODS as IB_METHODS
    from .selection import preset_settings
    from .train import evaluate, recalibrate_batchnorm, resolve_device

    if (args.target_params is None) == (args.target_flops is None):
        raise ValueError("prune needs exactly one of --target-params and --target-flops")
    if args.kernel is not None and args.method not in IB_METHODS:
        raise ValueError(f"--kernel applies to the information-bottleneck methods ({', '.join(IB_METHODS)}); "
                         f"drop it for --method {args.method}")
    if args.preset != "paper" and args.method not in IB_METHODS:
        raise ValueError(f"--preset applies to the information-bottleneck methods ({', '.join(IB_METHODS)}); "
                         f"drop it for --method {args.method}")
    args.kernel = preset_settings(args.preset, args.method, args.kernel)["kernel"]
    check_options(args.method, args.kernel, args.direction, args.widths, args.target_params, args.target_flops)
    _check_at_least(("--finetune-epochs", args.finetune_epochs, 0), ("--test-subset", args.test_subset, 0),
                    ("--batch-size", args.batch_size, 2), ("--skip-first", args.skip_first, 0))
    if args.recalibrate_bn is not None and args.recalibrate_bn < 1:
        raise ValueError(f"--recalibrate-bn must be >= 1 batch, got {args.recalibrate_bn}; leave the flag out to skip it")
    out = Path(args.out)
    check_output_file(out, "--out")
    check_output_file(Path(f"{out}.json"), "--out")
    device = resolve_device(args.device)
    data = _load_data(args)
    model, name, _, saved_normalization = load_model(args.weights, args.model, data.num_classes)
    check_outputs(model, name, data.num_classes, data.label)
    normalization = args.normalization or saved_normalization
    model.to(device)
    if args.batch_size > len(data.x_train):
        raise ValueError(f"--batch-size must be at most the {len(data.x_train)} training images, got {args.batch_size}")
    images, _ = calibration_batch(data.x_train, data.y_train, args.batch_size, args.seed)
    result = prune(
        model, images, method=args.method, target_params=args.target_params, target_flops=args.target_flops,
        kernel=args.kernel, preset=args.preset, skip_first=args.skip_first, widths=args.widths,
        direction=args.direction, seed=args.seed, beta=args.beta, min_width=args.min_width,
        normalization=normalization, model_name=name, progress=args.progress,
    )
    report = result.report
    report["settings"]["weights"] = str(args.weights)
    report["settings"]["data"] = data.label
    report["provenance"]["command"] = " ".join(sys.argv)
    n = args.test_subset or len(data.x_test)
    test = lambda m: evaluate(m, data.x_test[:n], data.y_test[:n], normalization,  # noqa: E731
                              progress=args.progress)
    stages = report["stages"] = {}
    if args.test_subset != 0:
        stages["unpruned"], stages["pruned"] = test(model), test(result.model)
        report["test_images"] = n
    if args.recalibrate_bn:
        if recalibrate_batchnorm(result.model, data.x_train, normalization, args.recalibrate_bn, 128, args.seed,
                                 progress=args.progress):
            report["settings"]["recalibrate_bn_batches"] = args.recalibrate_bn
            if args.test_subset != 0:
                stages["recalibrated"] = test(result.model)
        else:
            print(f"{name} has no BatchNorm layers: recalibration skipped")
    checkpoint = Path(f"{out}.finetune-checkpoint.pt")
    if args.finetune_epochs:
        if checkpoint.is_file():
            print(f"resuming the fine-tuning from {checkpoint}")
        history = finetune(result.model, data, name, args.finetune_epochs, lr=args.finetune_lr, seed=args.seed,
                           checkpoint=checkpoint, test_subset=args.test_subset or None, precision=args.precision,
                           normalization=normalization, progress=args.progress)
        report["finetune"] = {"epochs": args.finetune_epochs, "lr": args.finetune_lr, "precision": args.precision,
                              "history": history.history}
        if args.test_subset != 0:
            stages["finetuned"] = test(result.model)
    if stages:
        report["test_top1"] = list(stages.values())[-1]
    _print_report(report, name, args, n)
    save_model(result.model.cpu(), out, name, size=tuple(report["input_size"]), normalization=normalization,
               report=report)
    save_json(f"{out}.json", report)
    if args.finetune_epochs:
        checkpoint.unlink(missing_ok=True)
    print(f"wrote {out} and {out}.json")
    return 0


KEPT_WHOLE_SHOWN = 12
"""How many reasons for keeping convs whole the prune summary lists (the report file lists every conv)."""
KEPT_WHOLE_WIDTH = 90
"""Characters of a reason the prune summary prints (a residual group's reason names every conv of it)."""


def _print_report(report: dict, name: str, args, test_images: int) -> None:
    """The per-layer table, the layers kept whole and why, the totals and every stage's top-1."""
    print(f"{'layer':<24} {'kept':>11} {'lambda':>10} {'solves':>6} {'seconds':>8}")
    for layer in report["layers"]:
        lam = "-" if layer["lam"] is None else f"{layer['lam']:.3g}"
        solves = "-" if layer["n_solves"] is None else str(layer["n_solves"])
        print(f"{layer['name']:<24} {layer['kept']:>5}/{layer['channels']:<5} {lam:>10} {solves:>6} {layer['seconds']:>8.2f}")
    for layer in report["layers"]:
        if layer.get("completed_by"):
            print(f"  {layer['name']}: completed, {layer['completed_by']}")
    if report["kept_whole"]:
        print(f"kept whole ({len(report['kept_whole'])} convs):")
        by_reason = {}  # the convs of one residual group, or the skipped ones, share one line
        for conv, reason in report["kept_whole"].items():
            by_reason.setdefault(reason, []).append(conv)
        shown = list(by_reason.items())[:KEPT_WHOLE_SHOWN]
        for reason, convs in shown:
            label = convs[0] if len(convs) == 1 else f"{convs[0]} and {len(convs) - 1} more"
            print(f"  {label:<26} {textwrap.shorten(reason, KEPT_WHOLE_WIDTH, placeholder=' …')}")
        if len(by_reason) > len(shown) or any(len(reason) > KEPT_WHOLE_WIDTH for reason in by_reason):
            print(f"  every conv and reason in full: {args.out}.json")
    totals = report["totals"]
    print(f"{name} {args.method}: {totals['macs_before'] / 1e6:.2f}M -> {totals['macs_after'] / 1e6:.2f}M MACs "
          f"({100 * totals['macs_ratio']:.1f}% kept), {totals['params_before'] / 1e6:.3f}M -> "
          f"{totals['params_after'] / 1e6:.3f}M params ({100 * totals['params_ratio']:.1f}% kept)")
    if "planned" in totals:
        print(f"note: the budget is not met: layers without signal were kept whole (planned "
              f"{totals['planned']['macs'] / 1e6:.2f}M MACs, {totals['planned']['params'] / 1e6:.3f}M params)")
    labels = {"unpruned": "unpruned", "pruned": "right after pruning",
              "recalibrated": f"after BatchNorm recalibration ({args.recalibrate_bn} batches)",
              "finetuned": f"after {args.finetune_epochs} fine-tuning epochs"}
    for stage, top1 in report["stages"].items():
        print(f"test top-1 {labels[stage]:<44} {top1:6.2f}% on {test_images} images")
    if not args.finetune_epochs:
        print("hint: a pruned network recovers its accuracy by fine-tuning: rerun with --finetune-epochs N (the "
              "papers fine-tune for 30-300 epochs)" + ("" if args.recalibrate_bn else
                                                      "; --recalibrate-bn is a quick, training-free first estimate"))


def parse_until(text: str, now: datetime | None = None, name: str = "--until") -> datetime:
    """``--until``'s moment, local time (``recipes/grid_cpu.sh`` resolves ``UNTIL`` with it once, so that every
    table of the grid reads the same moment).

    Args:
        text: ``HH:MM``, the next time the clock shows it (tomorrow when it is already past today, so that
            ``00:30`` said at 22:00 means in two and a half hours), or an ISO 8601 date and time, local time.
        now: the present moment (default: ``datetime.now()``).
        name: what the errors call ``text``: the flag or variable it came from.

    Raises:
        ValueError: ``text`` is not a time, or an ISO time already past (every cell would be skipped).
    """
    now = now or datetime.now()
    try:
        clock = datetime.strptime(text, "%H:%M")
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{name} {text!r} is not a time: give HH:MM (the next time the clock shows it) or an "
                             "ISO date and time, e.g. 2026-12-02T20:30") from None
        if moment <= now:
            raise ValueError(f"{name} {text!r} is already past (now {now:%Y-%m-%dT%H:%M}): give a later time, or "
                             "HH:MM for the next time the clock shows it")
        return moment
    moment = now.replace(hour=clock.hour, minute=clock.minute, second=0, microsecond=0)
    return moment if moment > now else moment + timedelta(days=1)


def _experiments(args) -> int:
    from .experiments import NOT_RUN_HERE, Grid, distinguishing_settings, status_line
    from .train import resolve_device

    grid = Grid(args.table, args.scale, results=args.results, work=args.work)
    until = None if args.until is None else parse_until(args.until).timestamp()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.action == "list":
        for cell in grid.select(args.cell):
            target, *settings = cell.settings()
            print(f"{cell.id:<32} {cell.model:<10} {cell.method:<7} {cell.widths:<9} {target:<18} " + " ".join(settings))
        return 0
    if args.action == "status":
        states = {cell.id: grid.state(cell) for cell in grid.cells}
        settings = distinguishing_settings(grid.cells)
        width = max(map(len, settings.values()), default=0)
        for cell in grid.select(args.cell):
            state = states[cell.id]
            print(f"{cell.id:<32} {settings[cell.id]:<{width}} {state['state']:<12} {state['detail']}")
        print(status_line(grid, states))
        return 0
    device = resolve_device(args.device)
    outcomes = grid.run(grid.select(args.cell), device, progress=args.progress, until=until)
    failed = [cell.id for cell, outcome in outcomes if outcome.startswith("failed")]
    print(f"{grid.name} ({grid.scale}): " + ", ".join(
        f"{sum(o.startswith(k) for _, o in outcomes)} {k}" for k in ("done", "skipped", "failed", NOT_RUN_HERE)
        if k != NOT_RUN_HERE or any(o.startswith(k) for _, o in outcomes)))
    untimed = [cell.id for cell, outcome in outcomes if outcome.startswith("skipped (not timed yet")]
    if untimed:
        print(f"left {len(untimed)} cell(s) nothing has timed yet, as --until cannot hold for them: run them "
              f"without --until ({', '.join(untimed)})")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    from .kernels import KERNELS
    from .lasso.adaptive import DIRECTIONS
    from .models import MODEL_NAMES
    from .pruning import METHODS, WIDTHS
    from .selection import PRESETS
    from .train import PRECISIONS, SCHEDULES

    parser = OneLineErrorParser(prog="ibprune", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train",
                                help="train a model from scratch (or from --init) on CIFAR or your --data-folder")
    train.add_argument("--model", required=True, type=_model_name, help=MODEL_HELP.format(", ".join(MODEL_NAMES)))
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
    _add_device_argument(train)
    _add_progress_argument(train)
    train.add_argument("--out", required=True, help="run folder: checkpoint.pt (resumed if present), weights, log.json")
    _add_data_arguments(train)
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("eval", help="top-1 of a model on the CIFAR test set or your --data-folder")
    evaluate.add_argument("--model", type=_model_name, default=None,
                          help="needed for weights-only files: " + MODEL_HELP.format(", ".join(MODEL_NAMES)))
    evaluate.add_argument("--weights", required=True, help="a weights file or a saved (pruned) model")
    evaluate.add_argument("--test-subset", type=int, default=None)
    _add_device_argument(evaluate)
    _add_progress_argument(evaluate)
    _add_data_arguments(evaluate)
    evaluate.set_defaults(run=_eval)

    count = commands.add_parser("count", help="MACs and parameters (thop convention), optionally CPU latency")
    count.add_argument("--model", type=_model_name, default=None, help=MODEL_HELP.format(", ".join(MODEL_NAMES)))
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
    count.set_defaults(run=_count)

    prune = commands.add_parser("prune", help="prune filters to a params/FLOPs budget; writes the model and a report")
    prune.add_argument("--model", type=_model_name, default=None,
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
                                    f"{method} with {', '.join(f'{key} {value}' for key, value in settings.items())}"
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
    _add_device_argument(prune)
    _add_progress_argument(prune)
    prune.add_argument("--test-subset", type=int, default=None,
                       help="evaluate on the first N test images (default all; 0 skips the evaluation)")
    prune.add_argument("--out", required=True, help="pruned model file; the report goes to <out>.json")
    _add_data_arguments(prune)
    prune.set_defaults(run=_prune)

    experiments = commands.add_parser(
        "experiments", help="a table of the paper as a resumable grid of cells (experiments/<table>.py)")
    experiments.add_argument("action", choices=("list", "status", "run"))
    experiments.add_argument("table", help="a table under experiments/ (e.g. table1) or a path to a table file")
    experiments.add_argument("--cell", action="append", default=None,
                             help="only this cell id (repeatable); one cell per scheduler task")
    experiments.add_argument("--scale", choices=("smoke", "cpu", "paper"), default=os.environ.get("IBPRUNE_SCALE", "cpu"),
                             help="protocol and results folder (default: $IBPRUNE_SCALE or cpu)")
    _add_device_argument(experiments)
    experiments.add_argument("--results", default=str(REPO_ROOT / "results"),
                             help="results root: <results>/<scale>/<table>/<id>.json (default: results/)")
    experiments.add_argument("--work", default=os.environ.get("IBPRUNE_WORK", str(REPO_ROOT / "runs")),
                             help="working files (checkpoints, locks): <work>/<scale>/<table>/ (default: "
                                  "$IBPRUNE_WORK or runs/; keep it outside the work tree to survive a fresh clone)")
    _add_progress_argument(experiments)
    experiments.add_argument("--until", default=None,
                             help="run: start no cell expected to end after this time, HH:MM (the next time the "
                                  "clock shows it) or ISO date and time, e.g. when the machine goes away "
                                  "(expected: a half-run cell's own fine-tuning epochs, else the done cells of its "
                                  "network, solver and fine-tuning precision, on this CPU with these threads first; "
                                  "a cell nothing has timed is left for a run without --until)")
    experiments.add_argument("--threads", type=_threads, default=None,
                             help="torch threads (default: torch's, which OMP_NUM_THREADS sets); status times the "
                                  "cells to do as a runner of this many threads would take them")
    experiments.set_defaults(run=_experiments)
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
        message = str(error).splitlines()[0]
        for name, flag in PYTHON_NAMES_AS_FLAGS.items():
            message = re.sub(rf"(?<![-\w]){name}\b", flag, message)
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
