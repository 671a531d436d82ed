"""Helpers the book's notebooks share: the scale, the shared ResNet-56 on real CIFAR-10, feature capture,
glue and figure style.

Nothing here is part of the method; it keeps the notebooks short and their numbers honest (every glued
value goes through :func:`plain`, so format specs in the prose work on Python floats, never NumPy scalars).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from ..grid import Grid
from ..grid.protocol import SCALES


RESNET56_FILE = "resnet56-4bfd9763.th"


def check_scale(scale: str) -> str:
    """Return ``scale`` if it is one of ``SCALES``, else raise a ValueError naming the choices."""
    if scale not in SCALES:
        raise ValueError(f"IBPRUNE_SCALE must be one of {', '.join(SCALES)}, got {scale!r}")
    return scale


def plain(value):
    """A glue-able Python value: 0-d tensors and NumPy scalars become ``float``/``int``; strings pass."""
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (int, float, str)):
        return value
    raise TypeError(f"glue a number or a string, got {type(value).__name__}")


def show_settings(scale: str, settings: dict) -> None:
    """Glue ``scale`` and show the notebook's settings at that scale as one line of Markdown.

    The three-scale settings dict is plumbing (its cell's input is removed from the book); this line tells the
    reader what the shown code ran with, e.g. "Scale smoke: batch_size = 64 · block = layer2.4".
    """
    from IPython.display import Markdown, display

    def text(value) -> str:
        if isinstance(value, (tuple, list)):
            return ", ".join(text(v) for v in value)
        return f"`{value}`" if isinstance(value, str) else str(value)

    glue("scale", scale)
    items = " · ".join(f"{key} = {text(value)}" for key, value in settings.items())
    display(Markdown(f"**Scale `{scale}`** (set `IBPRUNE_SCALE` to change it): {items}"))


def glue(name: str, value, display: bool = False) -> None:
    """``myst_nb.glue`` of :func:`plain` (value), not displayed by default (the prose shows it)."""
    from myst_nb import glue as _glue

    _glue(name, plain(value), display=display)


FIGURE_DPI = 110
"""Pixels per inch of the book's figures."""
SMALLEST_FONT_PT = 9
"""The smallest text :func:`use_style` sets (legends, ticks at 9.5)."""


def use_style() -> None:
    """The book's matplotlib defaults (readable at the page width, light grid, constrained layout), and no warnings
    that would put a stderr block on a page."""
    # GraphLasso's operator norm goes through a sparse CSR product, which torch flags as beta on first use.
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    import matplotlib as mpl

    mpl.rcParams.update(
        {
            "figure.dpi": FIGURE_DPI,
            "savefig.dpi": FIGURE_DPI,
            "figure.constrained_layout.use": True,
            "font.size": 11,
            "axes.titlesize": 11,
            "axes.labelsize": 11,
            "legend.fontsize": SMALLEST_FONT_PT,
            "xtick.labelsize": 9.5,
            "ytick.labelsize": 9.5,
            "figure.titlesize": 12,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "image.cmap": "viridis",
        }
    )


def log_ticks(ax, values, axis: str = "x") -> None:
    """Label a log axis exactly at ``values`` (no minor labels, no 2×10¹ clutter)."""
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullFormatter, NullLocator

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(FixedLocator([float(v) for v in values]))
    target.set_major_formatter(FixedFormatter([f"{v:g}" for v in values]))
    target.set_minor_locator(NullLocator())
    target.set_minor_formatter(NullFormatter())


def plain_log_axis(ax, axis: str = "y") -> None:
    """Label a log axis with plain numbers (0.4, 0.6, not 4×10⁻¹) at steps that suit its span.

    Call it after plotting: the steps come from the current limits, 1-2-5 a decade over one to three decades,
    every 1…9 within a decade (where a plain log axis would have no labelled tick at all).
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    target = ax.yaxis if axis == "y" else ax.xaxis
    low, high = sorted(ax.get_ylim() if axis == "y" else ax.get_xlim())
    decades = math.log10(high / low)
    subs = (1.0,) if decades > 3 else (1.0, 2.0, 5.0) if decades > 1 else tuple(float(d) for d in range(1, 10))
    target.set_major_locator(LogLocator(subs=subs))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    target.set_minor_formatter(NullFormatter())


class Stopwatch:
    """Wall time since construction, in seconds (``elapsed``)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def pretrained_resnet56() -> nn.Module:
    """The shared CIFAR-10 ResNet-56 (93.39 % top-1), from ``$IBPRUNE_WEIGHTS`` (fetched once if missing), in
    eval mode."""
    from ...download import pretrained_weights
    from ...models import get_model, load_weights

    return load_weights(get_model("resnet56"), pretrained_weights(RESNET56_FILE, progress=False)).eval()


def calibration(
    batch_size: int, seed: int = 0, model_name: str = "resnet56", sort_by_class: bool = True,
    class_balanced: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded calibration batch of the CIFAR-10 training set, normalised for ``model_name``.

    Args:
        batch_size: images (a multiple of 10 gives equal classes when class-balanced).
        seed: the draw's seed.
        model_name: selects the normalisation.
        sort_by_class: order the batch by label (Gram heatmaps then show class blocks).
        class_balanced: draw the same number of images of every class (``data.calibration_batch``; the grid
            and the benchmarks draw plainly).

    Returns:
        (images (bs, 3, 32, 32) float32, labels (bs,) int64).
    """
    from ...data import calibration_batch, load_cifar, normalise

    data = load_cifar("cifar10", download=True)
    images, labels = calibration_batch(data.x_train, data.y_train, batch_size, seed, class_balanced=class_balanced)
    if sort_by_class:
        order = torch.argsort(labels, stable=True)
        images, labels = images[order], labels[order]
    return normalise(images, model_name), labels


def committed_grid(table: str, scale: str) -> tuple[Grid, dict[str, dict | None]]:
    """A table's committed results, as a page at ``scale`` shows them: smoke and cpu pages both read the
    committed cpu cells (no cell runs in the book), a paper page the paper-scale ones.

    Returns:
        (the grid, whose ``scale`` is the scale its results come from; ``{cell id: result, or None}``).
    """
    grid = Grid(table, "cpu" if check_scale(scale) == "smoke" else scale)
    return grid, {cell.id: grid.read(cell) for cell in grid.cells}


def basic_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, block) for every residual block with ``conv1``/``bn1``/``conv2``/``bn2``, in forward order."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if all(hasattr(module, part) for part in ("conv1", "bn1", "conv2", "bn2")) and name
    ]


def block_features(
    model: nn.Module, images: torch.Tensor, names: Iterable[str] | None = None
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per residual block, the regression of book/formulation.md §1 for its inner conv, as ``prune`` captures it.

    X is the input of ``conv2`` (bn1 → ReLU of ``conv1``: the candidate channels, conv1's filters) and Y the
    output of ``bn2`` (what conv2 makes of them, per channel): ``pruning.capture``'s rows features of the
    prunable layer ``<block>.conv1``.

    Args:
        model: a CIFAR ResNet (not modified).
        images: (bs, 3, 32, 32) normalised.
        names: block names to capture (default: all, see :func:`basic_blocks`).

    Returns:
        ``{name: (X (bs, mid, h, w), Y (bs, c_out, h, w))}`` in forward order.

    Raises:
        ValueError: an unknown block name.
    """
    from ...pruning import capture, survey_layers

    blocks = [name for name, _ in basic_blocks(model)]
    wanted = blocks if names is None else list(names)
    unknown = [name for name in wanted if name not in blocks]
    if unknown:
        raise ValueError(f"unknown blocks {unknown}: choose from {blocks[:3]} … {blocks[-1]}")
    layers = {layer.name: layer for layer in survey_layers(model, tuple(images.shape[1:]), skip_first=0).prunable}
    chosen = [layers[f"{name}.conv1"] for name in wanted]
    return {layer.name.removesuffix(".conv1"): (features.inputs.clone(), features.outputs.clone())
            for layer, features in capture(model, images, chosen)}


@torch.no_grad()
def block_outputs(model: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The output of every residual block (ITPruner's features), ``{name: (bs, c, h, w)}`` in forward order."""
    store: dict[str, torch.Tensor] = {}
    handles = [
        block.register_forward_hook(lambda m, inp, out, n=name: store.__setitem__(n, out))
        for name, block in basic_blocks(model)
    ]
    try:
        model.eval()(images)
    finally:
        for handle in handles:
            handle.remove()
    return {name: store[name].clone() for name, _ in basic_blocks(model)}


def short_commit(commit: str) -> str:
    """A provenance commit as a caption prints it: 10 hex digits, and "+dirty" when the tree was not clean."""
    return commit[:10] + ("+dirty" if commit.endswith("+dirty") else "")


def hardware_summary() -> str:
    """One line naming the machine a notebook ran on: CPU model, cores, torch threads, GPU if any."""
    from ...provenance import hardware

    info = hardware()
    gpu = f", GPU {info['gpu']}" if info["gpu"] else ", no GPU"
    threads = info["torch_threads"]
    return (f"{info['cpu']}, {info['cores']} cores, {threads} torch thread{'' if threads == 1 else 's'}{gpu}, "
            f"torch {torch.__version__}")


def geometric_grid(high: float, low: float, n: int) -> list[float]:
    """n values from ``high`` down to ``low``, equally spaced in log."""
    if not (high > 0 and low > 0 and n >= 2):
        raise ValueError(f"need high, low > 0 and n >= 2, got {high}, {low}, {n}")
    return [float(v) for v in np.exp(np.linspace(math.log(high), math.log(low), n))]
