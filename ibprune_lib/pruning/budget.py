"""Per-layer keep counts from a budget: a target keep ratio of parameters or MACs ("FLOPs"), or explicit counts.

The counts of a pruned model are an exact quadratic function of the per-layer keep counts k (L layers):
every module's MACs and every parameter tensor scale with its input channels times its output channels, and
a prunable layer's removal touches only its conv and BatchNorm (output side) and its consumers (input side).
So

    count(k) = c₀ + aᵀk + ½ kᵀQk,

where Q_lm ≠ 0 only when a consumer of layer l is layer m's conv (VGG's chained convs, a GoogLeNet branch or
concatenation, a ResNet-50 bottleneck). :func:`count_model` measures c₀, a and Q with ``thop`` on pruned
copies (1 + L of them: Q_lm from the per-module breakdown, in layer m's conv alone) and checks the fit on one
more; the budget search then costs nothing, and the same quadratic is ITPruner's FLOPs constraint.

A target is met by one shared keep ratio r over the prunable layers: the continuous r with count(r·c) equal
to the target is found by bisection, then every layer keeps ⌊r·c_l⌋ or ⌈r·c_l⌉ channels (the ceilings given
to the layers with the largest fractional parts until the target is reached), never fewer than one. A scalar
target must be met within ±1 % of itself; a range (lo, hi) anywhere inside it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch_pruning as tp
from torch import nn

from ..counting import count_modules
from ..errors import OptionError
from .layers import PrunableLayer
from .surgery import remove_groups

METRICS = ("params", "macs")

TOLERANCE = 0.01
"""A scalar target ratio t is met when the achieved ratio lies in [t·(1 − TOLERANCE), t·(1 + TOLERANCE)]."""

Target = float | tuple[float, float]


@dataclass(frozen=True)
class CountModel:
    """Exact params and MACs of the pruned model as functions of the per-layer keep counts.

    Attributes:
        channels: (L,) the layers' full widths.
        full: {metric: count of the unpruned model}.
        constant: {metric: c₀}.
        linear: {metric: (L,) a}.
        quadratic: {metric: (L, L) symmetric Q, zero diagonal}.
    """

    channels: np.ndarray
    full: dict[str, int]
    constant: dict[str, float]
    linear: dict[str, np.ndarray]
    quadratic: dict[str, np.ndarray]

    def __call__(self, keep: Sequence[float] | np.ndarray, metric: str = "macs") -> float:
        """The count for keep counts ``keep`` (L,), integers or (for optimisers) reals."""
        k = np.asarray(keep, dtype=np.float64)
        return float(self.constant[metric] + self.linear[metric] @ k + 0.5 * k @ self.quadratic[metric] @ k)

    def ratio(self, keep: Sequence[float] | np.ndarray, metric: str = "macs") -> float:
        """count(keep) / count of the unpruned model."""
        return self(keep, metric) / self.full[metric]


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")


def check_ratio(value: float, name: str = "ratio") -> float:
    """``value`` as a float when it lies in (0, 1], else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise OptionError(f"{{{name}}} must be a keep ratio in (0, 1], got {value!r}")
    return float(value)


def target_range(target: Target, name: str = "target") -> tuple[float, float]:
    """The accepted (lo, hi) keep ratios for a scalar target (±TOLERANCE of it) or a (lo, hi) range."""
    if isinstance(target, (tuple, list)):
        if len(target) != 2:
            raise OptionError(f"{{{name}}} range must be (lo, hi), got {target!r}")
        lo, hi = (check_ratio(v, name) for v in target)
        if lo > hi:
            raise OptionError(f"{{{name}}} range must have lo <= hi, got {target!r}")
        return lo, hi
    t = check_ratio(target, name)
    return t * (1 - TOLERANCE), min(1.0, t * (1 + TOLERANCE))


def check_keep_counts(keep: Sequence[int], layers: Sequence[PrunableLayer]) -> list[int]:
    """Validate explicit per-layer keep counts: one int in [1, channels] per layer."""
    keep = list(keep)
    if len(keep) != len(layers):
        raise ValueError(f"keep_counts needs one count per prunable layer ({len(layers)}), got {len(keep)}")
    for layer, k in zip(layers, keep):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= layer.channels:
            raise ValueError(f"{layer.name}: keep count must be an int in [1, {layer.channels}], got {k!r}")
    return [int(k) for k in keep]


def sliced_copy(model: nn.Module, layers: Sequence[PrunableLayer], keep: Sequence[int]) -> nn.Module:
    """A deep copy of ``model`` keeping the first ``keep[l]`` channels of each layer (for counting only).

    Slices each layer's conv, BatchNorm, grouped or depthwise convs in between, squeeze-and-excitation gates and
    consumers directly with Torch-Pruning's module pruners (and :func:`~.surgery.remove_groups`), which is what the
    surgery does for a prunable layer, without tracing. A consumer is sliced once, after every layer: the input
    channels of the layers that meet in a concatenation are counted from the original offsets.
    """
    probe = copy.deepcopy(model)
    modules = dict(probe.named_modules())
    consumer_inputs: dict[str, list[int]] = {}
    for layer, k in zip(layers, keep):
        candidates = list(range(int(k), layer.channels))
        if not candidates:
            continue
        removed = layer.channel_indices(candidates, "producer")
        tp.prune_conv_out_channels(modules[layer.name], removed)
        if layer.bn_name is not None:
            tp.prune_batchnorm_out_channels(modules[layer.bn_name], removed)
        if layer.grouped is not None:
            remove_groups(modules[layer.grouped.name], candidates)
            removed = layer.channel_indices(candidates, "consumer")
            tp.prune_batchnorm_out_channels(modules[layer.grouped.bn_name], removed)
        for name in layer.through:
            if isinstance(modules[name], nn.Conv2d):
                tp.prune_depthwise_conv_out_channels(modules[name], removed)
            else:
                tp.prune_batchnorm_out_channels(modules[name], removed)
        for squeeze, excite in layer.gates:
            tp.prune_conv_in_channels(modules[squeeze], removed)
            tp.prune_conv_out_channels(modules[excite], removed)
        for consumer in layer.consumers:
            consumer_inputs.setdefault(consumer.name, []).extend(consumer.offset + i for i in removed)
    for name, removed in consumer_inputs.items():
        if isinstance(modules[name], nn.Linear):
            tp.prune_linear_in_channels(modules[name], removed)
        else:
            tp.prune_conv_in_channels(modules[name], removed)
    return probe


def coupled_pairs(layers: Sequence[PrunableLayer]) -> list[tuple[int, int]]:
    """(l, m) with a consumer of layer l the conv of layer m: the only products k_l·k_m in the counts."""
    index = {layer.name: i for i, layer in enumerate(layers)}
    return [(l, index[c.name]) for l, layer in enumerate(layers) for c in layer.consumers if c.name in index]


def count_model(
    model: nn.Module, layers: Sequence[PrunableLayer], input_size: tuple[int, int, int] = (3, 32, 32)
) -> CountModel:
    """Measure the exact quadratic count model of ``model`` pruned at ``layers``.

    Args:
        model: the unpruned network (not modified).
        layers: its prunable layers.
        input_size: (c, h, w) for counting.

    Returns:
        The CountModel, verified against a real count at half width.

    Raises:
        RuntimeError: the quadratic does not reproduce the real count (a layer touches more than its group).
    """
    channels = np.array([layer.channels for layer in layers], dtype=np.int64)
    half = np.maximum(1, channels // 2)
    drop = channels - half
    convs = [layer.name for layer in layers]

    def measure(keep) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Total (params, MACs) of the sliced copy, and (params, MACs) of each layer's conv in it."""
        probe = sliced_copy(model, layers, keep)
        counts, macs = count_modules(probe, input_size)
        modules = dict(probe.named_modules())
        own = {name: np.array([sum(p.numel() for p in modules[name].parameters(recurse=False)), macs[name]],
                              dtype=np.float64) for name in convs}
        return np.array([counts.params, counts.macs], dtype=np.float64), own

    full, full_convs = measure(channels)
    partners: dict[int, list[int]] = {}
    for l, m in coupled_pairs(layers):
        partners.setdefault(l, []).append(m)
    slope = {}  # ∂count/∂k_l at full width: a_l + Σ_m Q_lm c_m
    Q = np.zeros((2, len(layers), len(layers)))
    for l in range(len(layers)):
        keep = channels.copy()
        keep[l] = half[l]
        total, convs_l = measure(keep)
        slope[l] = (full - total) / max(drop[l], 1)
        # Q_lm lives in layer m's conv alone, whose counts are k_in·k_out·const (+ k_out·const for a bias):
        # halving k_l changes them by Q_lm·drop_l·c_m, with k_m at full width c_m.
        for m in partners.get(l, []):
            change = full_convs[convs[m]] - convs_l[convs[m]]
            Q[:, l, m] = Q[:, m, l] = change / (max(drop[l], 1) * channels[m])
    slopes = np.stack([slope[l] for l in range(len(layers))], axis=1)  # (2, L)
    a = slopes - np.einsum("slm,m->sl", Q, channels)
    c0 = full - a @ channels - 0.5 * np.einsum("l,slm,m->s", channels, Q, channels)
    fitted = CountModel(
        channels=channels,
        full={metric: int(full[i]) for i, metric in enumerate(METRICS)},
        constant={metric: float(c0[i]) for i, metric in enumerate(METRICS)},
        linear={metric: a[i] for i, metric in enumerate(METRICS)},
        quadratic={metric: Q[i] for i, metric in enumerate(METRICS)},
    )
    check = np.maximum(1, (channels * 3) // 10)
    real = measure(check)[0]
    for i, metric in enumerate(METRICS):
        if abs(fitted(check, metric) - real[i]) > 0.5:
            raise RuntimeError(
                f"the {metric} of the pruned model are not the quadratic of the keep counts "
                f"({fitted(check, metric):.0f} predicted, {real[i]:.0f} counted): a layer's removal touches more "
                "than its conv, BatchNorm and consumers"
            )
    return fitted


def round_to_target(
    real_keep: np.ndarray, model: CountModel, metric: str, aim: float, round_to: int = 1
) -> list[int]:
    """Integer keep counts near ``real_keep`` whose count ratio is nearest ``aim``.

    Starts from the floors and raises to the ceilings the layers with the largest fractional parts first, while
    the ratio stays ≤ ``aim``; the last step over ``aim`` is taken when it lands nearer. With ``round_to`` > 1
    the floors and ceilings are multiples of it (a width a runtime's kernels like, as Torch-Pruning's
    ``round_to``), never below ``round_to`` nor above the layer's channels (a layer narrower than ``round_to``, or
    whose full width is no multiple of it, may keep its full width); a step is then coarse, so ``real_keep`` is
    also scaled by factors around 1 (``ROUNDING_SCALES``), the rounding nearest ``aim`` wins, and moves of one
    or two layers by one step bring it nearer (:func:`_nearer_by_steps`).
    """
    check_round_to(round_to)
    if round_to == 1:
        return _rounded(np.asarray(real_keep, dtype=float), model, metric, aim, 1).tolist()
    candidates = [_rounded(scale * np.asarray(real_keep, dtype=float), model, metric, aim, round_to)
                  for scale in ROUNDING_SCALES]
    nearest = min(candidates, key=lambda keep: abs(model.ratio(keep, metric) - aim))
    return _nearer_by_steps(nearest, model, metric, aim, round_to).tolist()


ROUNDING_SCALES = np.geomspace(0.5, 2.0, 401)
"""The factors on the real keep counts tried when widths are rounded to multiples of ``round_to`` > 1."""


def _rounded(real_keep: np.ndarray, model: CountModel, metric: str, aim: float, round_to: int) -> np.ndarray:
    """:func:`round_to_target`'s greedy rounding of one set of real keep counts."""
    step = np.minimum(round_to, model.channels)
    real_keep = np.clip(real_keep, step, model.channels)
    keep = np.maximum(np.floor(real_keep / round_to).astype(np.int64) * round_to, step)
    ceiling = np.minimum(np.ceil(real_keep / round_to).astype(np.int64) * round_to, model.channels)
    best, best_gap = keep.copy(), abs(model.ratio(keep, metric) - aim)
    for l in np.argsort(-(real_keep - keep), kind="stable"):
        if keep[l] >= ceiling[l]:
            continue
        keep[l] = ceiling[l]
        gap = abs(model.ratio(keep, metric) - aim)
        if gap < best_gap:
            best, best_gap = keep.copy(), gap
        if model.ratio(keep, metric) > aim:
            break
    return best


def _nearer_by_steps(keep: np.ndarray, model: CountModel, metric: str, aim: float, round_to: int) -> np.ndarray:
    """``keep`` (L,) after the moves that bring its count ratio nearest ``aim``, one at a time while one does:
    one layer a rounding step up or down, or one layer a step up and another a step down (a finer change than
    either step alone). Widths stay multiples of ``round_to``, or the layer's full width, and ≥ ``round_to``.

    A count is quadratic in the keep counts with a zero diagonal, so a move's change is exact in closed form:
    with g = a + Q k, raising layer l by u and lowering layer m by d changes the count by u·g_l − d·g_m − u·d·Q_lm.
    """
    keep = np.asarray(keep, dtype=np.int64).copy()
    linear, quadratic, full = model.linear[metric], model.quadratic[metric], model.full[metric]
    floor = np.minimum(round_to, model.channels)
    for _ in range(4 * len(keep)):
        up = np.minimum((keep // round_to + 1) * round_to, model.channels) - keep  # (L,) a step up, 0 at full
        down = keep - np.maximum((keep - 1) // round_to * round_to, floor)  # (L,) a step down, 0 at the floor
        gradient = linear + quadratic @ keep
        now = model(keep, metric)
        changes = np.concatenate([
            up * gradient, -down * gradient,
            (np.outer(up * gradient, np.ones_like(gradient)) - down * gradient - np.outer(up, down) * quadratic).ravel(),
        ])  # fmt: skip
        gaps = np.abs((now + changes) / full - aim)
        best = int(np.argmin(gaps))
        if gaps[best] >= abs(now / full - aim) - 1e-15:
            break
        size = len(keep)
        if best < size:
            keep[best] += up[best]
        elif best < 2 * size:
            keep[best - size] -= down[best - size]
        else:
            raised, lowered = divmod(best - 2 * size, size)
            keep[raised] += up[raised]
            keep[lowered] -= down[lowered]
    return keep


def check_round_to(round_to: int) -> int:
    """``round_to`` when it is an int >= 1, else an OptionError naming it."""
    if isinstance(round_to, bool) or not isinstance(round_to, (int, np.integer)) or round_to < 1:
        raise OptionError(f"{{round_to}} must be an int >= 1 (1: any width), got {round_to!r}")
    return int(round_to)


def shared_ratio(model: CountModel, metric: str, aim: float, iterations: int = 60) -> float:
    """The continuous keep ratio r with count(clip(r·c, 1, c)) / full = ``aim`` (bisection; 1 if aim ≥ 1)."""
    lo, hi = 0.0, 1.0
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if model.ratio(np.clip(mid * model.channels, 1, None), metric) <= aim:
            lo = mid
        else:
            hi = mid
    return lo if aim < 1 else 1.0


def keep_counts_for_target(model: CountModel, metric: str, target: Target, round_to: int = 1) -> list[int]:
    """Per-layer keep counts from one shared keep ratio meeting ``target`` (see the module docstring).

    Args:
        model: the count model of the network at its prunable layers.
        metric: ``"params"`` or ``"macs"``.
        target: keep ratio in (0, 1] of the metric, or a (lo, hi) range.
        round_to: keep multiples of this many channels per layer (:func:`round_to_target`).

    Returns:
        (L,) keep counts, each in [1, channels].

    Raises:
        ValueError: a bad metric or target, or a target no shared ratio reaches (the message gives the range
            reachable: keeping one channel per layer still leaves the unprunable part).
    """
    check_metric(metric)
    lo, hi = target_range(target, f"target {metric}")
    aim = (lo + hi) / 2 if isinstance(target, (tuple, list)) else float(target)
    r = shared_ratio(model, metric, aim)
    keep = round_to_target(r * model.channels, model, metric, aim, round_to)
    check_met(model, keep, metric, (lo, hi), round_to)
    return keep


def check_met(
    model: CountModel, keep: Sequence[int], metric: str, accepted: tuple[float, float], round_to: int = 1
) -> None:
    """Raise a ValueError unless the ratio of ``keep`` lies in ``accepted``, naming what can be reached (with
    widths rounded to multiples of ``round_to``, no layer keeps fewer than ``round_to`` channels)."""
    achieved = model.ratio(keep, metric)
    if not accepted[0] - 1e-12 <= achieved <= accepted[1] + 1e-12:
        smallest = model.ratio(np.minimum(round_to, model.channels), metric)
        rounded = f" with widths rounded to multiples of {round_to}" if round_to > 1 else ""
        raise OptionError(
            f"cannot keep {accepted[0]:.4f}–{accepted[1]:.4f} of the {metric}: got {achieved:.4f}; pruning these "
            f"layers{rounded} reaches keep ratios in [{smallest:.4f}, 1]. Fix: aim inside that range, or keep fewer "
            "leading layers whole ({skip_first}) to widen it" + (", or round to a smaller {round_to}" if rounded else "")
        )
