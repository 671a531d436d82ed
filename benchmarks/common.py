"""Shared pieces of the benchmarks: real calibration features of VGG-16 and ResNet-56 layers, and the JSON record."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

# This checkout's library, whatever the environment has installed: a benchmark run from a worktree or a clone
# must run, and record the commit of, the code beside it (an editable install points at another checkout).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from torch import nn
from torch.nn import functional as F

from ibprune_lib.harness import book
from ibprune_lib.models import get_model, load_weights
from ibprune_lib.paths import REPO_ROOT, weights_dir
from ibprune_lib.provenance import hardware, provenance, save_json
from ibprune_lib.pruning import capture, survey_layers
from ibprune_lib.runtime import keep_freed_memory

keep_freed_memory()

RESULTS = Path(__file__).resolve().parent / "results"
LOAD_AT_START = os.getloadavg()
"""The 1-, 5- and 15-minute load averages when the benchmark started (its import of this module): the other work
on the machine, about 0 on a quiet one, 1 per busy core beside it."""


def calibration_images(model_name: str, batch_size: int = 128, seed: int = 0) -> torch.Tensor:
    """A seeded batch of CIFAR-10 training images in draw order, normalised for ``model_name``, drawn as the grid
    draws (not class-balanced) through the notebooks' ``book.calibration``."""
    images, _ = book.calibration(batch_size, seed, model_name, sort_by_class=False, class_balanced=False)
    return images


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


def load_benchmark_model(model_name: str, weights: str | os.PathLike | None = None) -> tuple[nn.Module, str]:
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


def layer_features(
    model_name: str, model: nn.Module, images: torch.Tensor
) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, X, Y) of every layer Table 1 prunes, through the library's own capture (``pruning.capture``, rows):
    X (bs, c, h, w) the consumer's input at the layer's channels, Y its response. VGG-16: the convs past the first
    four (the last one's consumer is the first Linear); ResNet-56: every block's conv1 (consumer conv2, response
    bn2's output)."""
    skip_first = 4 if model_name == "vgg16" else 0
    layers = survey_layers(model, tuple(images.shape[1:]), skip_first).prunable
    return [(layer.name, features.inputs.clone(), features.outputs.clone())
            for layer, features in capture(model, images, layers)]


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
