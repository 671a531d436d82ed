"""Which filters can go: prunable-layer discovery (book/formulation.md §5).

A *prunable layer* is a convolution whose output channels feed exactly one parametric consumer, one to one:

    conv ─ BatchNorm2d ─ (ReLU, pooling, flatten: no parameters) ─ consumer (Conv2d or Linear, input side)

Torch-Pruning's dependency graph decides this: removing one of the conv's filters must touch exactly the conv's
output channels, its BatchNorm and the consumer's input channels, and nothing else with parameters. No
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
    """

    name: str
    conv: nn.Conv2d
    bn_name: str
    bn: nn.BatchNorm2d
    consumer_name: str
    consumer: nn.Module
    consumer_bn: nn.BatchNorm2d | None
    channels: int


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


def prunable_layers(
    model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32), skip_first: int = 4
) -> list[PrunableLayer]:
    """Find the prunable layers of ``model`` (see the module docstring), in module order.

    The dependency graph is traced on a deep copy in eval mode: ``model`` is not touched.

    Args:
        model: the network.
        input_size: (c, h, w) of one input image, for tracing.
        skip_first: leave this many leading prunable layers out (the paper's "first four layers").

    Returns:
        The prunable layers after the first ``skip_first``; their modules are ``model``'s own.

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

    found = []
    for name, conv in probe.named_modules():
        if not isinstance(conv, nn.Conv2d) or conv.groups != 1 or conv not in dg.module2node:
            continue
        group = dg.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=[0])
        touched = [(dep.target.module, dep.handler.__name__) for dep, _ in group if _parametric(dep.target.module)]
        if len(touched) != 3:
            continue
        (first, first_side), (bn, bn_side), (consumer, consumer_side) = touched
        if (
            first is not conv
            or not isinstance(bn, nn.BatchNorm2d)
            or _single_successor(dg, conv) is not bn
            or (first_side, bn_side, consumer_side) != ("prune_out_channels", "prune_out_channels", "prune_in_channels")
            or _consumer_width(consumer) != conv.out_channels
        ):
            continue
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
            )
        )
    if not found:
        raise ValueError(
            f"{type(model).__name__} has no prunable layer: no conv feeds a BatchNorm and then exactly one "
            "Conv2d/Linear one to one (see ibprune_lib.pruning.layers)"
        )
    if skip_first >= len(found):
        raise ValueError(
            f"skip_first={skip_first} leaves nothing to prune: {type(model).__name__} has {len(found)} prunable "
            f"layers. Fix: pass skip_first < {len(found)}"
        )
    return found[skip_first:]
