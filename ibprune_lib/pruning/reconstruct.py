"""Reconstruction: refit each pruned layer's consumer by least squares so that, on the calibration images, its
output matches the unpruned network's (ThiNet, Luo et al. 2017; channel pruning, He et al. 2017).

After the surgery a consumer (the Conv2d or Linear that reads a pruned layer's channels) sees fewer input
channels, and the ones it sees come from a network whose earlier layers were pruned too. For each consumer, in
forward order, the refit solves a ridge regression of the unpruned consumer's output on the pruned network's
input to it:

    W' = argmin ‖Y − A W‖²_F + δ‖W‖²_F,   δ = RIDGE · tr(AᵀA) / d

with A the consumer's input patches in the pruned network ((images · positions), d = c_in' · k_h · k_w) and Y
the unpruned consumer's output before its BatchNorm ((images · positions), c_out). The BatchNorm after a conv
consumer is left as it is: the refit restores the statistics it was fitted to (a BatchNorm recalibration can
follow). A consumer with a bias refits it too (a column of ones in A). Grouped convolutions are left alone.
Only the consumers' weights change; the shapes, hence the counts, do not.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

RIDGE = 1e-6
"""The ridge damping relative to the mean diagonal of AᵀA: enough to keep the normal equations solvable when the
kept channels are collinear on the batch, small enough to leave an exact fit exact to ~1e-5."""


def _inputs_and_outputs(model: nn.Module, module: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(``module``'s input, ``module``'s output) when ``model`` runs on ``images``, in eval mode."""
    captured = {}

    def hook(_, args, output):
        captured["input"], captured["output"] = args[0].detach(), output.detach()

    handle = module.register_forward_hook(hook)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(images)
    finally:
        handle.remove()
        model.train(was_training)
    return captured["input"], captured["output"]


def _design(module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The regression's A: (samples, d) rows of ``module``'s receptive fields (a conv) or inputs (a Linear), with a
    column of ones last when ``module`` has a bias."""
    if isinstance(module, nn.Linear):
        A = inputs.reshape(-1, inputs.shape[-1])
    else:
        patches = F.unfold(inputs, module.kernel_size, module.dilation, module.padding, module.stride)  # (n, d, L)
        A = patches.transpose(1, 2).reshape(-1, patches.shape[1])
    if module.bias is not None:
        A = torch.cat([A, torch.ones(len(A), 1, dtype=A.dtype, device=A.device)], dim=1)
    return A


def _targets(module: nn.Module, outputs: torch.Tensor) -> torch.Tensor:
    """The regression's Y: (samples, c_out), the unpruned consumer's output position by position."""
    if isinstance(module, nn.Linear):
        return outputs.reshape(-1, outputs.shape[-1])
    return outputs.flatten(2).transpose(1, 2).reshape(-1, outputs.shape[1])


def ridge_fit(
    module: nn.Module, inputs: torch.Tensor, outputs: torch.Tensor, ridge: float = RIDGE, chunk: int = 16
) -> torch.Tensor:
    """argmin_W ‖Y − A W‖² + δ‖W‖², δ = ridge · mean diag(AᵀA), from the normal equations in float64, accumulated
    ``chunk`` images at a time so that A is never whole in memory.

    Args:
        module: the consumer (its geometry and whether it has a bias).
        inputs: (n, c_in', h, w) or (n, c_in') its inputs in the pruned network.
        outputs: (n, c_out, h', w') or (n, c_out) the unpruned consumer's outputs on the same images.
        ridge: the damping relative to the mean diagonal of AᵀA.
        chunk: images per accumulation step.

    Returns:
        (d, c_out), d = c_in'·k_h·k_w (+ 1 for a bias, last), in the inputs' dtype.
    """
    gram = cross = None
    for start in range(0, len(inputs), chunk):
        A = _design(module, inputs[start : start + chunk]).double()
        Y = _targets(module, outputs[start : start + chunk]).double()
        gram = A.T @ A if gram is None else gram + A.T @ A
        cross = A.T @ Y if cross is None else cross + A.T @ Y
    gram.diagonal().add_(ridge * gram.diagonal().mean().clamp_min(1e-12))
    return torch.linalg.solve(gram, cross).to(inputs.dtype)


def reconstructable(module: nn.Module) -> bool:
    """Whether ``module`` can be refit here: a Linear, or a Conv2d with one group."""
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1)


@torch.no_grad()
def reconstruct_consumers(
    original: nn.Module, pruned: nn.Module, images: torch.Tensor, consumer_names: list[str], ridge: float = RIDGE
) -> dict[str, dict]:
    """Refit, in the given (forward) order, each named consumer of ``pruned`` to the output of its namesake in
    ``original`` on ``images``.

    Args:
        original: the unpruned network (not modified).
        pruned: the pruned copy; its consumers' weights (and biases) are replaced in place.
        images: (bs, c, h, w) model inputs (normalised), on the models' device.
        consumer_names: qualified names of the consumers to refit, in forward order.
        ridge: the damping (:data:`RIDGE`).

    Returns:
        ``{name: {"error_before": ..., "error_after": ...}}``: ‖Y − output‖ / ‖Y‖ on the calibration batch before
        and after the refit; a consumer that cannot be refit (grouped) is named with ``"skipped"`` and why.
    """
    report = {}
    for name in consumer_names:
        unpruned_module, module = original.get_submodule(name), pruned.get_submodule(name)
        if not reconstructable(module):
            report[name] = {"skipped": f"a {type(module).__name__} with groups: not refit"}
            continue
        target = _inputs_and_outputs(original, unpruned_module, images)[1]
        inputs, before = _inputs_and_outputs(pruned, module, images)
        W = ridge_fit(module, inputs, target, ridge)
        if module.bias is not None:
            module.bias.copy_(W[-1])
            W = W[:-1]
        module.weight.copy_(W.T.reshape(module.weight.shape))
        after = _inputs_and_outputs(pruned, module, images)[1]
        scale = target.norm().clamp_min(1e-12)
        report[name] = {"error_before": float((target - before).norm() / scale),
                        "error_after": float((target - after).norm() / scale)}
    return report
