"""``prune``: calibration batch → features → per-layer selection → surgery → report; and ``finetune``.

    result = prune(model, "resnet56", calibration_images, method="stlp", target_flops=0.5)
    result.model   # a smaller dense nn.Module (the input model is untouched)
    result.report  # per layer: channels before/after, λ, solves, seconds; totals; provenance
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from ..counting import count
from ..data import CifarData, normalise
from ..models import input_size as model_input_size
from ..provenance import provenance
from ..train import TrainConfig, TrainResult, fit
from .budget import CountModel, check_keep_counts, count_model, keep_counts_for_target, target_range
from .capture import capture
from .criteria import Criterion, get_criterion
from .itpruner import DEFAULT_BETA, itpruner_keep_counts
from .layers import prunable_layers
from .surgery import prune_channels

WIDTHS = ("uniform", "itpruner")


@dataclass
class PruneResult:
    """A pruned model and how it was made.

    Attributes:
        model: the pruned copy, a dense ``nn.Module`` in eval mode.
        report: JSON-ready: ``layers`` (name, channels, kept, kept indices, λ, solves, seconds), ``totals``
            (MACs/params before, after, ratios), ``settings``, ``seconds`` and ``provenance``.
    """

    model: nn.Module
    report: dict


def check_options(
    method: str,
    kernel: str = "laplacian",
    direction: str = "rows",
    widths: str = "uniform",
    target_params=None,
    target_flops=None,
    keep_counts=None,
) -> tuple[str, object] | None:
    """Validate ``prune``'s options before any work; returns (metric, target) or None for explicit counts.

    Raises:
        ValueError: unknown method, kernel, direction or widths; not exactly one of the targets and
            ``keep_counts``; a target outside (0, 1]; ITPruner widths with explicit counts.
    """
    get_criterion(method, kernel, direction)
    if widths not in WIDTHS:
        raise ValueError(f"unknown widths {widths!r}: choose one of {', '.join(WIDTHS)}")
    given = [name for name, value in (("target_params", target_params), ("target_flops", target_flops),
                                      ("keep_counts", keep_counts)) if value is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of target_params, target_flops, keep_counts (got {given or 'none'})")
    if keep_counts is not None:
        if widths != "uniform":
            raise ValueError("explicit keep_counts leave nothing for widths='itpruner' to choose")
        return None
    metric, target = ("params", target_params) if target_params is not None else ("macs", target_flops)
    target_range(target, "target_params" if metric == "params" else "target_flops")
    return metric, target


def _layer_record(layer, k: int, selection) -> dict:
    diagnostics = selection.diagnostics
    return {
        "name": layer.name,
        "channels": layer.channels,
        "kept": k,
        "kept_indices": selection.kept.tolist(),
        "lam": diagnostics.get("lam"),
        "n_solves": diagnostics.get("n_solves"),
        "seconds": diagnostics.get("seconds"),
    }


def _select_all(criterion: Criterion, model, images, layers, keep, progress: bool) -> list[dict]:
    features = capture(model, images, layers, criterion.features) if criterion.features else ((l, None) for l in layers)
    records = []
    bar = tqdm(zip(features, keep), total=len(layers), desc=criterion.name, disable=not progress)
    for (layer, layer_features), k in bar:
        bar.set_postfix_str(f"{layer.name} {k}/{layer.channels}")
        records.append(_layer_record(layer, k, criterion(layer, layer_features, k)))
    return records


def prune(
    model: nn.Module,
    model_name: str,
    calibration_images: torch.Tensor,
    method: str = "stlp",
    target_params: float | tuple[float, float] | None = None,
    target_flops: float | tuple[float, float] | None = None,
    keep_counts: list[int] | None = None,
    kernel: str = "laplacian",
    skip_first: int = 4,
    widths: str = "uniform",
    direction: str = "rows",
    seed: int = 0,
    beta: float = DEFAULT_BETA,
    min_width: float | None = None,
    progress: bool = True,
    **select_options,
) -> PruneResult:
    """Prune ``model``'s filters with ``method`` to a budget.

    Args:
        model: the trained network (not modified).
        model_name: its zoo name (input size, normalisation).
        calibration_images: (bs, 3, h, w) uint8 images (normalised here) or float model inputs, bs ≥ 2.
        method: one of ``criteria.METHODS``: ``stlp``, ``sglp``, ``apib``, ``lasso``, ``l1``, ``random``,
            ``hrank``, ``fpgm``.
        target_params: keep ratio in (0, 1] of the parameters, or a (lo, hi) range;
        target_flops: … or of the MACs; give exactly one of the two or ``keep_counts``.
        keep_counts: explicit channels to keep per prunable layer.
        kernel: the Gram kernel of the information-bottleneck methods.
        skip_first: leading prunable layers left at full width.
        widths: ``"uniform"`` (one shared keep ratio) or ``"itpruner"`` (ITPruner's per-layer widths).
        direction: ``"rows"`` or ``"columns"`` (book/formulation.md §1), for the information-bottleneck methods.
        seed: seeds the random baseline.
        beta, min_width: ITPruner's β and lower width bound.
        progress: show a tqdm bar over the layers.
        **select_options: passed to :func:`ibprune_lib.selection.select`.

    Returns:
        The PruneResult.

    Raises:
        ValueError: bad options (see :func:`check_options`), a model with nothing to prune, a budget that
            cannot be met, or a selection that fails.
        RuntimeError: the pruned model's counts differ from the budget's prediction.
    """
    started = time.perf_counter()
    budget = check_options(method, kernel, direction, widths, target_params, target_flops, keep_counts)
    criterion = get_criterion(method, kernel, direction, seed, **select_options)
    size = model_input_size(model_name)
    device = next(model.parameters()).device
    images = calibration_images
    if images.dtype == torch.uint8:
        images = normalise(images, model_name)
    images = images.to(device)

    layers = prunable_layers(model, size, skip_first)
    counts: CountModel | None = None
    width_diagnostics = None
    if budget is None:
        keep = check_keep_counts(keep_counts, layers)
    else:
        metric, target = budget
        counts = count_model(model, layers, size)
        if widths == "itpruner":
            keep, width_diagnostics = itpruner_keep_counts(model, images, layers, counts, metric, target, beta, min_width)
        else:
            keep = keep_counts_for_target(counts, metric, target)
    budget_seconds = time.perf_counter() - started

    selection_started = time.perf_counter()
    records = _select_all(criterion, model, images, layers, keep, progress)
    selection_seconds = time.perf_counter() - selection_started

    pruned = prune_channels(model, {r["name"]: r["kept_indices"] for r in records}, torch.zeros(1, *size, device=device))
    pruned.eval()
    before, after = count(model, size), count(pruned, size)
    if counts is not None and (round(counts(keep, "macs")) != after.macs or round(counts(keep, "params")) != after.params):
        raise RuntimeError(
            f"the pruned model counts {after} but the budget predicted {counts(keep, 'macs'):.0f} MACs, "
            f"{counts(keep, 'params'):.0f} params"
        )
    report = {
        "model": model_name,
        "settings": {
            "method": method, "kernel": kernel, "direction": direction, "widths": widths, "skip_first": skip_first,
            "target_params": target_params, "target_flops": target_flops, "keep_counts": keep_counts, "seed": seed,
            "calibration_images": len(images), "select_options": select_options,
            **({"itpruner": width_diagnostics} if width_diagnostics else {}),
        },
        "layers": records,
        "totals": {
            "macs_before": before.macs, "macs_after": after.macs, "macs_ratio": after.macs / before.macs,
            "params_before": before.params, "params_after": after.params, "params_ratio": after.params / before.params,
            "channels_before": sum(r["channels"] for r in records), "channels_after": sum(r["kept"] for r in records),
        },
        "seconds": {
            "budget": budget_seconds,
            "selection": selection_seconds,
            "selection_per_layer_sum": sum(r["seconds"] or 0.0 for r in records),
            "total": time.perf_counter() - started,
        },
        "provenance": provenance(),
    }
    return PruneResult(pruned, report)


def finetune(
    model: nn.Module,
    data: CifarData,
    model_name: str,
    epochs: int = 30,
    lr: float = 0.01,
    batch_size: int = 128,
    weight_decay: float = 5e-4,
    seed: int = 0,
    checkpoint=None,
    test_subset: int | None = None,
    progress: bool = True,
    precision: str = "fp32",
) -> TrainResult:
    """Fine-tune a pruned model in place: SGD with Nesterov momentum, cosine learning rate from ``lr`` to 0.

    Args:
        model: the pruned network, trained in place.
        data: in-memory CIFAR.
        model_name: its zoo name (normalisation).
        epochs, lr, batch_size, weight_decay, seed, precision: the recipe (see
            :class:`ibprune_lib.train.TrainConfig`).
        checkpoint: per-epoch checkpoint file, resumed when present.
        test_subset: evaluate on the first N test images after each epoch.
        progress: show tqdm bars.

    Returns:
        The training history and final test top-1.
    """
    config = TrainConfig(
        model=model_name, epochs=epochs, batch_size=batch_size, lr=lr, momentum=0.9, nesterov=True,
        weight_decay=weight_decay, schedule="cosine", seed=seed, precision=precision,
    )
    return fit(model, data, config, checkpoint=checkpoint, test_subset=test_subset, progress=progress)
