"""Where things are: the one place that knows the project's folders and the variables that move them.

Each folder is found when it is asked for, never at import: ``$IBPRUNE_DATA`` (datasets), ``$IBPRUNE_IMAGENET``
(ImageNet's folder), ``$IBPRUNE_WEIGHTS``
(pretrained weights), ``$IBPRUNE_WORK`` (the grid's working files), ``$IBPRUNE_RESULTS`` (the grid's results),
each defaulting to a folder of the checkout this package runs from (:data:`REPO_ROOT`).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout this package runs from (its parent folder when installed elsewhere)."""


def _folder(variable: str, default: str) -> Path:
    return Path(os.environ.get(variable) or REPO_ROOT / default)


def data_dir() -> Path:
    """Datasets: ``$IBPRUNE_DATA``, else the checkout's ``data/``."""
    return _folder("IBPRUNE_DATA", "data")


def imagenet_dir() -> Path:
    """ImageNet (or any folder in its layout, ``train/`` and ``val/`` with a subfolder per class), streamed:
    ``$IBPRUNE_IMAGENET``, else ``imagenet/`` in the data folder."""
    return Path(os.environ.get("IBPRUNE_IMAGENET") or data_dir() / "imagenet")


def weights_dir() -> Path:
    """Pretrained weights: ``$IBPRUNE_WEIGHTS``, else the checkout's ``weights/``."""
    return _folder("IBPRUNE_WEIGHTS", "weights")


def work_dir() -> Path:
    """The grid's working files (checkpoints, locks): ``$IBPRUNE_WORK``, else the checkout's ``runs/``."""
    return _folder("IBPRUNE_WORK", "runs")


def results_dir() -> Path:
    """The grid's results, ``<results>/<scale>/<table>/<cell id>.json``: ``$IBPRUNE_RESULTS``, else the
    checkout's ``results/``."""
    return _folder("IBPRUNE_RESULTS", "results")


def experiments_dir() -> Path:
    """The tables' declarations: the checkout's ``experiments/``."""
    return REPO_ROOT / "experiments"
