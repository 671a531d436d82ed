"""``prune``: calibration batch → features → per-layer selection → surgery → report; and ``finetune``.

    result = prune(model, calibration_images, method="stlp", target_flops=0.5)
    result.model   # a smaller dense nn.Module (the input model is untouched)
    result.report  # per layer: channels before/after, λ, solves, seconds; layers kept whole and why; totals

Any CNN that takes image batches works: the input size comes from the images, the normalisation of uint8
images is the caller's (``normalization="imagenet"``, ``"cifar"`` or ``(mean, std)``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from ..counting import count
from ..data import ImageData, normalise
from ..errors import OptionError
from ..lasso.adaptive import NoSignalError, top_k
from ..provenance import provenance
from ..settings import SelectionSettings, preset_settings
from ..streaming import FolderStream
from ..train import TrainConfig, TrainResult, fit
from .allocation import ALLOCATIONS, GLOBAL_MIN_WIDTH, global_keep_counts
from .budget import (
    METRICS,
    CountModel,
    check_keep_counts,
    check_round_to,
    count_model,
    keep_counts_for_target,
    target_range,
)
from .capture import capture
from .criteria import Criterion, get_criterion
from .itpruner import DEFAULT_BETA, itpruner_keep_counts
from .layers import PrunableLayer, survey_layers
from .reconstruct import reconstruct_consumers
from .surgery import prune_channels

WIDTHS = ("uniform", "itpruner")


@dataclass
class PruneResult:
    """A pruned model and how it was made.

    Attributes:
        model: the pruned copy, a dense ``nn.Module`` in eval mode.
        report: JSON-ready: ``layers`` (name, channels, kept, kept indices, λ, solves, iterations, the edges
            of sGLP-IB's graph or the groups of sTLP-IB's tree, seconds; a layer pruned by the groups of a grouped
            conv counts groups, and its ``groups_of`` says of how many channels), ``totals`` (MACs/params before,
            after, ratios), ``settings``, ``seconds`` and ``provenance``.
    """

    model: nn.Module
    report: dict


def check_options(
    widths: str = "uniform", target_params=None, target_flops=None, keep_counts=None,
) -> tuple[str, object] | None:
    """Validate ``prune``'s budget options before any work; returns (metric, target) or None for explicit counts.

    Raises:
        ValueError: unknown widths; not exactly one of the targets and ``keep_counts``; a target outside (0, 1];
            ITPruner widths with explicit counts.
    """
    if widths not in WIDTHS:
        raise ValueError(f"unknown widths {widths!r}: choose one of {', '.join(WIDTHS)}")
    given = [name for name, value in (("target_params", target_params), ("target_flops", target_flops),
                                      ("keep_counts", keep_counts)) if value is not None]
    if len(given) != 1:
        raise OptionError(f"give exactly one of {{target_params}}, {{target_flops}}, {{keep_counts}} (got "
                          f"{', '.join(given) or 'none'})")
    if keep_counts is not None:
        if widths != "uniform":
            raise ValueError("explicit keep_counts leave nothing for widths='itpruner' to choose")
        return None
    metric, target = ("params", target_params) if target_params is not None else ("macs", target_flops)
    target_range(target, "target_params" if metric == "params" else "target_flops")
    return metric, target


def check_allocation(allocation: str, widths: str, budget, round_to: int) -> None:
    """Raise an OptionError unless ``allocation`` is known and fits the other budget options."""
    if allocation not in ALLOCATIONS:
        raise OptionError(f"unknown {{allocation}} {allocation!r}: choose one of {', '.join(ALLOCATIONS)}")
    if allocation == "global" and (widths != "uniform" or budget is None or round_to != 1):
        raise OptionError("{allocation}='global' sets the widths itself from a FLOPs or parameter target: use it "
                          "with the uniform {widths}, a target and {round_to}=1")


def resolve_settings(method: str, preset: str = "paper", settings: SelectionSettings | None = None,
                     **changes) -> SelectionSettings:
    """The settings ``method`` selects with: ``settings``, else ``preset``'s, with ``changes`` over them (a None
    change is left out: "the preset's").

    Raises:
        ValueError: an unknown preset or setting, or a bad value.
    """
    base = preset_settings(preset, method) if settings is None else settings
    return base.replace(**{name: value for name, value in changes.items() if value is not None})


def _grouping(layer: PrunableLayer) -> dict:
    """A grouped layer's record entry: its candidates (``channels``, ``kept``) are groups of this many channels."""
    if layer.grouped is None:
        return {}
    return {"groups_of": {"conv": layer.grouped.name, "channels": layer.per_candidate("producer")}}


def _layer_record(layer, k: int, selection) -> dict:
    diagnostics = selection.diagnostics
    return {
        "name": layer.name,
        **_grouping(layer),
        "channels": layer.channels,
        "kept": k,
        "kept_indices": selection.kept.tolist(),
        "lam": diagnostics.get("lam"),
        "n_solves": diagnostics.get("n_solves"),
        "n_iter": diagnostics.get("n_iter"),
        "n_edges": diagnostics.get("n_edges"),
        "n_groups": diagnostics.get("n_groups"),
        "seconds": diagnostics.get("seconds"),
        "completed": diagnostics.get("completed", 0),
        **({"completed_by": f"{diagnostics['completed']} of {k} kept by their correlation with the responses (‖B_i‖): "
                            f"{diagnostics['stopped']}"} if diagnostics.get("completed") else {}),
    }


def _whole_record(layer: PrunableLayer) -> dict:
    return {"name": layer.name, **_grouping(layer), "channels": layer.channels, "kept": layer.channels,
            "kept_indices": list(range(layer.channels)), "lam": None, "n_solves": None, "n_iter": None,
            "n_edges": None, "n_groups": None, "seconds": 0.0, "completed": 0}


def _select_all(
    criterion: Criterion, model, images, layers, keep, progress: bool
) -> tuple[list[dict], dict, list[torch.Tensor]]:
    """Per-layer records, the layers kept whole because their features carry no signal (name → reason), and each
    layer's channel scores (all ones for a layer kept whole)."""
    features = capture(model, images, layers, criterion.features) if criterion.features else ((l, None) for l in layers)
    records, no_signal, scores = [], {}, []
    bar = tqdm(zip(features, keep), total=len(layers), desc=criterion.name, disable=not progress)
    for (layer, layer_features), k in bar:
        bar.set_postfix_str(f"{layer.name} {k}/{layer.channels}")
        if k == layer.channels:
            records.append(_whole_record(layer))
            scores.append(torch.ones(layer.channels))
            continue
        try:
            selection = criterion(layer, layer_features, k)
        except NoSignalError as error:
            records.append(_whole_record(layer))
            scores.append(torch.ones(layer.channels))
            no_signal[layer.name] = f"its features carry no signal for {criterion.name} ({error}); kept whole"
            continue
        except ValueError as error:
            raise ValueError(f"{criterion.name} on layer {layer.name} ({k} of {layer.channels} kept): {error}") from None
        records.append(_layer_record(layer, k, selection))
        scores.append(selection.scores.detach().cpu())
    return records, no_signal, scores


def _reallocate(records: list[dict], scores: list[torch.Tensor], keep: list[int], no_signal: dict) -> None:
    """Give each record the channels the global allocation keeps: its ``keep`` highest-scoring ones (a layer
    without signal stays whole)."""
    for record, layer_scores, k in zip(records, scores, keep):
        if record["name"] in no_signal:
            continue
        record["kept_at_uniform"] = record["kept"]
        record["kept"] = k
        record["kept_indices"] = sorted(top_k(layer_scores, k).tolist())


def _consumers_of_pruned(model: nn.Module, layers: list[PrunableLayer], records: list[dict]) -> list[str]:
    """The consumers of the layers that lost channels, each once, in ``model``'s module (forward) order."""
    order = {name: index for index, (name, _) in enumerate(model.named_modules())}
    names = {consumer.name for layer, record in zip(layers, records) if record["kept"] < record["channels"]
             for consumer in layer.consumers}
    return sorted(names, key=order.__getitem__)


def prune(
    model: nn.Module,
    calibration_images: torch.Tensor,
    method: str = "stlp",
    target_params: float | tuple[float, float] | None = None,
    target_flops: float | tuple[float, float] | None = None,
    keep_counts: list[int] | None = None,
    preset: str = "paper",
    settings: SelectionSettings | None = None,
    skip_first: int = 4,
    widths: str = "uniform",
    seed: int = 0,
    beta: float = DEFAULT_BETA,
    min_width: float | None = None,
    normalization: str | tuple = "imagenet",
    model_name: str | None = None,
    progress: bool = True,
    reconstruct: bool = False,
    round_to: int = 1,
    allocation: str = "uniform",
    **changes,
) -> PruneResult:
    """Prune ``model``'s filters with ``method`` to a budget.

    Args:
        model: the trained network, any ``nn.Module`` taking (n, c, h, w) image batches (not modified).
        calibration_images: (bs, c, h, w) uint8 images (normalised here with ``normalization``) or float
            model inputs (used as they are), bs ≥ 2; their size is the size the model is traced and counted at.
        method: one of ``criteria.METHODS``: ``stlp``, ``sglp``, ``apib``, ``lasso``, ``l1``, ``random``,
            ``hrank``, ``fpgm``.
        target_params: keep ratio in (0, 1] of the parameters, or a (lo, hi) range;
        target_flops: … or of the MACs; give exactly one of the two or ``keep_counts``.
        keep_counts: explicit channels to keep per prunable layer.
        preset: named settings of the information-bottleneck methods (``settings.PRESETS``): ``"paper"``
            (the paper's stated settings) or ``"tuned"`` (the settings study's).
        settings: the information-bottleneck methods' :class:`~ibprune_lib.settings.SelectionSettings`
            instead of the preset's.
        skip_first: leading prunable layers left at full width.
        widths: ``"uniform"`` (one shared keep ratio) or ``"itpruner"`` (ITPruner's per-layer widths).
        seed: seeds the random baseline.
        beta, min_width: ITPruner's β and lower width bound.
        normalization: of uint8 images: ``"imagenet"`` (the zoo's and torchvision's), ``"cifar"`` or
            ``(mean, std)``.
        model_name: how the report names the model (default: its class name).
        progress: show a tqdm bar over the layers.
        allocation: ``"uniform"`` (one shared keep ratio, the paper's) or ``"global"`` (the widths from one
            threshold on the criterion's per-layer normalised scores, at least ``min_width`` of each layer:
            :mod:`.allocation`); ``report["allocation"]`` gives the threshold.
        round_to: keep a multiple of this many channels in every pruned layer (a width a runtime's kernels like),
            the budget still met; 1 keeps any width.
        reconstruct: refit each pruned layer's consumer by least squares to the unpruned network's output on the
            calibration images (:mod:`.reconstruct`); the report's ``reconstruction`` gives each consumer's
            relative error before and after.
        **changes: selection settings to change by name over the preset's or ``settings`` (``kernel="gaussian"``,
            ``direction="columns"``…; None: the preset's).

    Returns:
        The PruneResult. A layer whose features carry no signal for the criterion is kept whole and named in
        ``report["kept_whole"]`` with every other conv left at full width and why; the budget then is not met
        and ``report["totals"]`` says by how much.

    Raises:
        ValueError: an unknown method, bad budget options (see :func:`check_options`), an unknown preset or
            setting, a model with nothing to prune,
            a budget that cannot be met, or a selection that fails.
        RuntimeError: the pruned model's counts differ from the budget's prediction.
    """
    started = time.perf_counter()
    if not isinstance(calibration_images, torch.Tensor) or calibration_images.dim() != 4:
        raise TypeError(
            "prune(model, calibration_images, ...) takes a (bs, c, h, w) tensor of images second; "
            f"got {type(calibration_images).__name__} (the model's name, if any, goes to model_name=)"
        )
    settings = resolve_settings(method, preset, settings, **changes)
    criterion = get_criterion(method, seed, settings)
    budget = check_options(widths, target_params, target_flops, keep_counts)
    check_round_to(round_to)
    check_allocation(allocation, widths, budget, round_to)
    size = tuple(calibration_images.shape[1:])
    device = next(model.parameters()).device
    images = calibration_images
    if images.dtype == torch.uint8:
        images = normalise(images, normalization)
    images = images.to(device)

    survey = survey_layers(model, size, skip_first)
    layers = survey.prunable
    counts: CountModel | None = None
    width_diagnostics = None
    if budget is None:
        keep = check_keep_counts(keep_counts, layers)
    else:
        metric, target = budget
        counts = count_model(model, layers, size)
        if widths == "itpruner":
            keep, width_diagnostics = itpruner_keep_counts(model, images, layers, counts, metric, target, beta, min_width,
                                                           round_to)
        else:
            keep = keep_counts_for_target(counts, metric, target, round_to)
    budget_seconds = time.perf_counter() - started

    selection_started = time.perf_counter()
    records, no_signal, scores = _select_all(criterion, model, images, layers, keep, progress)
    threshold = None
    if allocation == "global":
        keep, threshold = global_keep_counts(scores, counts, metric, target, min_width)
        _reallocate(records, scores, keep, no_signal)
    selection_seconds = time.perf_counter() - selection_started
    planned = keep
    keep = [record["kept"] for record in records]

    kept_channels = {layer.name: layer.channel_indices(record["kept_indices"]) for layer, record in zip(layers, records)}
    pruned = prune_channels(model, kept_channels, torch.zeros(1, *size, device=device))
    pruned.eval()
    reconstruction = None
    if reconstruct:
        reconstruction = reconstruct_consumers(model, pruned, images, _consumers_of_pruned(model, layers, records))
    before, after = count(model, size), count(pruned, size)
    if counts is not None and (round(counts(keep, "macs")) != after.macs or round(counts(keep, "params")) != after.params):
        raise RuntimeError(
            f"the pruned model counts {after} but the budget predicted {counts(keep, 'macs'):.0f} MACs, "
            f"{counts(keep, 'params'):.0f} params"
        )
    report = {
        "model": model_name or type(model).__name__,
        "input_size": list(size),
        "settings": {
            "method": method, "preset": preset, "kernel": settings.kernel, "direction": settings.direction,
            "widths": widths, "round_to": round_to, "allocation": allocation,
            "skip_first": skip_first,
            "target_params": target_params, "target_flops": target_flops, "keep_counts": keep_counts, "seed": seed,
            "normalization": normalization if isinstance(normalization, str) else [list(v) for v in normalization],
            "calibration_images": len(images), "selection_settings": settings.record(), "reconstruct": reconstruct,
            **({"itpruner": width_diagnostics} if width_diagnostics else {}),
        },
        "layers": records,
        "kept_whole": {**survey.kept_whole, **no_signal},
        **({"reconstruction": reconstruction} if reconstruction is not None else {}),
        **({"allocation": {"rule": "global", "threshold": threshold,
                           "min_width": GLOBAL_MIN_WIDTH if min_width is None else min_width}}
           if threshold is not None else {}),
        "totals": {
            "macs_before": before.macs, "macs_after": after.macs, "macs_ratio": after.macs / before.macs,
            "params_before": before.params, "params_after": after.params, "params_ratio": after.params / before.params,
            "channels_before": sum(r["channels"] * layer.per_candidate("producer") for layer, r in zip(layers, records)),
            "channels_after": sum(r["kept"] * layer.per_candidate("producer") for layer, r in zip(layers, records)),
            **({"planned": {m: counts(planned, m) for m in METRICS}} if no_signal and counts is not None else {}),
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
    data: ImageData | FolderStream,
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
    normalization: str | tuple | None = None,
) -> TrainResult:
    """Fine-tune a pruned model in place: SGD with Nesterov momentum, cosine learning rate from ``lr`` to 0.

    Args:
        model: the pruned network, trained in place.
        data: in-memory images (CIFAR or an image folder), or a streamed folder (``streaming.open_stream``).
        model_name: its model name (recorded in the recipe; its normalisation unless ``normalization`` says).
        epochs, lr, batch_size, weight_decay, seed, precision: the recipe (see
            :class:`ibprune_lib.train.TrainConfig`).
        checkpoint: per-epoch checkpoint file, resumed when present.
        test_subset: evaluate on the first N test images after each epoch.
        progress: show tqdm bars.
        normalization: the input normalisation (see ``data.mean_std_for``).

    Returns:
        The training history and final test top-1.
    """
    config = TrainConfig(
        model=model_name, epochs=epochs, batch_size=batch_size, lr=lr, momentum=0.9, nesterov=True,
        weight_decay=weight_decay, schedule="cosine", seed=seed, precision=precision,
    )
    return fit(model, data, config, checkpoint=checkpoint, test_subset=test_subset, progress=progress,
               normalization=normalization)
