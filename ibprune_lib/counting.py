"""MACs and parameters in the pruning papers' convention, and CPU latency (eager PyTorch or ONNX Runtime).

The papers' tables count with ``thop.profile``: multiply-accumulates of convolutions and linear layers
plus BatchNorm's, parameters of every layer. ``ultralytics-thop`` keeps that convention: it gives
VGG-16 314.57M MACs and ResNet-56 127.62M / 0.85M, the papers' baselines. The paper's VGG-16 parameter
count, 14.98M, is the count *without* batch norm's affine parameters (14.99M with them), while its
ResNet-110 count, 1.73M, keeps them in (1.72M without): :class:`Counts` carries both.
"""

from __future__ import annotations

import copy
import io
import statistics
import time
import warnings
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


RUNTIMES = ("eager", "onnxruntime")
"""Where :func:`latency` runs the model: eager PyTorch, or the graph exported to ONNX and run by ONNX Runtime
(what a user ships to a small ARM board such as the paper's Raspberry Pi 4B)."""


@dataclass(frozen=True)
class Latency:
    """Wall time of one forward pass, with the conditions it was measured under.

    Attributes:
        batch_size: images per forward.
        median_ms: median over the timed repeats.
        q1_ms, q3_ms: first and third quartiles, the spread.
        repeats: timed forwards (after the warm-up).
        threads: intra-op threads.
        device: always ``"cpu"``.
        runtime: one of ``RUNTIMES``.
    """

    batch_size: int
    median_ms: float
    q1_ms: float
    q3_ms: float
    repeats: int
    threads: int
    device: str
    runtime: str = "eager"


def _onnx_session(model: nn.Module, x: torch.Tensor, threads: int):
    """An ONNX Runtime session of ``model`` exported at ``x``'s shape (all graph optimisations, ``threads``
    intra-op threads, one inter-op thread)."""
    try:
        import onnxruntime
    except ImportError:
        raise ValueError("runtime 'onnxruntime' needs the onnx and onnxruntime packages: "
                         "pip install onnx onnxruntime") from None
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript-based exporter needs no onnxscript; it warns that it is old
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buffer, dynamo=False, input_names=["images"], output_names=["logits"])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])


def latency(
    model: nn.Module,
    batch_size: int = 1,
    input_size: tuple[int, int, int] = (3, 32, 32),
    repeats: int = 20,
    warmup: int = 3,
    threads: int | None = None,
    runtime: str = "eager",
) -> Latency:
    """Forward time on the CPU after warm-up: median and quartiles over ``repeats``.

    Args:
        model: the model to time (a deep copy is timed, in eval mode; eager runs it ``channels_last``).
        batch_size: images per forward.
        input_size: (c, h, w).
        repeats: timed forwards.
        warmup: untimed forwards first.
        threads: intra-op threads for the measurement (default: torch's current setting).
        runtime: ``"eager"`` (PyTorch) or ``"onnxruntime"`` (exported to ONNX at this batch size, then run by
            ONNX Runtime; needs the ``onnx`` and ``onnxruntime`` packages).

    Raises:
        ValueError: an unknown runtime, repeats < 1, or ONNX Runtime missing.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")
    previous_threads = torch.get_num_threads()
    threads = threads or previous_threads
    torch.set_num_threads(threads)
    try:
        probe = copy.deepcopy(model).cpu().float().eval()
        x = torch.randn(batch_size, *input_size, generator=torch.Generator().manual_seed(0))
        if runtime == "onnxruntime":
            session, inputs = _onnx_session(probe, x, threads), {"images": x.numpy()}
            forward = lambda: session.run(None, inputs)  # noqa: E731
        else:
            probe, x = probe.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
            forward = lambda: probe(x)  # noqa: E731
        times = []
        with torch.inference_mode():
            for step in range(warmup + repeats):
                start = time.perf_counter()
                forward()
                if step >= warmup:
                    times.append(1e3 * (time.perf_counter() - start))
        q1, _, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
        return Latency(batch_size, statistics.median(times), q1, q3, repeats, threads, "cpu", runtime)
    finally:
        torch.set_num_threads(previous_threads)
