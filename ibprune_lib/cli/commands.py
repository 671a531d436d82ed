"""The commands that train, evaluate, count and prune one network."""

from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import torch

from .. import distributed
from .arguments import check_at_least, load_data

def run_train(args) -> int:
    from ..models import get_model, load_weights
    from ..provenance import provenance, save_json, save_torch
    from ..streaming import test_size
    from ..train import TrainConfig, fit, resolve_device, top1

    device = distributed.setup(resolve_device(args.device))  # under torchrun: join the other processes
    data = load_data(args)
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
    if distributed.is_main():
        out.mkdir(parents=True, exist_ok=True)
    result = fit(model, data, config, checkpoint=out / "checkpoint.pt", test_subset=args.test_subset,
                 normalization=normalization, progress=args.progress)
    weights = {k: v.cpu().half() if v.is_floating_point() else v.cpu() for k, v in model.state_dict().items()}
    weights_file = out / (re.sub(r"[^\w.-]", "_", args.model) + ".pt")
    distributed.run_on_main(lambda: save_torch(weights_file, {"state_dict": weights, "config": asdict(config)}))
    reloaded = load_weights(get_model(args.model, data.num_classes), weights_file).to(device)
    n = min(args.test_subset or test_size(data), test_size(data))
    fp16_top1 = top1(reloaded, data, normalization, limit=n, progress=args.progress)
    if not distributed.is_main():
        return 0
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


def run_eval(args) -> int:
    from ..models import check_outputs, load_model
    from ..streaming import test_size
    from ..train import resolve_device, top1

    check_at_least(("--test-subset", args.test_subset, 1))
    device = distributed.setup(resolve_device(args.device))
    data = load_data(args)
    model, name, _, saved_normalization = load_model(args.weights, args.model, data.num_classes)
    check_outputs(model, name, data.num_classes, data.label)
    model.to(device)
    n = min(args.test_subset or test_size(data), test_size(data))
    accuracy = top1(model.to(memory_format=torch.channels_last), data, args.normalization or saved_normalization,
                    limit=n, progress=args.progress)
    if distributed.is_main():
        print(f"{name}: {data.label} test top-1 {accuracy:.2f}% on {n} images")
    return 0


def run_count(args) -> int:
    from ..counting import count, latency
    from ..models import get_model, input_size, load_model

    check_at_least(("--input-size", args.input_size, 8), ("--num-classes", args.num_classes, 1))
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


def run_prune(args) -> int:
    from ..models import check_outputs, load_model, save_model
    from ..provenance import check_output_file, save_json
    from ..pruning import finetune, prune
    from ..pruning import get_criterion
    from ..pruning.budget import check_round_to
    from ..pruning.pipeline import check_options, resolve_settings
    from ..selection import METHODS as IB_METHODS
    from ..streaming import draw_calibration, recalibration_pool, test_size, training_size
    from ..train import recalibrate_batchnorm, resolve_device, top1

    if (args.target_params is None) == (args.target_flops is None):
        raise ValueError("prune needs exactly one of --target-params and --target-flops")
    if args.kernel is not None and args.method not in IB_METHODS:
        raise ValueError(f"--kernel applies to the information-bottleneck methods ({', '.join(IB_METHODS)}); "
                         f"drop it for --method {args.method}")
    if args.preset != "paper" and args.method not in IB_METHODS:
        raise ValueError(f"--preset applies to the information-bottleneck methods ({', '.join(IB_METHODS)}); "
                         f"drop it for --method {args.method}")
    settings = resolve_settings(args.method, args.preset, kernel=args.kernel, direction=args.direction)
    get_criterion(args.method, args.seed, settings)
    check_options(args.widths, args.target_params, args.target_flops)
    check_round_to(args.round_to)
    check_at_least(("--finetune-epochs", args.finetune_epochs, 0), ("--test-subset", args.test_subset, 0),
                    ("--batch-size", args.batch_size, 2), ("--skip-first", args.skip_first, 0))
    if args.recalibrate_bn is not None and args.recalibrate_bn < 1:
        raise ValueError(f"--recalibrate-bn must be >= 1 batch, got {args.recalibrate_bn}; leave the flag out to skip it")
    out = Path(args.out)
    check_output_file(out, "--out")
    check_output_file(Path(f"{out}.json"), "--out")
    device = distributed.setup(resolve_device(args.device))  # under torchrun: rank 0 selects, every rank fine-tunes
    data = load_data(args)
    model, name, _, saved_normalization = load_model(args.weights, args.model, data.num_classes)
    check_outputs(model, name, data.num_classes, data.label)
    normalization = args.normalization or saved_normalization
    model.to(device)
    if args.batch_size > training_size(data):
        raise ValueError(f"--batch-size must be at most the {training_size(data)} training images, got {args.batch_size}")
    result = distributed.run_on_main(lambda: prune(  # the calibration images are read on rank 0 alone
        model, draw_calibration(data, args.batch_size, args.seed)[0], method=args.method,
        target_params=args.target_params, target_flops=args.target_flops,
        preset=args.preset, settings=settings, skip_first=args.skip_first, widths=args.widths,
        seed=args.seed, beta=args.beta, min_width=args.min_width,
        normalization=normalization, model_name=name, progress=args.progress, reconstruct=args.reconstruct,
        round_to=args.round_to, allocation=args.allocation,
    ))
    report = result.report
    report["settings"]["weights"] = str(args.weights)
    report["settings"]["data"] = data.label
    report["provenance"]["command"] = " ".join(sys.argv)
    n = min(args.test_subset or test_size(data), test_size(data))
    test = lambda m: top1(m, data, normalization, limit=n, progress=args.progress)  # noqa: E731
    stages = report["stages"] = {}
    if args.test_subset != 0:
        stages["unpruned"], stages["pruned"] = test(model), test(result.model)
        report["test_images"] = n
    if args.recalibrate_bn:
        if recalibrate_batchnorm(result.model, recalibration_pool(data), normalization, args.recalibrate_bn, 128, args.seed,
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
    if not distributed.is_main():
        return 0
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
    refit = {k: v for k, v in report.get("reconstruction", {}).items() if "error_after" in v}
    if refit:
        before = sum(v["error_before"] for v in refit.values()) / len(refit)
        after = sum(v["error_after"] for v in refit.values()) / len(refit)
        print(f"reconstruction: {len(refit)} consumers refit, mean relative error on the calibration batch "
              f"{before:.3f} -> {after:.3f}")
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
