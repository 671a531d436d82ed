"""Physical removal of filters through Torch-Pruning's dependency graph, on a deep copy.

``prune_channels`` deep-copies the model, traces a ``DependencyGraph`` on the copy and, for every conv named,
prunes the group of its removed output channels (``get_pruning_group(conv, prune_conv_out_channels, idxs)``):
the BatchNorm and the consumers follow (a grouped conv after it loses whole groups: :func:`remove_groups`). The
result is a smaller dense ``nn.Module``; the caller's model is never modified, also not when an error is raised.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
import torch_pruning as tp
from torch import nn


def _kept_indices(name: str, kept: Sequence[int] | torch.Tensor, channels: int) -> list[int]:
    """Validate one conv's kept indices: unique ints in [0, channels), at least one."""
    indices = torch.as_tensor(kept).flatten()
    if indices.numel() == 0:
        raise ValueError(f"{name}: keep at least one channel (removing every filter of a layer breaks the network)")
    if indices.is_floating_point() or indices.dtype == torch.bool:
        raise ValueError(f"{name}: kept channels must be integer indices, got {indices.dtype}")
    indices = indices.tolist()
    if len(set(indices)) != len(indices) or min(indices) < 0 or max(indices) >= channels:
        raise ValueError(f"{name}: kept channels must be distinct indices in [0, {channels}), got {indices}")
    return indices


def remove_groups(conv: nn.Conv2d, groups: Sequence[int]) -> None:
    """Remove whole groups of a grouped conv in place: their filters, their slice of the inputs, and one group each.

    Args:
        conv: a Conv2d with ``groups`` > 1 (weights (c_out, c_in / groups, kh, kw)).
        groups: indices in [0, conv.groups) of the groups to remove, fewer than all.
    """
    per_out = conv.out_channels // conv.groups
    gone = set(groups)
    kept = torch.tensor([g * per_out + i for g in range(conv.groups) if g not in gone for i in range(per_out)])
    conv.weight = nn.Parameter(conv.weight.detach()[kept].clone())
    if conv.bias is not None:
        conv.bias = nn.Parameter(conv.bias.detach()[kept].clone())
    conv.in_channels -= len(gone) * (conv.in_channels // conv.groups)
    conv.out_channels -= len(gone) * per_out
    conv.groups -= len(gone)


def prune_channels(
    model: nn.Module, kept: Mapping[str, Sequence[int] | torch.Tensor], example_inputs: torch.Tensor
) -> nn.Module:
    """A pruned deep copy of ``model`` that keeps only the given output channels of the given convs.

    Args:
        model: the network (not modified).
        kept: conv name (as in ``named_modules``) → indices of the output channels to keep.
        example_inputs: (1, c, h, w) an input for tracing, on the model's device.

    Returns:
        The pruned copy, in ``model``'s train/eval mode; channels keep their original order.

    Raises:
        ValueError: a name that is not a Conv2d of the model, bad indices, or a group Torch-Pruning refuses.
    """
    modules = dict(model.named_modules())
    plan = {}
    for name, indices in kept.items():
        if not isinstance(modules.get(name), nn.Conv2d):
            raise ValueError(f"{name!r} is not a Conv2d of {type(model).__name__}")
        channels = modules[name].out_channels
        keep = set(_kept_indices(name, indices, channels))
        plan[name] = [i for i in range(channels) if i not in keep]

    pruned = copy.deepcopy(model)
    pruned.eval()
    dg = tp.DependencyGraph().build_dependency(pruned, example_inputs=example_inputs)
    copies = dict(pruned.named_modules())
    for name, removed in plan.items():
        if not removed:
            continue
        group = dg.get_pruning_group(copies[name], tp.prune_conv_out_channels, idxs=removed)
        if not dg.check_pruning_group(group):
            raise ValueError(f"Torch-Pruning refuses to remove {len(removed)} channels of {name}: {group}")
        grouped = [dep.target.module for dep, _ in group if dep.handler == tp.prune_conv_in_channels
                   and _is_grouped(dep.target.module)]
        if grouped:
            _prune_through_grouped(dg, group, grouped[0], removed, name)
        else:
            group.prune()
    return pruned.train(model.training)


def _is_grouped(module: nn.Module) -> bool:
    """A Conv2d with groups that is not depthwise (whose groups mix several channels)."""
    return isinstance(module, nn.Conv2d) and 1 < module.groups < module.in_channels


def _prune_through_grouped(dg: tp.DependencyGraph, group, grouped: nn.Conv2d, removed: list[int], name: str) -> None:
    """Remove ``removed`` output channels of conv ``name``, whole groups of the grouped conv that reads them: the
    conv's side of ``group`` (not the grouped conv's: Torch-Pruning slices its inputs as if each group lost the
    same positions), the groups themselves (:func:`remove_groups`), and what their output channels reach."""
    per_in, per_out = grouped.in_channels // grouped.groups, grouped.out_channels // grouped.groups
    groups = sorted({i // per_in for i in removed})
    if sorted(removed) != [g * per_in + i for g in groups for i in range(per_in)]:
        raise ValueError(f"{name}: the grouped conv after it takes its channels in groups of {per_in}: remove whole "
                         "groups")
    if len(groups) == grouped.groups:
        raise ValueError(f"{name}: keep at least one group of the grouped conv after it")
    after = dg.get_pruning_group(grouped, tp.prune_conv_out_channels,
                                 idxs=[g * per_out + i for g in groups for i in range(per_out)])
    for dep, idxs in [*group, *after]:
        if dep.target.module is not grouped:
            dep(idxs)
    remove_groups(grouped, groups)
