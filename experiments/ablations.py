"""The ablations (the paper's Tables 3, 5-7 and 9, layer skipping, Gram against raw maps, rows against columns).

Every cell prunes the committed VGG-16 (``results/cpu/baselines/vgg16``) with sGLP-IB and sTLP-IB, at Table 1's
budget (15% of the parameters kept, the first four prunable layers whole, calibration batch 128, Laplacian kernel)
except for the one setting its sweep varies (and for 70% and 80% of the FLOPs removed, which four whole layers
cannot reach: those cells keep only the first two whole); APIB beside them in the kernel sweep, L1-norm at the base
setting. A setting shared by several sweeps is one cell, run once. Stages as Table 1: top-1 right after pruning and
after BatchNorm recalibration for three calibration seeds, then a short fine-tuning of the first (``cpu``: 3 epochs
with a bf16 forward pass, Table 1's recipe otherwise: twice as fast as fp32 on a CPU with AVX512-BF16 or AMX, and
"not run here" on one with neither, where bf16 is ten times slower). Order: the base cells, layer skipping,
kernels, batch size, Gram against raw maps, rows against columns, then the two ratio sweeps.

    python -m ibprune_lib experiments run ablations --scale cpu
"""

from ibprune_lib.harness.grid import Cell

VGG16 = dict(weights="results/cpu/baselines/vgg16/vgg16.pt", target_params=0.15, skip_first=4)
METHODS = ("sglp", "stlp")
BATCH_SIZES = (64, 256, 512, 1024)  # and 128, the base
KERNELS = ("linear", "gaussian", "sigmoid")  # and laplacian, the base
SKIP_FIRST = (0, 2)  # and 4, the base
PARAMS_KEPT = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # Table 7
FLOPS_KEPT = (0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2)  # Table 9: 20...80% of the FLOPs removed
FEWER_WHOLE = {0.3: 2, 0.2: 2}  # the four whole first layers alone keep over 30% of the MACs: keep two whole


def cells(scale: str) -> list[Cell]:
    if scale == "smoke":  # the ablation-only plumbing: raw maps and a cell's own fine-tuning length
        budget = dict(weights="weights:resnet56-4bfd9763.th", target_flops=0.47)
        return [Cell("resnet56", method="stlp", use_gram=False, finetune_epochs=1, **budget)]
    short = dict(finetune_epochs=3, finetune_precision="bf16") if scale == "cpu" else {}

    def vgg(method: str, **setting) -> Cell:
        return Cell("vgg16", method=method, **{**VGG16, **short, **setting})

    table = [vgg(m) for m in (*METHODS, "l1")]
    table += [vgg(m, skip_first=n) for n in SKIP_FIRST for m in METHODS]
    table += [vgg(m, kernel=kernel) for kernel in KERNELS for m in (*METHODS, "apib")]
    table += [vgg("apib")]
    table += [vgg(m, batch_size=n) for n in BATCH_SIZES for m in METHODS]
    table += [vgg(m, use_gram=False) for m in METHODS]
    table += [vgg(m, direction="columns") for m in METHODS]
    table += [vgg(m, target_params=ratio) for ratio in PARAMS_KEPT for m in METHODS]
    table += [vgg(m, target_params=None, target_flops=ratio, skip_first=FEWER_WHOLE.get(ratio, VGG16["skip_first"]))
              for ratio in FLOPS_KEPT for m in METHODS]
    return table
