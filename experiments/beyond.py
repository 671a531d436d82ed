"""Beyond the paper: can the class-wise information earn its cost? Reconstruction of the next layer, measured under
the settings study's protocol.

ResNet-56 and VGG-16 at Table 1's budgets (47% of ResNet-56's FLOPs kept, 15% of VGG-16's parameters; the first four
prunable layers whole), sTLP-IB, sGLP-IB, L1-norm and FPGM, each in four variants: plain; with
``reconstruct=True`` (each pruned layer's consumer refit by least squares to the unpruned network's output on the
calibration batch, ``ibprune_lib.pruning.reconstruct``); with ``allocation="global"`` (the widths from one threshold
on the criterion's normalised scores, at least 10% of each layer, ``ibprune_lib.pruning.allocation``); and with
both. Three calibration seeds, no fine-tuning: top-1 right after pruning and after BatchNorm recalibration, on the
test set and on the 5,000-image validation split (``Cell.validation``), which is what a variant is chosen on; the
test set chooses nothing. The best variant of each criterion, chosen on validation, is then fine-tuned with Table 1's
protocol (two runs) in a later declaration.

    python -m ibprune_lib experiments run beyond --scale cpu
"""

from ibprune_lib.harness.grid import Cell

NETWORKS = {
    "resnet56": dict(weights="weights:resnet56-4bfd9763.th", target_flops=0.47),
    "vgg16": dict(weights="results/cpu/baselines/vgg16/vgg16.pt", target_params=0.15),
}
CRITERIA = ("stlp", "sglp", "l1", "fpgm")
VALIDATION = 5000
"""The settings study's validation split: 500 training images a class, held out of calibration and recalibration."""


def cells(scale: str) -> list[Cell]:
    if scale == "smoke":  # the reconstruction's plumbing through the grid
        return [Cell("resnet56", method="l1", finetune_epochs=0, validation=VALIDATION, reconstruct=True,
                     **NETWORKS["resnet56"])]
    return [Cell(network, method=method, finetune_epochs=0, validation=VALIDATION, reconstruct=reconstruct,
                 allocation=allocation, **budget)
            for network, budget in NETWORKS.items() for allocation in ("uniform", "global")
            for reconstruct in (False, True) for method in CRITERIA]
