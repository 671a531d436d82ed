"""MACs and parameters in the pruning papers' convention, and CPU latency.

The papers' tables count with ``thop.profile``: multiply-accumulates of convolutions and linear layers
plus BatchNorm's, parameters of every layer. ``ultralytics-thop`` keeps that convention: it gives
VGG-16 314.57M MACs and ResNet-56 127.62M / 0.85M, the papers' baselines. The paper's VGG-16 parameter
count, 14.98M, is the count *without* batch norm's affine parameters (14.99M with them), while its
ResNet-110 count, 1.73M, keeps them in (1.72M without): :class:`Counts` carries both.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Counts:
    """MACs ("FLOPs" in the papers' tables) and parameters of a model for one input.

    Attributes:
        macs: multiply-accumulates, thop's convention.
        params: every parameter element.
        norm_params: the parameter elements of normalisation layers (batch norm's weight and bias), which
            some of the papers' rows leave out.
    """

    macs: int
    params: int
    norm_params: int = 0

    @property
    def params_without_norm(self) -> int:
        """Parameters with the normalisation layers' affine parameters left out."""
        return self.params - self.norm_params

    def __str__(self) -> str:
        return (f"{self.macs / 1e6:.2f}M MACs, {self.params / 1e6:.2f}M params "
                f"({self.params_without_norm / 1e6:.2f}M without batch norm)")


def count(model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32)) -> Counts:
    """Count MACs and parameters for one image, on a deep copy (the model is left untouched).

    Args:
        model: any ``nn.Module``.
        input_size: (c, h, w) of one image.

    Returns:
        The counts; ``params`` is the exact number of parameter elements, ``norm_params`` the share of
        batch-norm (and other ``_NormBase``/``GroupNorm``/``LayerNorm``) layers.
    """
    return count_modules(model, input_size)[0]


def count_modules(model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32)) -> tuple[Counts, dict[str, float]]:
    """:func:`count`, and the MACs of every module without children by qualified name (thop's breakdown)."""
    from thop import profile

    probe = copy.deepcopy(model).cpu().float().eval()
    with torch.no_grad():
        macs, _, layers = profile(probe, inputs=(torch.zeros(1, *input_size),), verbose=False, ret_layer_info=True)
    by_module = {}
    pending = [("", layers)]
    while pending:
        prefix, level = pending.pop()
        for name, (module_macs, _, children) in level.items():
            if children:
                pending.append((f"{prefix}{name}.", children))
            else:
                by_module[prefix + name] = float(module_macs)
    norm_layers = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    norm_params = sum(p.numel() for m in model.modules() if isinstance(m, norm_layers) for p in m.parameters(recurse=False))
    counts = Counts(macs=int(round(macs)), params=sum(p.numel() for p in model.parameters()), norm_params=norm_params)
    return counts, by_module


@dataclass(frozen=True)
class Latency:
    """Median wall time of a forward pass, with the conditions it was measured under."""

    batch_size: int
    median_ms: float
    repeats: int
    threads: int
    device: str


def latency(
    model: nn.Module,
    batch_size: int = 1,
    input_size: tuple[int, int, int] = (3, 32, 32),
    repeats: int = 20,
    warmup: int = 3,
    threads: int | None = None,
) -> Latency:
    """Median forward time on the CPU, after warm-up, in eval mode and ``channels_last``.

    Args:
        model: the model to time (a deep copy is timed).
        batch_size: images per forward.
        input_size: (c, h, w).
        repeats: timed forwards; the median is reported.
        warmup: untimed forwards first.
        threads: torch intra-op threads for the measurement (default: torch's current setting).
    """
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        probe = copy.deepcopy(model).cpu().float().eval().to(memory_format=torch.channels_last)
        x = torch.randn(batch_size, *input_size).to(memory_format=torch.channels_last)
        times = []
        with torch.inference_mode():
            for step in range(warmup + repeats):
                start = time.perf_counter()
                probe(x)
                if step >= warmup:
                    times.append(time.perf_counter() - start)
        return Latency(batch_size, 1e3 * statistics.median(times), repeats, torch.get_num_threads(), "cpu")
    finally:
        torch.set_num_threads(previous_threads)
