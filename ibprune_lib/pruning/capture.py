"""Features of the prunable layers on one calibration batch, through forward hooks on the original model.

Three kinds of features, by what a criterion regresses or scores:

* ``"rows"`` (book/formulation.md §1, the default direction): ``inputs`` = the first consumer's input at the
  layer's channels (the candidates after BN, ReLU and any pooling, as the consumer sees them; a slice of it
  after a concatenation), ``outputs`` = the consumers' responses (conv → BN, or a Linear's output), stacked
  along the channels when a layer has several consumers.
* ``"columns"``: ``inputs`` = the producing conv's input, ``outputs`` = its own response (conv → BN, or the conv
  alone when no BN follows it).
* ``"maps"``: ``outputs`` = the candidate channels' maps, ReLU of the producer's BN (or conv) output (where HRank
  hooks them, before any pooling); ``inputs`` is None.

The model runs in eval mode under ``torch.inference_mode`` (its mode is restored), hooks are removed whatever
happens, and the layers are captured in as few forwards as fit in ``max_bytes``: all at once for the CIFAR
models, a few layers per forward for ResNet-50 at 224².
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .layers import PrunableLayer

FEATURE_KINDS = ("rows", "columns", "maps")

CAPTURE_MEMORY_BUDGET = 2**30
"""Bytes of captured features one forward may hold."""


@dataclass
class LayerFeatures:
    """What one prunable layer sees and makes on the calibration batch.

    Attributes:
        inputs: (bs, c_in, h, w) or (bs, c_in), the regression's X side; None for ``"maps"``.
        outputs: (bs, c_out, h', w') or (bs, c_out), the Y side, or the candidate maps for ``"maps"``.
    """

    inputs: torch.Tensor | None
    outputs: torch.Tensor


def _hook_points(layer: PrunableLayer, kind: str) -> tuple[nn.Module | None, list[nn.Module]]:
    """(module whose forward input is ``inputs`` or None, modules whose forward outputs make ``outputs``)."""
    if kind == "rows":
        return layer.consumer, [c.bn or c.module for c in layer.consumers]
    response = layer.bn or layer.conv  # the conv's own output when no BatchNorm follows it
    if kind == "columns":
        return layer.conv, [response]
    return None, [response]


def _stack(responses: list[torch.Tensor]) -> torch.Tensor:
    """Several consumers' responses as one (bs, q, h, w) or (bs, q) tensor: stacked along the channels, each
    averaged over its positions first when their sizes differ (a conv and a Linear, or different strides)."""
    if len(responses) == 1:
        return responses[0]
    if len({r.shape[2:] for r in responses}) > 1:
        responses = [r.flatten(2).mean(dim=2) if r.ndim > 2 else r for r in responses]
    return torch.cat(responses, dim=1)


def _forward_with_hooks(
    model: nn.Module, images: torch.Tensor, layers: list[PrunableLayer], kind: str
) -> list[LayerFeatures]:
    """One forward of ``model`` on ``images`` in eval mode, recording ``kind`` features of ``layers``."""
    store: dict[tuple[int, int], torch.Tensor] = {}
    handles, responses = [], []  # responses: how many output hooks each layer has

    def recorder(index: int, slot: int, channels: slice | None = None):
        def hook(module, args, output):
            tensor = args[0] if slot < 0 else output
            if channels is not None:
                tensor = tensor[:, channels]
            if kind == "maps":
                tensor = F.relu(tensor)
            store[(index, slot)] = tensor.detach().clone()  # clone: an in-place ReLU follows some BNs

        return hook

    was_training = model.training
    try:
        for index, layer in enumerate(layers):
            input_module, output_modules = _hook_points(layer, kind)
            if input_module is not None:
                channels = None
                if kind == "rows":  # the layer's channels among the first consumer's inputs
                    offset = layer.consumers[0].offset
                    channels = slice(offset, offset + layer.channels * layer.per_candidate("consumer"))
                handles.append(input_module.register_forward_hook(recorder(index, -1, channels)))
            for slot, module in enumerate(output_modules):
                handles.append(module.register_forward_hook(recorder(index, slot)))
            responses.append(len(output_modules))
        model.eval()
        with torch.inference_mode():
            model(images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return [LayerFeatures(store.get((i, -1)), _stack([store[(i, slot)] for slot in range(n)]))
            for i, n in enumerate(responses)]


def _chunks(model: nn.Module, images: torch.Tensor, layers: list[PrunableLayer], kind: str, max_bytes: int):
    """Split ``layers`` into consecutive runs whose features on the whole batch fit in ``max_bytes``."""
    probe = _forward_with_hooks(model, images[:1], layers, kind)
    sizes = [
        len(images) * sum(t.numel() * t.element_size() for t in (f.inputs, f.outputs) if t is not None) for f in probe
    ]
    chunk, used = [], 0
    for layer, size in zip(layers, sizes):
        if chunk and used + size > max_bytes:
            yield chunk
            chunk, used = [], 0
        chunk.append(layer)
        used += size
    yield chunk


def capture(
    model: nn.Module,
    images: torch.Tensor,
    layers: list[PrunableLayer],
    kind: str = "rows",
    max_bytes: int = CAPTURE_MEMORY_BUDGET,
) -> Iterator[tuple[PrunableLayer, LayerFeatures]]:
    """Yield each layer's features on ``images``, in the order of ``layers``.

    Args:
        model: the original (unpruned) model the layers belong to; not modified.
        images: (bs, c, h, w) model inputs (normalised), on the model's device; bs ≥ 2.
        layers: from :func:`~ibprune_lib.pruning.layers.prunable_layers` on ``model``.
        kind: one of ``FEATURE_KINDS``.
        max_bytes: features held at once; a single layer larger than this is captured alone.

    Yields:
        (layer, its LayerFeatures), tensors on the model's device.

    Raises:
        ValueError: unknown kind, or fewer than two images.
    """
    if kind not in FEATURE_KINDS:
        raise ValueError(f"unknown feature kind {kind!r}: choose one of {', '.join(FEATURE_KINDS)}")
    if images.ndim != 4 or len(images) < 2:
        raise ValueError(f"images must be (bs, c, h, w) with bs >= 2, got shape {tuple(images.shape)}")
    for chunk in _chunks(model, images, layers, kind, max_bytes):
        yield from zip(chunk, _forward_with_hooks(model, images, chunk, kind))
