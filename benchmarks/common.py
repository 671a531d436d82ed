"""Shared pieces of the benchmarks: real calibration features of VGG-16 and ResNet-56 layers, and the JSON record."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ibprune_lib.data import calibration_batch, load_cifar, normalise
from ibprune_lib.models import get_model, load_weights, weights_dir
from ibprune_lib.provenance import REPO_ROOT, hardware, provenance, save_json
from ibprune_lib.runtime import keep_freed_memory

keep_freed_memory()

RESULTS = Path(__file__).resolve().parent / "results"
LOAD_AT_START = os.getloadavg()
"""The 1-, 5- and 15-minute load averages when the benchmark started (its import of this module): the other work
on the machine, about 0 on a quiet one, 1 per busy core beside it."""


def calibration_images(model_name: str, batch_size: int = 128, seed: int = 0) -> torch.Tensor:
    """A seeded batch of CIFAR-10 training images, normalised for ``model_name`` (data from $IBPRUNE_DATA)."""
    data = load_cifar("cifar10")
    images, _ = calibration_batch(data.x_train, data.y_train, batch_size, seed)
    return normalise(images, model_name)


def default_weights(model_name: str) -> Path | None:
    """A checkpoint for ``model_name``: $IBPRUNE_<MODEL>_WEIGHTS, the shared ResNet-56 weights in
    $IBPRUNE_WEIGHTS, the committed baseline ``results/cpu/baselines/<model>/<model>.pt``, or the newest
    ``runs/*<model>*/*.pt`` of this repository; None if there is none."""
    env = os.environ.get(f"IBPRUNE_{model_name.upper()}_WEIGHTS")
    if env:
        return Path(env)
    shared = weights_dir() / "resnet56-4bfd9763.th"
    if model_name == "resnet56" and shared.is_file():
        return shared
    committed = REPO_ROOT / "results" / "cpu" / "baselines" / model_name / f"{model_name}.pt"
    if committed.is_file():
        return committed
    runs = sorted(Path(__file__).resolve().parent.parent.glob(f"runs/*{model_name}*/*.pt"), key=os.path.getmtime)
    return runs[-1] if runs else None


def load_model(model_name: str, weights: str | os.PathLike | None = None) -> tuple[nn.Module, str]:
    """The model in eval mode with ``weights`` (default: ``default_weights``) loaded; returns (model, source)."""
    model = get_model(model_name)
    weights = weights or default_weights(model_name)
    if weights is not None and Path(weights).is_file():
        load_weights(model, weights)
        path = Path(weights).resolve()
        return model.eval(), str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path.name)
    return model.eval(), "random init (no checkpoint found)"


def step_seconds(model: nn.Module, optimizer, images: torch.Tensor, labels: torch.Tensor, bf16: bool) -> float:
    """Wall time of one SGD step (forward, optionally under bf16 autocast; loss; backward; update)."""
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(images)
    loss = F.cross_entropy(logits.float(), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def add_common_arguments(parser) -> None:
    """--threads and --batch-size, shared by the benchmarks."""
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--batch-size", type=int, default=128, help="calibration images")


def consumer_pairs(model_name: str, model: nn.Module) -> list[tuple[str, nn.Module, nn.Module]]:
    """(name, consumer, module whose output is the consumer's response) of every prunable layer.

    VGG-16 convs 5..13: the candidates are conv l's filters; the consumer is conv l+1 (response: its BN's
    output) or, for conv 13, the first Linear. ResNet-56: the inner conv1 of each block; consumer conv2,
    response bn2's output.
    """
    if model_name == "vgg16":
        convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
        bns = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
        pairs = [(f"conv{l + 1}", convs[l + 1], bns[l + 1]) for l in range(4, 12)]
        linear = model.classifier[0]
        return pairs + [("conv13", linear, linear)]
    blocks = [b for stage in (model.layer1, model.layer2, model.layer3) for b in stage]
    return [(f"block{i + 1}.conv1", b.conv2, b.bn2) for i, b in enumerate(blocks)]


@torch.no_grad()
def layer_features(model: nn.Module, images: torch.Tensor, consumer: nn.Module, response: nn.Module):
    """(consumer's input, response module's output) on ``images``, both cloned (later in-place ReLUs)."""
    captured = {}
    handles = [
        consumer.register_forward_pre_hook(lambda m, args: captured.__setitem__("x", args[0].detach().clone())),
        response.register_forward_hook(lambda m, args, out: captured.__setitem__("y", out.detach().clone())),
    ]
    try:
        model(images)
    finally:
        for h in handles:
            h.remove()
    return captured["x"], captured["y"]


def earlier_record(name: str, settings: dict) -> dict | None:
    """What an earlier run of benchmark ``name`` left in ``results/<name>.json``, when it measured on this machine,
    with this many threads and the same ``settings``: a stopped run can go on from it. ``{}`` when there is none,
    None when the record there was measured elsewhere or otherwise.

    Args:
        name: the benchmark, as given to :func:`record`.
        settings: the payload's entries that decide what is measured; each must equal the earlier record's.
    """
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return {}
    earlier = json.loads(path.read_text())
    same_measurement = earlier.get("hardware") == hardware() and all(
        earlier.get(key) == value for key, value in settings.items()
    )
    return earlier if same_measurement else None


def record(name: str, payload: dict) -> dict:
    """Add provenance and the load averages at the start, write ``results/<name>.json``, print the JSON; returns
    the full record."""
    full = provenance(benchmark=name, argv=sys.argv, load_average_at_start=[round(x, 2) for x in LOAD_AT_START],
                      **payload)  # fmt: skip
    save_json(RESULTS / f"{name}.json", full)
    print(json.dumps(full, indent=2, default=str))
    return full
