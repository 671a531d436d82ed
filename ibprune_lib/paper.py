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
TABLE2_UNPRUNED_COUNTS = (4133.74e6, 25.56e6)
"""The paper's MACs and parameters of the unpruned ResNet-50."""

TABLE1_BUDGET_ROW = {"vgg16": (61, 85), "resnet56": (53, 52), "resnet110": (62, 68), "googlenet": (69, 63)}

METHOD_LABELS = {
    "sglp": "sGLP-IB", "stlp": "sTLP-IB", "apib": "APIB", "lasso": "multi-response lasso", "l1": "L1-norm",
    "fpgm": "FPGM", "hrank": "HRank", "random": "random", "unpruned": "unpruned",
}
MODEL_LABELS = {"vgg16": "VGG-16", "resnet56": "ResNet-56", "resnet110": "ResNet-110", "googlenet": "GoogLeNet"}
