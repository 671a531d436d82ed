"""The pruning engine: layer discovery, feature capture, criteria, budgets, ITPruner widths, surgery, pipeline.

One module per concern: :mod:`.layers` (which filters can go), :mod:`.capture` (features on a calibration
batch), :mod:`.criteria` (which to keep), :mod:`.budget` (how many per layer), :mod:`.itpruner` (per-layer
widths from information), :mod:`.surgery` (physical removal), :mod:`.pipeline` (all of it, and fine-tuning).
"""

from .budget import METRICS, CountModel, count_model, keep_counts_for_target
from .capture import FEATURE_KINDS, LayerFeatures, capture
from .criteria import METHODS, Criterion, get_criterion
from .itpruner import itpruner_keep_counts
from .layers import Consumer, LayerSurvey, PrunableLayer, prunable_layers, survey_layers
from .pipeline import WIDTHS, PruneResult, finetune, prune
from .surgery import prune_channels

__all__ = [
    "FEATURE_KINDS",
    "METHODS",
    "METRICS",
    "WIDTHS",
    "Consumer",
    "CountModel",
    "Criterion",
    "LayerFeatures",
    "LayerSurvey",
    "PrunableLayer",
    "PruneResult",
    "capture",
    "count_model",
    "finetune",
    "get_criterion",
    "itpruner_keep_counts",
    "keep_counts_for_target",
    "prunable_layers",
    "prune",
    "prune_channels",
    "survey_layers",
]
