"""The paper's reported numbers, quoted (never measured here), for the book to set beside ours.

Source: "Enhanced Structured Lasso Pruning with Class-wise Information" (arXiv 2502.09125), Table 1
(CIFAR-10) and Table 2 (ResNet-50 on ImageNet). Only the rows of methods this project runs are kept; ``None`` is a cell the paper leaves empty.
VGG-16 has two sGLP-IB / sTLP-IB rows; :data:`TABLE1_BUDGET_ROW` marks the one whose budget the book
reproduces (61% FLOPs / 85% parameters removed).
"""

from __future__ import annotations

# (model, method, top-1 %, FLOPs reduction %, params reduction %); the unpruned rows have reductions 0.
TABLE1: list[tuple[str, str, float, float | None, float | None]] = [
    ("vgg16", "unpruned", 93.96, 0, 0),
    ("vgg16", "l1", 93.41, 34, 64),
    ("vgg16", "hrank", 93.42, 54, 83),
    ("vgg16", "fpgm", 93.50, 36, None),
    ("vgg16", "sglp", 93.98, 65, 91),
    ("vgg16", "apib", 94.00, 66, 78),
    ("vgg16", "stlp", 94.01, 64, 91),
    ("vgg16", "sglp", 94.05, 61, 85),
    ("vgg16", "stlp", 94.10, 61, 85),
    ("resnet56", "unpruned", 93.28, 0, 0),
    ("resnet56", "hrank", 93.17, 50, 42),
    ("resnet56", "apib", 93.92, 47, 51),
    ("resnet56", "sglp", 93.93, 53, 52),
    ("resnet56", "stlp", 93.96, 53, 52),
    ("resnet110", "unpruned", 93.50, 0, 0),
    ("resnet110", "hrank", 93.36, 58, 59),
    ("resnet110", "apib", 93.37, 77, 82),
    ("resnet110", "sglp", 93.69, 64, 68),
    ("resnet110", "stlp", 93.80, 62, 68),
    ("googlenet", "unpruned", 95.05, 0, 0),
    ("googlenet", "hrank", 94.53, 55, 55),
    ("googlenet", "sglp", 94.75, 69, 63),
    ("googlenet", "stlp", 94.78, 69, 63),
]
# Table 2 (ResNet-50, ImageNet): (method, top-1 %, FLOPs reduction %, params reduction %), every row.
TABLE2: list[tuple[str, float, float | None, float | None]] = [
    ("unpruned", 76.15, 0, 0),
    ("hrank", 71.98, 62, 62),
    ("DECORE", 72.06, 61, None),
    ("MFP", 74.86, 54, None),
    ("random", 75.13, 49, 54),
    ("SCOP", 75.26, 55, None),
    ("apib", 75.37, 62, 58),
    ("DPFPS", 75.55, 46, None),
    ("CC", 75.59, 53, None),
    ("LRF-60", 75.71, 56, None),
    ("NORTON", 75.95, 64, 59),
    ("NPPM", 75.96, 56, None),
    ("CSD", 76.11, 54, 41),
    ("sglp", 76.10, 57, 55),
    ("stlp", 76.12, 57, 55),
]

# Table 8 (VGG-16, CIFAR-100): (method, top-1 %, FLOPs reduction %, params reduction %), every row.
TABLE8: list[tuple[str, float, float | None, float | None]] = [
    ("unpruned", 73.80, 0, 0),
    ("CPMC", 73.01, 48, None),
    ("PGMPF", 73.45, 48, None),
    ("CPGMI", 73.53, 37, None),
    ("PGMPF-SFP", 73.66, 48, None),
    ("apib", 73.89, 48, 57),
    ("sglp", 73.96, 55, 71),
    ("stlp", 73.99, 55, 71),
]

# The ablations (VGG-16 on CIFAR-10 at Table 1's budget unless the sweep varies it; top-1 % after fine-tuning
# unless said otherwise), method → setting → value.
TABLE3_BATCH_SIZE: dict[str, dict[int, float]] = {
    "sglp": {64: 93.77, 128: 94.05, 256: 94.07, 512: 94.08, 1024: 94.08},
    "stlp": {64: 93.76, 128: 94.10, 256: 94.11, 512: 94.10, 1024: 94.11},
}
TABLE5_KERNEL: dict[str, dict[str, float]] = {
    "sglp": {"linear": 94.05, "gaussian": 94.06, "sigmoid": 93.71, "laplacian": 94.05},
    "stlp": {"linear": 94.07, "gaussian": 94.09, "sigmoid": 93.86, "laplacian": 94.10},
}
TABLE6_KERNEL_BEFORE_FINETUNING: dict[str, dict[str, float]] = {
    "sglp": {"linear": 24.85, "gaussian": 37.90, "sigmoid": 10.00, "laplacian": 42.51},
    "stlp": {"linear": 25.37, "gaussian": 42.80, "sigmoid": 11.13, "laplacian": 43.68},
}
# Table 7: % of the parameters pruned → (top-1, % of the FLOPs pruned, printed in brackets).
TABLE7_PARAMS_PRUNED: dict[str, dict[int, tuple[float, float]]] = {
    "sglp": {10: (94.10, 8), 30: (94.13, 32), 50: (94.10, 54), 70: (94.08, 63), 90: (93.97, 64)},
    "stlp": {10: (94.10, 8), 30: (94.13, 32), 50: (94.11, 54), 70: (94.10, 63), 90: (94.01, 64)},
}
# Table 9 (appendix): % of the FLOPs pruned → (top-1, % of the parameters pruned, printed in brackets).
TABLE9_FLOPS_PRUNED: dict[str, dict[int, tuple[float, float]]] = {
    "sglp": {40: (94.12, 45), 50: (94.09, 54), 60: (94.04, 84), 70: (93.74, 93), 80: (91.00, 94)},
    "stlp": {40: (94.12, 47), 50: (94.11, 55), 60: (94.09, 84), 70: (93.80, 93), 80: (91.75, 94)},
}
# Layer skipping (text of the ablations): leading prunable layers left whole → top-1; 4 is Table 1's row.
LAYER_SKIPPING: dict[str, dict[int, float]] = {
    "sglp": {0: 93.76, 2: 93.79, 4: 94.05},
    "stlp": {0: 93.88, 2: 93.98, 4: 94.10},
}
# Gram matrices against the raw maps (text of the ablations, our reading: the first pair is without Gram
# matrices, the second Table 1's with them), and how many times longer the selection took without them.
GRAM_AGAINST_RAW = {"raw": {"sglp": 94.06, "stlp": 94.10}, "gram": {"sglp": 94.05, "stlp": 94.10}}
GRAM_SPEEDUP = 25.7

# Table 10 (latency on a Raspberry Pi 4B, seconds; the paper does not say for how many images): network →
# (original, sGLP-IB, sTLP-IB), the highest-accuracy pruned models of Table 1.
TABLE10: dict[str, tuple[float, float, float]] = {
    "vgg16": (26.7, 7.2, 7.2),
    "resnet56": (4.6, 2.2, 2.2),
    "resnet110": (7.7, 3.2, 3.3),
    "googlenet": (11.2, 3.8, 3.8),
}

TABLE1_BUDGET_ROW = {"vgg16": (61, 85), "resnet56": (53, 52), "resnet110": (62, 68), "googlenet": (69, 63)}

METHOD_LABELS = {
    "sglp": "sGLP-IB", "stlp": "sTLP-IB", "apib": "APIB", "lasso": "multi-response lasso", "l1": "L1-norm",
    "fpgm": "FPGM", "hrank": "HRank", "random": "random", "unpruned": "unpruned",
}
MODEL_LABELS = {"vgg16": "VGG-16", "resnet56": "ResNet-56", "resnet110": "ResNet-110", "googlenet": "GoogLeNet"}
