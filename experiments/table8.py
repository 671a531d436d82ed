"""Table 8 of the paper: VGG-16 on CIFAR-100, at the paper's sGLP-IB / sTLP-IB budget (55% of the FLOPs and
71% of the parameters removed; the cells meet the FLOPs column with one shared keep ratio and report where the
parameters land).

CIFAR-100 here is the shared JPEG copy (quality 75, ``ibprune_lib.data``): every number says "CIFAR-100 (JPEG
copy)". The network is a VGG-16 trained here on that copy by
``DATASET=cifar100 PRECISION=bf16 recipes/train_cpu.sh vgg16 20`` (``results/cpu/baselines/vgg16-cifar100/``);
until it exists the grid refuses the table in one line.

    python -m ibprune_lib experiments run table8 --scale cpu
"""

from ibprune_lib.harness.grid import Cell

VGG16_CIFAR100 = dict(weights="results/cpu/baselines/vgg16-cifar100/vgg16.pt", dataset="cifar100", target_flops=0.45)
METHODS = ("l1", "random", "stlp", "apib", "sglp")


def cells(scale: str) -> list[Cell]:
    if scale == "smoke":
        return []
    return [Cell("vgg16", method=method, **VGG16_CIFAR100) for method in METHODS]
