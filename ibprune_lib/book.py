"""Helpers the book's notebooks share: the scale, the shared ResNet-56 on real CIFAR-10, feature capture,
glue and figure style.

Nothing here is part of the method; it keeps the notebooks short and their numbers honest (every glued
value goes through :func:`plain`, so format specs in the prose work on Python floats, never NumPy scalars).
"""

from __future__ import annotations

import math
import os
import re
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

# tqdm.auto (the λ search's progress bar) warns on import in a kernel without ipywidgets; the notebooks never
# show progress bars, and a stray stderr line would fail the strict book build.
warnings.filterwarnings("ignore", message="IProgress not found")
# GraphLasso's operator norm goes through a sparse CSR product, which torch flags as beta on first use.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")

SCALES = ("smoke", "cpu", "paper")
"""smoke: real data, tiny batches, about a minute a notebook on 2 cores (CI); cpu: the defaults of the
method (bs = 128, every layer), minutes a notebook; paper: the paper's settings where they cost more."""

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
    """The book's matplotlib defaults: readable at the page width, light grid, constrained layout."""
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
    from .download import pretrained_weights
    from .models import get_model, load_weights

    return load_weights(get_model("resnet56"), pretrained_weights(RESNET56_FILE, progress=False)).eval()


def calibration(
    batch_size: int, seed: int = 0, model_name: str = "resnet56", sort_by_class: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """A class-balanced calibration batch of the CIFAR-10 training set, normalised for ``model_name``.

    Args:
        batch_size: images (a multiple of 10 gives equal classes).
        seed: the draw's seed.
        model_name: selects the normalisation.
        sort_by_class: order the batch by label (Gram heatmaps then show class blocks).

    Returns:
        (images (bs, 3, 32, 32) float32, labels (bs,) int64).
    """
    from .data import calibration_batch, load_cifar, normalise

    data = load_cifar("cifar10", download=True)
    images, labels = calibration_batch(data.x_train, data.y_train, batch_size, seed, class_balanced=True)
    if sort_by_class:
        order = torch.argsort(labels, stable=True)
        images, labels = images[order], labels[order]
    return normalise(images, model_name), labels


def basic_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, block) for every residual block with ``conv1``/``bn1``/``conv2``/``bn2``, in forward order."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if all(hasattr(module, part) for part in ("conv1", "bn1", "conv2", "bn2")) and name
    ]


@torch.no_grad()
def block_features(
    model: nn.Module, images: torch.Tensor, names: Iterable[str] | None = None
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Capture, per residual block, the regression of book/formulation.md §1 for its inner conv.

    X is the input of ``conv2`` (bn1 → ReLU of ``conv1``: the candidate channels, conv1's filters) and Y the
    output of ``bn2`` (what conv2 makes of them, per channel). Hooks are removed afterwards.

    Args:
        model: a CIFAR ResNet (not modified).
        images: (bs, 3, 32, 32) normalised.
        names: block names to capture (default: all, see :func:`basic_blocks`).

    Returns:
        ``{name: (X (bs, mid, h, w), Y (bs, c_out, h, w))}`` in forward order.

    Raises:
        ValueError: an unknown block name.
    """
    blocks = dict(basic_blocks(model))
    wanted = list(blocks) if names is None else list(names)
    unknown = [name for name in wanted if name not in blocks]
    if unknown:
        raise ValueError(f"unknown blocks {unknown}: choose from {list(blocks)[:3]} … {list(blocks)[-1]}")
    store: dict[str, list] = {name: [None, None] for name in wanted}
    handles = []
    try:
        for name in wanted:
            block = blocks[name]
            handles.append(block.conv2.register_forward_pre_hook(lambda m, inp, n=name: store[n].__setitem__(0, inp[0])))
            handles.append(block.bn2.register_forward_hook(lambda m, inp, out, n=name: store[n].__setitem__(1, out)))
        model.eval()(images)
    finally:
        for handle in handles:
            handle.remove()
    return {name: (x.clone(), y.clone()) for name, (x, y) in store.items()}


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
    from .provenance import hardware

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


def write_book_config(scale: str, build_dir: str | os.PathLike = "_build", source: str | os.PathLike = "_config.yml"):
    """Write ``<build_dir>/config-<scale>.yml``: ``source`` with the execution cache set to one per scale.

    Jupyter Book's execution cache keys on the notebooks' code, not on ``IBPRUNE_SCALE``, so a smoke build
    and a cpu build need separate caches. Sphinx's doctrees do not know the scale either: when the scale
    differs from the last build's (``<build_dir>/.scale``), the doctrees and HTML are removed so that every
    page is read again (execution still comes from the scale's own cache).

    Args:
        scale: one of ``SCALES``.
        build_dir: the book's build folder.
        source: the book's ``_config.yml``.

    Returns:
        The path of the written configuration.
    """
    import shutil

    import yaml

    check_scale(scale)
    build = Path(build_dir)
    build.mkdir(parents=True, exist_ok=True)
    marker = build / ".scale"
    if marker.is_file() and marker.read_text().strip() != scale:
        for stale in (".doctrees", "html", "jupyter_execute"):
            shutil.rmtree(build / stale, ignore_errors=True)
    config = yaml.safe_load(Path(source).read_text())
    config.setdefault("execute", {})["cache"] = str((build / ".jupyter_cache" / scale).resolve())
    out = build / f"config-{scale}.yml"
    out.write_text(f"# generated from {source} for IBPRUNE_SCALE={scale}; do not edit\n" + yaml.safe_dump(config, sort_keys=False))
    marker.write_text(scale + "\n")
    return out


FORBIDDEN_TEXT = {
    r"Not written yet": "a placeholder page",
    r"METHOD\.md": "a file this repository does not have (cite the formulation page)",
    r"\bissues? #?\d+\b": "tracker language",
    r"Traceback \(most recent call last\)": "a traceback in an output",
}


COLUMN_PX = {False: 672, True: 920}
"""Width of the content column at a 1280 px window (sphinx-book-theme, measured in Chromium): a normal cell, and
a cell tagged ``full-width``."""
READABLE_PX = 9
"""The smallest text size a reader can read, in rendered pixels."""


def smallest_text_px(natural_width: int, full_width: bool) -> float:
    """Rendered size of a figure's smallest text in a 1280 px window: a figure wider than its column shrinks."""
    return SMALLEST_FONT_PT * FIGURE_DPI / 72 * min(1.0, COLUMN_PX[full_width] / natural_width)


def page_problems(html: str, page_dir: str | os.PathLike | None = None) -> list[str]:
    """What a reader would stumble on in one built page, as found by script.

    Checks the text for :data:`FORBIDDEN_TEXT`, cell outputs for stderr, every figure image in a cell output for
    a caption (a ``<figure>`` with ``<figcaption>``) and, with ``page_dir``, for text readable at its rendered
    size (:func:`smallest_text_px` ≥ :data:`READABLE_PX`), and every table in a cell output for a
    ``<caption>`` or a caption paragraph right before it.

    Args:
        html: the page's HTML.
        page_dir: the folder the page is in, to open its images; None skips the text-size check.

    Returns:
        One line per problem (empty when the page is clean).
    """
    import re

    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    main = soup.find("main") or soup
    text = main.get_text(" ")
    problems = [f"{why}: {match.group(0)!r}" for pattern, why in FORBIDDEN_TEXT.items()
                for match in [re.search(pattern, text, flags=re.IGNORECASE)] if match]
    for output in main.select("div.cell_output"):
        if output.select(".stderr, .output.stderr"):
            problems.append("a cell output with stderr")
        for image in output.find_all("img"):
            figure = image.find_parent("figure")
            if figure is None or figure.find("figcaption") is None:
                problems.append(f"a figure without a caption ({image.get('alt') or image.get('src', '')[:40]})")
            if page_dir is not None:
                problems += _text_size_problems(image, Path(page_dir))
        problems += ["a table without a caption" for table in output.find_all("table") if not _has_caption(table)]
    return problems


def _text_size_problems(image, page_dir: Path) -> list[str]:
    from PIL import Image

    cell = image.find_parent("div", class_="cell")
    full_width = cell is not None and "tag_full-width" in (cell.get("class") or [])
    if not (page_dir / image["src"]).is_file():
        return [f"a figure whose image file is missing ({image['src']})"]
    with Image.open(page_dir / image["src"]) as png:
        width = png.width
    px = smallest_text_px(width, full_width)
    if px >= READABLE_PX:
        return []
    widest = COLUMN_PX[True] * SMALLEST_FONT_PT / 72 / READABLE_PX  # inches, full width, drawn at FIGURE_DPI
    return [f"a figure whose smallest text renders at {px:.1f} px in a 1280 px window ({image['src'][-20:]}, "
            f"{width} px wide): tag its cell full-width (figures up to {widest:.1f} in wide) or narrow it"]


def _has_caption(table) -> bool:
    """A ``<caption>``, or a paragraph just before the table (or before the theme's scrolling wrapper around
    it) in the same output: a Markdown table's caption."""
    if table.find("caption") is not None:
        return True
    anchor = table.parent if "pst-scrollable-table-container" in (table.parent.get("class") or []) else table
    previous = anchor.find_previous_sibling()
    return previous is not None and previous.name == "p"


def check_pages(html_dir: str | os.PathLike) -> dict[str, list[str]]:
    """:func:`page_problems` of every content page under a built book's HTML folder (page → problems)."""
    skip = {"genindex.html", "search.html"}
    pages = sorted(p for p in Path(html_dir).rglob("*.html") if p.name not in skip and "_static" not in p.parts)
    found = {str(p.relative_to(html_dir)): page_problems(p.read_text(encoding="utf-8"), p.parent) for p in pages}
    return {page: problems for page, problems in found.items() if problems}


SHOWN_LINE_CHARS = 79
"""The longest line of code a notebook shows (PEP 8's): at 1280 px the content column shows about 80."""
_HIDDEN_INPUT = {"remove-cell", "remove-input"}
_COLLAPSED_INPUT = {"hide-input"}


def notebook_problems(cells: list[dict]) -> list[str]:
    """What a reader of a notebook's page would scroll past or squint at, from the notebook's cells.

    Args:
        cells: the ``cells`` of an nbformat-4 notebook (dicts with ``cell_type``, ``source``, ``metadata``).

    Returns:
        One line per problem: a shown line of code over :data:`SHOWN_LINE_CHARS` characters (cells whose
        input is removed are exempt), a ``book.glue`` call in a cell shown open (glue is plumbing: it goes in
        a ``remove-cell`` cell), a font size under :data:`SMALLEST_FONT_PT`, a cell that shows a figure
        (``plt.show()``) with no caption in its ``mystnb.figure`` metadata, or not exactly one ``parameters``
        cell.
    """
    problems, parameters = [], 0
    for number, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        tags = set(cell.get("metadata", {}).get("tags", []))
        parameters += "parameters" in tags
        source = "".join(cell["source"])
        where = f"code cell {number}"
        if not tags & _HIDDEN_INPUT:
            for line in source.splitlines():
                if len(line) > SHOWN_LINE_CHARS:
                    problems.append(f"{where}: a shown line of {len(line)} characters (at most {SHOWN_LINE_CHARS})")
            if not tags & _COLLAPSED_INPUT and "book.glue(" in source:
                problems.append(f"{where}: book.glue in shown code (move it to a remove-cell cell)")
        caption = cell.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("caption")
        if "plt.show()" in source and "remove-cell" not in tags and not caption:
            problems.append(f"{where}: a figure without a caption (give the cell mystnb.figure.caption metadata)")
        for size in re.findall(r"fontsize=([\w.\"']+)", source):
            value = size.strip("\"'")
            if not value.replace(".", "", 1).isdigit() or float(value) < SMALLEST_FONT_PT:
                problems.append(f"{where}: fontsize={value} (at least {SMALLEST_FONT_PT} pt)")
    if parameters != 1:
        problems.append(f"{parameters} cells tagged parameters (exactly one reads IBPRUNE_SCALE)")
    return problems


def main(argv: list[str] | None = None) -> None:
    """``config --scale S``: write the per-scale book config and print its path; ``check HTML_DIR``: exit 1 when a
    built page shows a placeholder, tracker language, a traceback or stderr, an uncaptioned figure or table, or a
    figure whose text is too small to read."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ibprune_lib.book", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser("config", help="write _build/config-<scale>.yml for `jupyter-book build --config`")
    config.add_argument("--scale", default=os.environ.get("IBPRUNE_SCALE", "smoke"), choices=SCALES)
    config.add_argument("--build-dir", default="_build")
    config.add_argument("--source", default="_config.yml")
    check = commands.add_parser("check", help="check the built pages for what a reader would stumble on")
    check.add_argument("html_dir", help="the built book's HTML folder, e.g. _build/html")
    args = parser.parse_args(argv)
    if args.command == "config":
        print(write_book_config(args.scale, args.build_dir, args.source))
        return
    problems = check_pages(args.html_dir)
    for page, lines in problems.items():
        for line in lines:
            print(f"{page}: {line}")
    if problems:
        raise SystemExit(1)
    print(f"book check: every page under {args.html_dir} passed")


if __name__ == "__main__":
    main()
