"""Table 2 of the paper: ResNet-50 on ImageNet (ILSVRC2012), at the paper's sGLP-IB / sTLP-IB budget.

The paper removes 57% of the FLOPs and 55% of the parameters of torchvision's ResNet-50 (76.15% top-1); the cells
keep 43% of the MACs with one shared keep ratio over the prunable layers after the first four, which stay whole
(the paper's rule for every network), and report where the parameters land. They start from torchvision's
published ResNet-50 weights (``IMAGENET1K_V1``, fetched once into ``$IBPRUNE_WEIGHTS`` and checked against the hash
torchvision publishes) and stream ImageNet from ``$IBPRUNE_IMAGENET`` (``train/`` and ``val/``, one folder per
class): calibration draws a class-balanced batch of 128 training images, BatchNorm recalibration reads 40 batches
of 128, and top-1 is on the 50,000 validation images, centre-cropped at 224.

Fine-tuning follows the ``paper`` scale's recipe (cosine from lr 0.01, Nesterov SGD, wd 5e-4, a global batch of
128 split over the GPUs, bf16 autocast) for **150 epochs**: the paper says it trains on ImageNet "for 150 to 200
epochs" and is silent on the rest of the schedule; we take its lower end. Every cell needs CUDA (a CPU runner
lists it as "not run here") and is meant to run on the GPUs of one node under ``torchrun``
(``recipes/slurm-array.sh``).

At ``smoke`` one cell prunes an untrained ResNet-50 on whatever folder ``$IBPRUNE_IMAGENET`` names, at 64-pixel
crops, fine-tunes it for one epoch and evaluates it: the tests generate a tiny folder in ImageNet's layout and run
it, alone and as two gloo processes under ``torchrun``, to prove the paper-scale code path on a CPU. It prunes with
HRank, which ranks channels by the calibration batch's feature maps, because sTLP-IB's selection on ResNet-50's
layers takes minutes even at 64 pixels and 40 images on a 2-core CI machine, too long
for CI; the code path past the criterion is the same.

    torchrun --nproc_per_node 8 -m ibprune_lib experiments run table2 --scale paper --device cuda
"""

from ibprune_lib.harness.grid import UNTRAINED, Cell

RESNET50 = dict(weights="weights:resnet50-0676ba61.pth", dataset="imagenet", target_flops=0.43, needs="cuda",
                finetune_epochs=150)
METHODS = ("stlp", "sglp", "l1", "fpgm", "apib", "hrank", "random")
"""The paper's two methods first, then the baselines this project has that Table 2 lists (HRank, APIB and random
have rows there; L1-norm and FPGM are the criteria that beat sGLP-IB and sTLP-IB on CIFAR here)."""


def cells(scale: str) -> list[Cell]:
    if scale == "smoke":
        return [Cell("resnet50", weights=UNTRAINED, method="hrank", dataset="imagenet", target_flops=0.43,
                     batch_size=40, seeds=(0,), finetune_epochs=1)]
    return [Cell("resnet50", method=method, **RESNET50) for method in METHODS]
