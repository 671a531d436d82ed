"""Table 1 of the paper: CIFAR-10, every method at the paper's sGLP-IB / sTLP-IB budgets.

Budgets (one shared keep ratio over the prunable layers after the first four, which stay whole):

- VGG-16 (trained here, ``results/cpu/baselines/vgg16``): the paper removes 85% of the parameters and 61% of
  the FLOPs; the cells keep 15% of the parameters (the paper's headline column for VGG-16) and report where
  the FLOPs land.
- ResNet-56 (akamaster's weights): 53% of the FLOPs removed (keep 47%); the parameters land where they land.
- ResNet-110 (trained here): 62-64% of the FLOPs removed (keep 36-38%).

Cells run in this order: ResNet-56 (the cheapest network), VGG-16, ResNet-56 with ITPruner's widths, then
ResNet-110; within a network the paper's two methods and the strongest simple criteria first, so that a table
still filling up already compares what the paper claims. Then every ResNet-56 cell once more with
``finetune_seed=1``: it prunes with calibration seed 0 again (the same selection only where the selection is
reproducible: same code, same thread count) and fine-tunes with another data order. Those extra runs predate the
definition of a run below and do not count toward it.

**Runs.** Run *r* of a cell prunes with calibration seed *r* and fine-tunes that network with data-order seed *r*
(``run(cell, r)``): the spread of a criterion's runs covers both the calibration draw and the training order. The
first cells (calibration seeds 0, 1, 2, fine-tuning seed 0) are run 0; runs 1 and 2 follow, in the order the
book needs them: ResNet-56's eight criteria, VGG-16's five (the paper's two, L1-norm, FPGM, random), then
ResNet-110's three (the paper's two, L1-norm) once the longer schedule (``experiments/longer.py``) has run.
``smoke`` keeps a handful of cells to exercise the plumbing in CI.
GoogLeNet (69% of the FLOPs removed, the concatenations' inputs pruned too) has no baseline here: an epoch
takes about 33 minutes on this CPU. Its cells need a GPU (``needs="cuda"``: a CPU runner leaves them "not
run here"), and start from ``results/<scale>/baselines/googlenet/googlenet.pt``, which
``recipes/googlenet_gpu.sh`` trains on a GPU before it runs them; at ``smoke`` one cell prunes an untrained
GoogLeNet to check the plumbing.

    python -m ibprune_lib experiments run table1 --scale cpu
"""

from dataclasses import replace

from ibprune_lib.harness.grid import UNTRAINED, Cell

NETWORKS = {
    "resnet56": dict(weights="weights:resnet56-4bfd9763.th", target_flops=0.47),
    "vgg16": dict(weights="results/cpu/baselines/vgg16/vgg16.pt", target_params=0.15),
    "resnet110": dict(weights="results/cpu/baselines/resnet110/resnet110.pt", target_flops=(0.36, 0.38)),
}
GOOGLENET = dict(target_flops=0.31, needs="cuda")
METHODS = ("l1", "fpgm", "stlp", "sglp", "apib", "lasso", "hrank", "random")  # ResNet-56's cells ran in this order
ORDER = ("sglp", "stlp", "l1", "fpgm", "apib", "lasso", "hrank", "random")
ITPRUNER = dict(widths="itpruner", min_width=0.25)
REPEATED = {"resnet56": ORDER, "vgg16": ("sglp", "stlp", "l1", "fpgm", "random"), "resnet110": ("stlp", "sglp", "l1")}
"""The criteria of each network that get runs 1 and 2 (issue 41): every ResNet-56 criterion, the paper's two and
the simple criteria that beat them on VGG-16 and ResNet-110."""
RUNS = (1, 2)


def run(cell: Cell, r: int) -> Cell:
    """Run ``r`` of ``cell``: pruned with calibration seed ``r`` alone, fine-tuned with data-order seed ``r``.

    Run 0 is the cell as first declared (calibration seeds 0, 1, 2; the first fine-tuned with seed 0).
    """
    return cell if r == 0 else replace(cell, seeds=(r,))


def repeated_runs(network: str, runs=RUNS) -> list[Cell]:
    """Runs ``runs`` of ``network``'s criteria in ``REPEATED``, run by run."""
    return [run(Cell(network, method=m, **NETWORKS[network]), r) for r in runs for m in REPEATED[network]]


def cells(scale: str) -> list[Cell]:
    if scale == "smoke":
        return [
            Cell("resnet56", method="l1", **NETWORKS["resnet56"]),
            Cell("resnet56", method="stlp", **NETWORKS["resnet56"]),
            Cell("resnet56", method="l1", **NETWORKS["resnet56"], **ITPRUNER),
            Cell("vgg16", method="l1", **NETWORKS["vgg16"]),
            Cell("resnet110", method="l1", **NETWORKS["resnet110"]),
            Cell("googlenet", weights=UNTRAINED, method="l1", target_flops=0.31),
            run(Cell("resnet56", method="l1", **NETWORKS["resnet56"]), 1),
        ]
    table = [Cell("resnet56", method=m, **NETWORKS["resnet56"]) for m in METHODS]
    table += [Cell("vgg16", method=m, **NETWORKS["vgg16"]) for m in ORDER]
    table += [Cell("resnet56", method=m, **NETWORKS["resnet56"], **ITPRUNER) for m in ("l1", "stlp")]
    table += [Cell("resnet110", method=m, **NETWORKS["resnet110"]) for m in ORDER]
    table += [Cell("resnet56", method=m, **NETWORKS["resnet56"], seeds=(0,), finetune_seed=1) for m in ORDER]
    weights = f"results/{scale}/baselines/googlenet/googlenet.pt"
    table += [Cell("googlenet", weights=weights, method=m, **GOOGLENET) for m in METHODS]
    return table + repeated_runs("resnet56") + repeated_runs("vgg16") + repeated_runs("resnet110")
