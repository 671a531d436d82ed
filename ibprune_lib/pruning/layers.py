"""Which filters can go: prunable-layer discovery (book/formulation.md §5).

A *prunable layer* is a convolution (with its BatchNorm, if one follows it) whose output channels feed one or
more parametric consumers, each channel to one input channel of each consumer, possibly through depthwise
convolutions (MobileNet's inverted residuals), which keep every channel apart, or through a concatenation
(GoogLeNet's inception outputs), which places them at an offset among the consumer's inputs:

    conv ─ BatchNorm2d ─ (ReLU, pooling, flatten: no parameters) ─ consumer (Conv2d or Linear, input side)
    conv ─ ReLU ─ (pooling) ─ consumer                                  (no BatchNorm: AlexNet, SqueezeNet)
    conv ─ BatchNorm2d ─ ReLU ─ depthwise conv ─ BatchNorm2d ─ ReLU ─ consumer
    conv ─ BatchNorm2d ─ ReLU ─ concatenation ─ (pooling) ─ consumers (every branch that reads it)
    conv ─ BatchNorm2d ─ SiLU ─ depthwise conv ─ BatchNorm2d ─ SiLU ─ × ─ consumer
                                                              └ squeeze-and-excitation gate ┘

A grouped conv (ResNeXt, RegNet) mixes the channels of each of its groups: its producer's channels cannot leave
one by one, so there the candidates are the groups, each taking its slice of the producer's filters, the grouped
conv's group (its filters and input slice; one group fewer) and that group's output channels at the consumers:

    conv ─ BatchNorm2d ─ ReLU ─ grouped conv ─ BatchNorm2d ─ ReLU ─ (gate) ─ consumer

A squeeze-and-excitation gate (EfficientNet, MobileNetV3, RegNetY) pools the channels, mixes them in a small
*squeeze* conv and gives each channel its own factor from an *excite* conv and a sigmoid: a removed channel
takes its input column of the squeeze conv and its output row of the excite conv with it. The gate is not a
consumer (the regression's consumer is the conv that reads the gated channels), and its two convs stay whole
in their own right (no BatchNorm follows them).

Torch-Pruning's dependency graph decides this: removing one of the conv's filters must touch exactly the conv's
output channels, its BatchNorm if any, the channel of each depthwise conv and BatchNorm in between, and one input
channel of each consumer, and nothing else with parameters (no other producer: a residual addition couples
convs and leaves them out). The regression's candidates are then the first consumer's input channels at the
layer's offset, each the image of one filter, and its responses the outputs of every consumer. No
architecture is hard-coded; on the zoo the rule finds what book/formulation.md §5 lists:

* VGG-16: every conv (the last one's consumer is the first Linear);
* CIFAR ResNet: the inner ``conv1`` of each block (consumer ``conv2``); the residual stream is coupled;
* GoogLeNet: every conv (the stem feeds the four branches of the first inception; each branch's last conv
  feeds the concatenation, whose consumers are the four branches of the next inception, or the classifier);
* ResNet-50: the stem ``conv1`` (read by the first bottleneck's ``conv1`` and its shortcut), and ``conv1`` and
  ``conv2`` of each bottleneck;
* ResNeXt, RegNetX/Y: ``conv1`` of each bottleneck, by groups of its grouped ``conv2``.

The paper prunes "without the first four layers": ``skip_first`` leaves the first prunable layers (in the
model's module order, which is forward order for the zoo) at full width.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from ..errors import OptionError


@dataclass(frozen=True, eq=False)
class Consumer:
    """A layer that reads a prunable layer's channels, on its input side.

    Attributes:
        name: qualified name of ``module``.
        module: the Conv2d or Linear.
        bn: the BatchNorm2d right after a conv consumer (its output is a response), or None (a Linear: the
            response is the Linear's output).
        offset: where the layer's channels start among ``module``'s input channels: 0, or the channels of the
            branches before it in a concatenation.
    """

    name: str
    module: nn.Module
    bn: nn.BatchNorm2d | None
    offset: int = 0


@dataclass(frozen=True, eq=False)
class GroupedConv:
    """A grouped conv between a prunable layer and its consumers: the layer's candidates are its groups.

    Attributes:
        name: qualified name of the grouped conv.
        bn_name: qualified name of the BatchNorm2d right after it.
        producer_per_group: the producing conv's channels in one group (the grouped conv's inputs per group).
        consumer_per_group: the grouped conv's output channels in one group (what the consumers read of it).
    """

    name: str
    bn_name: str
    producer_per_group: int
    consumer_per_group: int


@dataclass(frozen=True, eq=False)
class PrunableLayer:
    """A conv whose filters are candidates, with the modules its removal touches.

    Attributes:
        name: qualified name of the producing conv (the layer's key everywhere).
        conv: the producing conv; its output channels are the candidates.
        bn_name: qualified name of ``bn``, or None.
        bn: the BatchNorm2d right after ``conv``, or None (AlexNet, VGG without BatchNorm, SqueezeNet).
        consumers: every layer that reads the channels, in module order (one, except where a conv feeds
            several branches, directly or through a concatenation).
        channels: number of candidates: ``conv.out_channels`` at discovery, or the groups of ``grouped``.
        through: qualified names of the depthwise convs and their BatchNorms between ``bn`` and the consumers
            (each loses the removed channels too); empty for most networks.
        gates: (squeeze conv, excite conv) qualified names of each squeeze-and-excitation gate on the channels
            (the squeeze conv loses their input columns, the excite conv their output rows); empty for most.
        grouped: the grouped conv whose groups are the candidates, or None (the candidates are channels).
    """

    name: str
    conv: nn.Conv2d
    bn_name: str | None
    bn: nn.BatchNorm2d | None
    consumers: tuple[Consumer, ...]
    channels: int
    through: tuple[str, ...] = ()
    gates: tuple[tuple[str, str], ...] = ()
    grouped: GroupedConv | None = None

    def per_candidate(self, side: str) -> int:
        """Channels of one candidate on ``side``: ``"producer"`` (``conv``'s outputs) or ``"consumer"`` (the
        consumers' inputs); 1 unless the candidates are groups."""
        if self.grouped is None:
            return 1
        return self.grouped.producer_per_group if side == "producer" else self.grouped.consumer_per_group

    def channel_indices(self, candidates: list[int], side: str = "producer") -> list[int]:
        """The channels on ``side`` (see :meth:`per_candidate`) of the given candidates, ascending."""
        size = self.per_candidate(side)
        return [candidate * size + i for candidate in sorted(candidates) for i in range(size)]

    @property
    def consumer(self) -> nn.Module:
        """The first consumer's module: its input, at the layer's offset, is the regression's X side."""
        return self.consumers[0].module

    @property
    def consumer_name(self) -> str:
        """The first consumer's name."""
        return self.consumers[0].name


def _parametric(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def _takes_channels(module: nn.Module) -> bool:
    """A consumer whose input channels can be sliced: an ungrouped conv or a Linear."""
    return (isinstance(module, nn.Conv2d) and module.groups == 1) or isinstance(module, nn.Linear)


def _single_successor(dg: tp.DependencyGraph, module: nn.Module) -> nn.Module | None:
    outputs = dg.module2node[module].outputs
    return outputs[0].module if len(outputs) == 1 else None


def _is_depthwise(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.groups == module.in_channels == module.out_channels > 1


def _touched(conv: nn.Conv2d, dg: tp.DependencyGraph) -> list[tuple[nn.Module, str, list[int]]]:
    """(module, side, indices) of every module with parameters that removing ``conv``'s filter 0 touches;
    indices are where that filter lands in the module (its input channels for a consumer)."""
    group = dg.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=[0])
    return [(dep.target.module, dep.handler.__name__, [int(getattr(i, "idx", i)) for i in idxs])
            for dep, idxs in group if _parametric(dep.target.module)]


def _reaches_without_parameters(start: nn.Module, end: nn.Module, dg: tp.DependencyGraph) -> bool:
    """Whether ``start``'s output flows into ``end`` through nodes without parameters (activations) alone."""
    frontier, seen = list(dg.module2node[start].outputs), set()
    while frontier:
        node = frontier.pop()
        if node.module is end:
            return True
        if node in seen or _parametric(node.module):
            continue
        seen.add(node)
        frontier.extend(node.outputs)
    return False


def _gates(
    touched: list[tuple[nn.Module, str, list[int]]], dg: tp.DependencyGraph
) -> list[tuple[nn.Module, nn.Module]]:
    """The squeeze-and-excitation gates among ``touched``: (squeeze, excite) convs, the squeeze conv reading the
    channels (one to one, pooled) and feeding, through activations alone, the excite conv that makes one factor
    per channel."""
    readers = [m for m, side, idx in touched if side == "prune_in_channels" and isinstance(m, nn.Conv2d)
               and m.groups == 1 and len(idx) == 1]
    makers = [m for m, side, _ in touched if side == "prune_out_channels" and isinstance(m, nn.Conv2d)
              and m.groups == 1 and m.kernel_size == (1, 1)]
    return [(squeeze, excite) for squeeze in readers for excite in makers
            if squeeze.kernel_size == (1, 1) and _reaches_without_parameters(squeeze, excite, dg)]


def _without_gates(
    touched: list[tuple[nn.Module, str, list[int]]], dg: tp.DependencyGraph
) -> tuple[list[tuple[nn.Module, nn.Module]], list[tuple[nn.Module, str, list[int]]]]:
    """(the gates among ``touched`` (:func:`_gates`), ``touched`` without their convs)."""
    gates = _gates(touched, dg)
    in_gates = {module for gate in gates for module in gate}
    return gates, [entry for entry in touched if entry[0] not in in_gates]


def _grouped_reader(conv: nn.Conv2d, touched: list[tuple[nn.Module, str, list[int]]]) -> nn.Conv2d | None:
    """The grouped conv that alone reads ``conv``'s channels (its BatchNorm between them), or None."""
    readers = [m for m, side, _ in touched if side == "prune_in_channels"]
    if len(touched) != 3 or len(readers) != 1:
        return None
    reader = readers[0]
    grouped = isinstance(reader, nn.Conv2d) and reader.groups > 1 and not _is_depthwise(reader)
    return reader if grouped and reader.in_channels == conv.out_channels else None


def _reason_left_out(
    conv: nn.Conv2d, touched: list[tuple[nn.Module, str, list[int]]], dg: tp.DependencyGraph, names: dict
) -> str | None:
    """Why ``conv``'s output channels are not candidates one by one (None: they are), from ``touched``:
    :func:`_touched` of it without its squeeze-and-excitation gates (:func:`_without_gates`)."""
    grouped = [m for m, _, _ in touched
               if m is not conv and isinstance(m, nn.Conv2d) and m.groups != 1 and not _is_depthwise(m)]
    if grouped:
        return f"it feeds the grouped conv {names[grouped[0]]}, which mixes channels in groups"
    producers = [m for m, side, _ in touched if side == "prune_out_channels" and not isinstance(m, nn.BatchNorm2d)
                 and (m is conv or not _is_depthwise(m))]
    if len(producers) > 1:
        group = ", ".join(sorted(names[m] for m in producers))  # the same text for every conv of the group
        return f"its channels are coupled by a residual addition: {group}"
    consumers = [(m, indices) for m, side, indices in touched if side == "prune_in_channels"]
    if not consumers:
        return "no layer with parameters consumes it"
    for module, indices in consumers:
        if not _takes_channels(module) or len(indices) != 1:
            return f"its consumer {names[module]} does not take its channels one to one"
    depthwise = sum(_is_depthwise(m) for m, _, _ in touched)
    with_bn = isinstance(_single_successor(dg, conv), nn.BatchNorm2d)
    if len(touched) != 1 + with_bn + 2 * depthwise + len(consumers):
        return (f"removing a filter touches {len(touched)} layers with parameters, not conv, its BatchNorm (if "
                "any), depthwise conv and BatchNorm pairs, and consumers")
    return None


def _layer(
    name: str, conv: nn.Conv2d, source: nn.Conv2d, touched: list[tuple[nn.Module, str, list[int]]],
    gates: list[tuple[nn.Module, nn.Module]], dg: tp.DependencyGraph, names: dict, originals: dict, order: dict,
) -> PrunableLayer:
    """The PrunableLayer of ``conv`` (traced copy), whose channels reach the consumers through ``source``: ``conv``
    itself, or the grouped conv it feeds (then ``touched`` is what pruning that conv's output touches); ``gates``
    and ``touched``: :func:`_without_gates`."""
    bn = _single_successor(dg, conv)
    bn = bn if isinstance(bn, nn.BatchNorm2d) else None
    source_bn = _single_successor(dg, source)
    readers = sorted(((m, indices[0]) for m, side, indices in touched if side == "prune_in_channels"),
                     key=lambda reader: order[reader[0]])
    consumers = []
    for module, offset in readers:
        after = _single_successor(dg, module) if isinstance(module, nn.Conv2d) else None
        consumer_bn = after if isinstance(after, nn.BatchNorm2d) else None
        consumers.append(Consumer(
            name=names[module],
            module=originals[names[module]],
            bn=None if consumer_bn is None else originals[names[consumer_bn]],
            offset=offset,
        ))
    reader_modules = [module for module, _ in readers]
    through = tuple(names[module] for module, _, _ in touched
                    if module is not source and module is not source_bn and module not in reader_modules)
    grouped = None
    if source is not conv:
        grouped = GroupedConv(names[source], names[source_bn], conv.out_channels // source.groups,
                              source.out_channels // source.groups)
    return PrunableLayer(
        name=name,
        conv=originals[name],
        bn_name=None if bn is None else names[bn],
        bn=None if bn is None else originals[names[bn]],
        consumers=tuple(consumers),
        channels=conv.out_channels if grouped is None else source.groups,
        through=through,
        gates=tuple((names[squeeze], names[excite]) for squeeze, excite in gates),
        grouped=grouped,
    )


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
        raise OptionError(f"{{skip_first}} must be a non-negative int, got {skip_first!r}")
    probe = copy.deepcopy(model).eval()
    device = next(probe.parameters()).device
    try:
        dg = tp.DependencyGraph().build_dependency(probe, example_inputs=torch.zeros(1, *input_size, device=device))
    except Exception as error:  # noqa: BLE001 (Torch-Pruning's own exceptions: the user gets one line, not its stack)
        raise ValueError(f"Torch-Pruning cannot trace {type(model).__name__}'s dependency graph at input size "
                         f"{tuple(input_size)} ({type(error).__name__}: {error}): this structure cannot be pruned "
                         "here") from None
    probe_names = {module: name for name, module in probe.named_modules()}
    originals = dict(model.named_modules())
    order = {module: position for position, (_, module) in enumerate(probe.named_modules())}

    found, kept_whole = [], {}
    for name, conv in probe.named_modules():
        if not isinstance(conv, nn.Conv2d):
            continue
        if conv not in dg.module2node:
            kept_whole[name] = "not reached by the forward pass"
            continue
        if conv.groups != 1:
            kept_whole[name] = "a grouped or depthwise conv: each filter is tied to its own input channels"
            continue
        try:
            touched = _touched(conv, dg)
            grouped = _grouped_reader(conv, touched)
            source, touched = (conv, touched) if grouped is None else (grouped, _touched(grouped, dg))
        except Exception as error:  # noqa: BLE001 (e.g. ShuffleNetV2's channel shuffle: a ZeroDivisionError inside)
            kept_whole[name] = (f"Torch-Pruning cannot trace what pruning its output channels touches "
                                f"({type(error).__name__}: {error or 'no message'})")
            continue
        gates, touched = _without_gates(touched, dg)
        reason = _reason_left_out(source, touched, dg, probe_names)
        if reason is None and grouped is not None and not all(
                isinstance(_single_successor(dg, m), nn.BatchNorm2d) for m in (conv, grouped)):
            reason = "no BatchNorm2d right after it or after the grouped conv"
        if reason is not None:
            kept_whole[name] = reason if grouped is None else (
                f"it feeds the grouped conv {probe_names[grouped]}, whose groups cannot leave whole: {reason}")
            continue
        found.append(_layer(name, conv, source, touched, gates, dg, probe_names, originals, order))
    in_gates = {conv for layer in found for gate in layer.gates for conv in gate}
    for layer in [layer for layer in found if layer.name in in_gates]:
        found.remove(layer)  # its width is the gate's inner width, which the gated layer's count model leaves out
        kept_whole[layer.name] = "the squeeze conv of a squeeze-and-excitation gate on a pruned layer's channels"
    if not found:
        raise ValueError(
            f"{type(model).__name__} has no prunable layer: no conv feeds (through a BatchNorm or not) Conv2d/Linear "
            "layers, one to one (see ibprune_lib.pruning.layers); "
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
