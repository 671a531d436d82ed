"""The settings study: which of the method's settings matter, before any fine-tuning.

On the shared ResNet-56 at 50% of its FLOPs kept and the committed VGG-16 at 15% of its parameters kept (the
first four prunable layers whole, calibration batch 128, three calibration seeds), each cell changes one
setting of sGLP-IB or sTLP-IB from the paper's (τ = 0.6, γ/λ = 1, average linkage, Laplacian kernel,
unit-norm columns, candidates as rows, kept candidates ranked by non-zeros then norm), and one cell per method
the ``tuned`` preset names prunes with it whole;
each stops after BatchNorm recalibration (``finetune_epochs=0``): top-1 right after pruning and after
recalibration on the full test set, and selection seconds. A setting is chosen on top-1 after recalibration on a
validation split of 5,000 training images (500 a class, ``Cell.validation``), which neither the calibration nor
the recalibration draws from; the test set is reported and chooses nothing. (The study's first cells, which ranked
settings on the test set, are kept in the repository's history.) L1-norm, FPGM and the plain multi-response lasso
stand beside them at the same budget. The grid runs these cells before Table 1's; the smoothed solver
(SPG) instead of the exact one, the slowest setting, is ``experiments/solvers.py``.

    python -m ibprune_lib experiments run study --scale cpu
"""

from ibprune_lib.harness.grid import Cell
from ibprune_lib.settings import PRESETS

NETWORKS = {
    "resnet56": dict(weights="weights:resnet56-4bfd9763.th", target_flops=0.5),
    "vgg16": dict(weights="results/cpu/baselines/vgg16/vgg16.pt", target_params=0.15),
}
BOTH = ("sglp", "stlp")
VALIDATION = 5000
"""Training images held out to choose settings on (10% of CIFAR-10's, 500 a class)."""
VARIANTS = [  # first the settings that moved a method on ResNet-56 beyond the spread: the preset rests on them
    *[(m, dict(kernel=kernel)) for kernel in ("linear", "gaussian", "sigmoid") for m in BOTH],
    *[(m, dict(options=(("normalise", False),))) for m in BOTH],
    *[("stlp", dict(options=(("linkage", link),))) for link in ("complete", "single")],
    *[("sglp", dict(options=(("threshold", t),))) for t in (0.7, 0.8, 0.9)],
    *[("sglp", dict(options=(("knn", k),))) for k in (4, 8)],
    *[("sglp", dict(options=(("gamma_graph", g),))) for g in (0.1, 0.5, 2.0)],
    *[(m, dict(options=(("score", "norm"),))) for m in BOTH],
    *[(m, dict(direction="columns")) for m in BOTH],
]


def cells(scale: str) -> list[Cell]:
    if scale == "smoke":  # the study-only plumbing: an option, and no fine-tuning
        budget = dict(weights="weights:resnet56-4bfd9763.th", target_flops=0.5)
        return [Cell("resnet56", method="sglp", finetune_epochs=0, options=(("knn", 4),), validation=VALIDATION,
                     **budget)]
    base = {network: dict(finetune_epochs=0, validation=VALIDATION, **budget) for network, budget in NETWORKS.items()}
    table = []
    for network in NETWORKS:
        table += [Cell(network, method=m, **base[network]) for m in BOTH]
        table += [Cell(network, method=m, preset="tuned", **base[network]) for m in BOTH if m in PRESETS["tuned"]]
        table += [Cell(network, method=m, **base[network]) for m in ("l1", "fpgm", "lasso")]
        table += [Cell(network, method=m, **{**base[network], **variant}) for m, variant in VARIANTS]
    return table
