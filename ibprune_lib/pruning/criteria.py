"""Criteria: which k filters of a layer to keep (book/formulation.md §6), all behind one interface.

A criterion is a small callable, ``criterion(layer, features, k) -> Selection`` (``kept`` ascending, one score
per channel, diagnostics), with ``features`` the :class:`~ibprune_lib.pruning.capture.LayerFeatures` of the
kind it names in ``criterion.features`` (None: it needs only the weights). The baselines score every channel
and keep the k highest; the information-bottleneck methods go through :func:`ibprune_lib.selection.select`.
Every criterion gets the same per-layer keep counts from the budget.

The scores themselves are pure functions over tensors:

* :func:`l1_norm_scores`: L1 norm of each filter (Li et al. 2016).
* :func:`random_scores`: seeded uniform noise.
* :func:`hrank_scores`: mean matrix rank of each channel's maps over the batch (HRank, Lin et al. 2020).
* :func:`fpgm_scores`: summed distance of each filter to the others (FPGM, He et al. 2019): the filters
  nearest the geometric median are the most replaceable and go first.
"""

from __future__ import annotations

import time
import zlib
from abc import ABC, abstractmethod

import torch

from ..lasso.adaptive import top_k
from ..selection import METHODS as IB_METHODS
from ..selection import Selection, select
from ..settings import SelectionSettings
from .capture import LayerFeatures
from .layers import PrunableLayer

BASELINES = ("l1", "random", "hrank", "fpgm")
METHODS = (*IB_METHODS, *BASELINES)


def l1_norm_scores(weight: torch.Tensor) -> torch.Tensor:
    """L1 norm of each filter.

    Args:
        weight: (c_out, c_in, kh, kw) conv weights (any shape with filters along dim 0).

    Returns:
        (c_out,) Σ|w| per filter.
    """
    return weight.detach().flatten(1).abs().sum(1)


def random_scores(n: int, seed: int) -> torch.Tensor:
    """(n,) uniform [0, 1) scores from a generator seeded with ``seed``: the same seed gives the same scores."""
    return torch.rand(n, generator=torch.Generator().manual_seed(seed))


def hrank_scores(maps: torch.Tensor) -> torch.Tensor:
    """Average rank of each channel's feature maps.

    Args:
        maps: (bs, c, h, w) a layer's output maps on a batch.

    Returns:
        (c,) float, the matrix rank of each (h, w) map averaged over the batch.
    """
    return torch.linalg.matrix_rank(maps.detach().float()).float().mean(0)


def fpgm_scores(weight: torch.Tensor) -> torch.Tensor:
    """Distance of each filter to the others, the geometric-median criterion of FPGM.

    The geometric median minimises the summed Euclidean distance to all filters; like FPGM's code, each
    filter's summed distance to the others stands in for its distance to it. Low score: near the median,
    replaceable by the rest, pruned first.

    Args:
        weight: (c_out, c_in, kh, kw) conv weights.

    Returns:
        (c_out,) Σ_j ‖w_i − w_j‖₂.
    """
    flat = weight.detach().flatten(1).double()
    return torch.cdist(flat, flat).sum(1).float()


def candidate_filters(layer: PrunableLayer) -> torch.Tensor:
    """(layer.channels, d) the producing conv's weights, one row per candidate: a filter, or a group's filters
    side by side."""
    return layer.conv.weight.detach().reshape(layer.channels, -1)


def candidate_maps(maps: torch.Tensor, candidates: int) -> torch.Tensor:
    """Channels as candidates: (bs, c, h, w) or (bs, c) features → (bs, candidates, c/candidates·h, w), each
    candidate's channels stacked along the height (unchanged when every channel is a candidate). A kernel on a
    candidate's maps then sees all its channels together (book/formulation.md §5)."""
    bs, channels = maps.shape[:2]
    if channels == candidates:
        return maps
    maps = maps if maps.ndim == 4 else maps[:, :, None, None]
    return maps.reshape(bs, candidates, -1, maps.shape[-1])


class Criterion(ABC):
    """Chooses k channels of a prunable layer.

    Attributes:
        name: the method's name in reports.
        features: the capture kind it needs (``"rows"``, ``"columns"``, ``"maps"``) or None.
    """

    name: str
    features: str | None = None

    @abstractmethod
    def __call__(self, layer: PrunableLayer, features: LayerFeatures | None, k: int) -> Selection:
        """Keep k of ``layer``'s channels.

        Args:
            layer: the layer, its modules those of the original model.
            features: the layer's features of kind ``self.features`` (None when it needs none).
            k: channels to keep, 1 ≤ k ≤ layer.channels.
        """


class ScoreCriterion(Criterion):
    """A criterion that scores every channel and keeps the k highest."""

    @abstractmethod
    def scores(self, layer: PrunableLayer, features: LayerFeatures | None) -> torch.Tensor:
        """(layer.channels,) one score per channel, higher is more important."""

    def __call__(self, layer: PrunableLayer, features: LayerFeatures | None, k: int) -> Selection:
        start = time.perf_counter()
        scores = self.scores(layer, features).cpu()
        kept = top_k(scores, k)
        return Selection(kept=kept, scores=scores, diagnostics={"method": self.name, "seconds": time.perf_counter() - start})


class L1Norm(ScoreCriterion):
    """Keep the filters with the largest L1 norm."""

    name = "l1"

    def scores(self, layer, features):
        return l1_norm_scores(candidate_filters(layer))


class Random(ScoreCriterion):
    """Keep k channels at random; each layer's draw is seeded by ``seed`` and the layer's name.

    Args:
        seed: the run's seed.
    """

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def scores(self, layer, features):
        return random_scores(layer.channels, self.seed * 1_000_003 + zlib.crc32(layer.name.encode()))


class HRank(ScoreCriterion):
    """Keep the channels whose maps have the highest average rank on the calibration batch."""

    name = "hrank"
    features = "maps"

    def scores(self, layer, features):
        return hrank_scores(features.outputs).reshape(layer.channels, -1).mean(1)  # a group's: its channels' mean


class FPGM(ScoreCriterion):
    """Keep the filters farthest from the others (prune those nearest the geometric median)."""

    name = "fpgm"

    def scores(self, layer, features):
        return fpgm_scores(candidate_filters(layer))


class InformationBottleneck(Criterion):
    """sTLP-IB, sGLP-IB, plain multi-response lasso or APIB through :func:`ibprune_lib.selection.select`.

    Args:
        method: one of ``selection.METHODS``.
        settings: how it selects; its ``direction`` names the features it needs (book/formulation.md §1).
    """

    def __init__(self, method: str = "stlp", settings: SelectionSettings = SelectionSettings()):
        self.name = method
        self.features = settings.direction
        self.settings = settings

    def __call__(self, layer, features, k):
        inputs, outputs = features.inputs, features.outputs
        if self.features == "rows":
            inputs = candidate_maps(inputs, layer.channels)
        else:
            outputs = candidate_maps(outputs, layer.channels)
        return select(inputs, outputs, k, method=self.name, settings=self.settings)


def get_criterion(method: str, seed: int = 0, settings: SelectionSettings | None = None, **changes) -> Criterion:
    """The criterion called ``method``.

    Args:
        method: one of ``METHODS``.
        seed: for ``"random"``.
        settings: the information-bottleneck methods' selection settings (None: the paper's); the baselines
            ignore them.
        **changes: settings to change by name (``kernel="gaussian"``, ``direction="columns"``…), validated for
            every method.

    Raises:
        ValueError: an unknown method; a bad setting (``SelectionSettings``).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    settings = (settings or SelectionSettings()).replace(**changes)
    if method in IB_METHODS:
        return InformationBottleneck(method, settings)
    if method == "random":
        return Random(seed)
    return {"l1": L1Norm, "hrank": HRank, "fpgm": FPGM}[method]()
