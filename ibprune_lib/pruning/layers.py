"""Which filters can go: prunable-layer discovery (book/formulation.md §5).

A *prunable layer* is a convolution whose output channels feed exactly one parametric consumer, one to one,
possibly through depthwise convolutions (MobileNet's inverted residuals), which keep every channel apart:

    conv ─ BatchNorm2d ─ (ReLU, pooling, flatten: no parameters) ─ consumer (Conv2d or Linear, input side)
    conv ─ BatchNorm2d ─ ReLU ─ depthwise conv ─ BatchNorm2d ─ ReLU ─ consumer

Torch-Pruning's dependency graph decides this: removing one of the conv's filters must touch exactly the conv's
output channels, its BatchNorm, the channel of each depthwise conv and BatchNorm in between, and the consumer's
input channels, and nothing else with parameters. The regression's candidates are then the consumer's input
channels, each the image of one filter. No
architecture is hard-coded; on the zoo the rule finds what book/formulation.md §5 lists:

* VGG-16: every conv (the last one's consumer is the first Linear);
* CIFAR ResNet: the inner ``conv1`` of each block (consumer ``conv2``); the residual stream is coupled;
* GoogLeNet: the reducing and intermediate convs inside each inception branch; a branch's last conv feeds the
  concatenation (coupled with the other branches) and stays;
* ResNet-50: ``conv1`` and ``conv2`` of each bottleneck.

The paper prunes "without the first four layers": ``skip_first`` leaves the first prunable layers (in the
model's module order, which is forward order for the zoo) at full width.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn


@dataclass(frozen=True, eq=False)
class PrunableLayer:
    """A conv whose filters are candidates, with the modules its removal touches.

    Attributes:
        name: qualified name of the producing conv (the layer's key everywhere).
        conv: the producing conv; its output channels are the candidates.
        bn_name: qualified name of ``bn``.
        bn: the BatchNorm2d right after ``conv``.
        consumer_name: qualified name of ``consumer``.
        consumer: the Conv2d or Linear whose input channels are the candidates (after BN, ReLU, pooling).
        consumer_bn: the BatchNorm2d right after a conv consumer (its output is the regression's response),
            or None (a Linear consumer: the response is the Linear's output).
        channels: number of candidates, ``conv.out_channels`` at discovery.
        through: qualified names of the depthwise convs and their BatchNorms between ``bn`` and ``consumer``
            (each loses the removed channels too); empty for most networks.
    """

    name: str
    conv: nn.Conv2d
    bn_name: str
    bn: nn.BatchNorm2d
    consumer_name: str
    consumer: nn.Module
    consumer_bn: nn.BatchNorm2d | None
    channels: int
    through: tuple[str, ...] = ()


def _parametric(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def _consumer_width(module: nn.Module) -> int | None:
    if isinstance(module, nn.Conv2d) and module.groups == 1:
        return module.in_channels
    if isinstance(module, nn.Linear):
        return module.in_features
    return None


def _single_successor(dg: tp.DependencyGraph, module: nn.Module) -> nn.Module | None:
    outputs = dg.module2node[module].outputs
    return outputs[0].module if len(outputs) == 1 else None


def _is_depthwise(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.groups == module.in_channels == module.out_channels > 1


def _touched(conv: nn.Conv2d, dg: tp.DependencyGraph) -> list[tuple[nn.Module, str]]:
    """(module, side) of every module with parameters that removing one of ``conv``'s filters touches."""
    group = dg.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=[0])
    return [(dep.target.module, dep.handler.__name__) for dep, _ in group if _parametric(dep.target.module)]


def _reason_left_out(
    conv: nn.Conv2d, touched: list[tuple[nn.Module, str]], dg: tp.DependencyGraph, names: dict
) -> str | None:
    """Why ``conv``'s filters are not candidates (None: they are), from ``touched``: :func:`_touched` of it."""
    if conv.groups != 1:
        return "a grouped or depthwise conv: each filter is tied to its own input channels"
    grouped = [m for m, _ in touched if isinstance(m, nn.Conv2d) and m.groups != 1 and not _is_depthwise(m)]
    if grouped:
        return f"it feeds the grouped conv {names[grouped[0]]}, which mixes channels in groups"
    producers = [m for m, side in touched
                 if side == "prune_out_channels" and not isinstance(m, nn.BatchNorm2d) and not _is_depthwise(m)]
    if len(producers) > 1:
        others = ", ".join(sorted(names[m] for m in producers if m is not conv))
        return f"its channels are coupled with {others} (a residual addition or a concatenation)"
    if not isinstance(_single_successor(dg, conv), nn.BatchNorm2d):
        return "no BatchNorm2d right after it"
    consumers = [m for m, side in touched if side == "prune_in_channels"]
    if len(consumers) != 1:
        return f"its channels feed {len(consumers)} layers" if consumers else "no layer with parameters consumes it"
    if _consumer_width(consumers[0]) != conv.out_channels:
        return f"its consumer {names[consumers[0]]} does not take its channels one to one"
    depthwise = sum(_is_depthwise(m) for m, _ in touched)
    if len(touched) != 3 + 2 * depthwise:
        return (f"removing a filter touches {len(touched)} layers with parameters, not conv, BatchNorm, "
                "depthwise conv and BatchNorm pairs, and consumer")
    return None


@dataclass
class LayerSurvey:
    """Every conv of a model, sorted into candidates and the rest.

    Attributes:
        prunable: the prunable layers after the first ``skip_first``, in module order.
        kept_whole: conv name → why its filters are not candidates (left out by the rule, or skipped).
    """

    prunable: list[PrunableLayer]
    kept_whole: dict[str, str]


def survey_layers(
    model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32), skip_first: int = 4
) -> LayerSurvey:
    """Find the prunable layers of ``model`` (see the module docstring) and say why every other conv stays.

    The dependency graph is traced on a deep copy in eval mode: ``model`` is not touched.

    Args:
        model: the network.
        input_size: (c, h, w) of one input image, for tracing.
        skip_first: leave this many leading prunable layers whole (the paper's "first four layers").

    Returns:
        The survey; the layers' modules are ``model``'s own.

    Raises:
        ValueError: ``skip_first`` negative, no prunable layer in the model, or ``skip_first`` leaves none.
    """
    if isinstance(skip_first, bool) or not isinstance(skip_first, int) or skip_first < 0:
        raise ValueError(f"skip_first must be a non-negative int, got {skip_first!r}")
    probe = copy.deepcopy(model).eval()
    device = next(probe.parameters()).device
    dg = tp.DependencyGraph().build_dependency(probe, example_inputs=torch.zeros(1, *input_size, device=device))
    probe_names = {module: name for name, module in probe.named_modules()}
    originals = dict(model.named_modules())

    found, kept_whole = [], {}
    for name, conv in probe.named_modules():
        if not isinstance(conv, nn.Conv2d):
            continue
        if conv not in dg.module2node:
            kept_whole[name] = "not reached by the forward pass"
            continue
        touched = _touched(conv, dg) if conv.groups == 1 else []
        reason = _reason_left_out(conv, touched, dg, probe_names)
        if reason is not None:
            kept_whole[name] = reason
            continue
        bn = _single_successor(dg, conv)
        consumer = next(module for module, side in touched if side == "prune_in_channels")
        through = tuple(probe_names[module] for module, _ in touched if module not in (conv, bn, consumer))
        after_consumer = _single_successor(dg, consumer) if isinstance(consumer, nn.Conv2d) else None
        consumer_bn = after_consumer if isinstance(after_consumer, nn.BatchNorm2d) else None
        found.append(
            PrunableLayer(
                name=name,
                conv=originals[name],
                bn_name=probe_names[bn],
                bn=originals[probe_names[bn]],
                consumer_name=probe_names[consumer],
                consumer=originals[probe_names[consumer]],
                consumer_bn=None if consumer_bn is None else originals[probe_names[consumer_bn]],
                channels=conv.out_channels,
                through=through,
            )
        )
    if not found:
        raise ValueError(
            f"{type(model).__name__} has no prunable layer: no conv feeds a BatchNorm and then exactly one "
            "Conv2d/Linear one to one (see ibprune_lib.pruning.layers); "
            + "; ".join(f"{name}: {reason}" for name, reason in list(kept_whole.items())[:3])
        )
    if skip_first >= len(found):
        raise ValueError(
            f"skip_first={skip_first} leaves nothing to prune: {type(model).__name__} has {len(found)} prunable "
            f"layers. Fix: pass skip_first < {len(found)}"
        )
    for layer in found[:skip_first]:
        kept_whole[layer.name] = f"one of the first {skip_first} prunable layers (skip_first)"
    return LayerSurvey(found[skip_first:], kept_whole)


def prunable_layers(
    model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32), skip_first: int = 4
) -> list[PrunableLayer]:
    """The prunable layers of ``model`` after the first ``skip_first``: :func:`survey_layers`' ``prunable``."""
    return survey_layers(model, input_size, skip_first).prunable
