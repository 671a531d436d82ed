"""Which torchvision classification CNNs can be pruned, here and by Torch-Pruning: every model of torchvision.models.

Structure only, not accuracy: each model has its seeded initial weights, its BatchNorm statistics set on the
calibration batch (so that activations have the scale of a trained network's: at initial statistics the deep
layers of MobileNetV3 output ~1e-7 and their Gram matrices round to zero in float32), and the calibration batch is
16 seeded uniform uint8 images at the model's natural input size (its default weights' crop). Each model is pruned to
70% of its MACs, every prunable layer included (``skip_first=0``), with L1-norm and with sTLP-IB, through
``prune(model, images, ...)``; and by Torch-Pruning's ``MetaPruner`` with L1 magnitude importance, the field's
reference, in steps of its channel ratio until the MACs fall to 70% (its torchvision example's way; the final
classifier left whole, as there). Per model and tool: ``pruned`` (the MACs ratio reached and the seconds),
``refused`` (our one-line reason: the structure cannot be traced, or the prunable layers cannot reach 70%; with the
smallest MACs ratio they can reach) or ``failed`` (an exception: its type and message). A model is recorded as soon
as it finishes, so a stopped run goes on with ``--keep-earlier``.

    python benchmarks/bench_torchvision_zoo.py                        # every model (hours)
    python benchmarks/bench_torchvision_zoo.py --models resnet18 efficientnet_b0 --keep-earlier
    python benchmarks/bench_torchvision_zoo.py --size 64     # one side for all (a ViT keeps its own): faster

The structure found does not depend on the input size, but a model that needs a fixed size (a vision transformer)
keeps its natural one under ``--size``.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch_pruning as tp
import torchvision
from torch import nn

from common import add_common_arguments, earlier_record, record

from ibprune_lib.counting import count
from ibprune_lib.data import normalise
from ibprune_lib.provenance import git_commit
from ibprune_lib.pruning import count_model, prune, survey_layers

TARGET_MACS = 0.7
METHODS = ("l1", "stlp")


def natural_size(name: str) -> int:
    """The crop side of ``name``'s default torchvision weights (224 for most, 299 for Inception v3)."""
    crop = torchvision.models.get_model_weights(name).DEFAULT.transforms().crop_size
    return int(crop[0] if isinstance(crop, (list, tuple)) else crop)


def initial_model(name: str, images: torch.Tensor) -> nn.Module:
    """``name`` with seeded initial weights and its BatchNorm statistics those of ``images`` (eval mode)."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, num_classes=1000)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over the batch
    with torch.no_grad():
        model.train()(normalise(images, "imagenet"))
    return model.eval()


def smallest_ratio(model: nn.Module, size: int) -> float | None:
    """The MACs ratio with every prunable layer at one channel: no budget below it is reachable (None: nothing to
    prune)."""
    try:
        layers = survey_layers(model, (3, size, size), skip_first=0).prunable
    except ValueError:
        return None
    return count_model(model, layers, (3, size, size)).ratio([1] * len(layers))


def ours(model: nn.Module, images: torch.Tensor, method: str) -> dict:
    """``prune`` to TARGET_MACS with ``method``: pruned, refused (a ValueError: the library's one-line refusals)
    or failed (any other exception)."""
    started = time.perf_counter()
    try:
        report = prune(model, images, method=method, target_flops=TARGET_MACS, skip_first=0, progress=False).report
    except ValueError as error:  # OptionError too
        return {"outcome": "refused", "reason": str(error), "seconds": round(time.perf_counter() - started, 1)}
    except Exception as error:  # noqa: BLE001 (the benchmark counts what escapes as a failure)
        return {"outcome": "failed", "error": f"{type(error).__name__}: {error}"[:500],
                "seconds": round(time.perf_counter() - started, 1)}
    totals = report["totals"]
    return {"outcome": "pruned", "macs_ratio": round(totals["macs_ratio"], 4),
            "params_ratio": round(totals["params_ratio"], 4), "layers_pruned": len(report["layers"]),
            "convs_kept_whole": len(report["kept_whole"]), "seconds": round(time.perf_counter() - started, 1)}


def torch_pruning(model: nn.Module, size: int) -> dict:
    """Torch-Pruning's ``MetaPruner`` (L1 magnitude), stepped until the MACs fall to TARGET_MACS; the pruned model
    must still run."""
    started = time.perf_counter()
    example = torch.zeros(1, 3, size, size)
    try:
        classifier = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == 1000]
        pruner = tp.pruner.MetaPruner(model, example, importance=tp.importance.MagnitudeImportance(p=1),
                                      pruning_ratio=0.9, iterative_steps=30, ignored_layers=classifier)
        full = count(model, (3, size, size)).macs
        ratio = 1.0
        for _ in range(30):
            pruner.step()
            ratio = count(model, (3, size, size)).macs / full
            if ratio <= TARGET_MACS:
                break
        with torch.no_grad():
            model(example)
    except Exception as error:  # noqa: BLE001
        return {"outcome": "failed", "error": f"{type(error).__name__}: {error}"[:500],
                "seconds": round(time.perf_counter() - started, 1)}
    if ratio > TARGET_MACS * 1.01:
        return {"outcome": "refused", "reason": f"its steps stopped at {ratio:.3f} of the MACs",
                "seconds": round(time.perf_counter() - started, 1)}
    return {"outcome": "pruned", "macs_ratio": round(ratio, 4), "seconds": round(time.perf_counter() - started, 1)}


FIXED_SIZE = ("vit_", "swin_", "maxvit_")
"""Name prefixes of the models that only take their natural input size."""


def zoo_model(name: str, n_images: int, size: int | None = None) -> dict:
    """Every tool's outcome on ``name`` at ``size`` (None, or a model in FIXED_SIZE: its natural one)."""
    size = natural_size(name) if size is None or name.startswith(FIXED_SIZE) else size
    images = torch.randint(0, 256, (n_images, 3, size, size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    model = initial_model(name, images)
    row = {"input_size": size, "smallest_macs_ratio": smallest_ratio(model, size)}
    for method in METHODS:
        row[method] = ours(model, images, method)
    row["torch_pruning"] = torch_pruning(model, size)  # last: it prunes the model in place
    return row | {"commit": git_commit()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None,
                        help="torchvision model names (default: every classification model)")
    parser.add_argument("--keep-earlier", action="store_true",
                        help="keep the models results/torchvision_zoo.json holds and run the others")
    parser.add_argument("--size", type=int, default=None,
                        help="one input side for every model that takes any (default: each model's natural crop)")
    add_common_arguments(parser)
    parser.set_defaults(batch_size=16)
    args = parser.parse_args()
    every = torchvision.models.list_models(module=torchvision.models)
    unknown = sorted(set(args.models or []) - set(every))
    if unknown:
        print(f"--models: {', '.join(unknown)} not in torchvision.models' classification models", file=sys.stderr)
        sys.exit(2)
    torch.set_num_threads(args.threads)
    if args.size is not None and args.size < 32:
        print(f"--size {args.size}: give at least 32 pixels", file=sys.stderr)
        sys.exit(2)
    settings = {"target_macs": TARGET_MACS, "calibration_images": args.batch_size, "size": args.size,
                "torchvision": torchvision.__version__, "torch_pruning": tp.__version__}
    earlier = earlier_record("torchvision_zoo", settings) if args.keep_earlier else {}
    if earlier is None:
        print("--keep-earlier: results/torchvision_zoo.json was measured on another machine or with other settings; "
              "drop the flag to start the record over", file=sys.stderr)
        sys.exit(2)
    models = dict(earlier.get("models", {}))
    for name in args.models or every:
        if name in models:
            continue
        models[name] = zoo_model(name, args.batch_size, args.size)
        outcomes = {tool: models[name][tool]["outcome"] for tool in (*METHODS, "torch_pruning")}
        print(f"{name}: {outcomes}", file=sys.stderr, flush=True)
        record("torchvision_zoo", {
            "weights": "seeded initial weights, BatchNorm statistics of the calibration batch: structure only",
            "images": f"{args.batch_size} seeded uniform uint8 images at "
                      + ("each model's natural crop" if args.size is None else f"{args.size} px (a ViT: its own)"),
            **settings,
            "models": models,
            "counts": {tool: {outcome: sum(row[tool]["outcome"] == outcome for row in models.values())
                              for outcome in ("pruned", "refused", "failed")} for tool in (*METHODS, "torch_pruning")},
        })


if __name__ == "__main__":
    main()
