"""The ``tuned`` preset through fine-tuning: Table 1's cells of each method the preset changes, pruned with it.

The settings study (``experiments/study.py``) chose ``--preset tuned`` on top-1 after BatchNorm recalibration,
before any fine-tuning (in its first run on the test set; its rerun chooses on a validation split, and a changed
pick changes these cells' ids, so they run again). Whether the gain survives fine-tuning is the question a user who fine-tunes asks, and
only the full protocol answers it: each cell here is one of Table 1's ResNet-56 and VGG-16 cells with
``preset="tuned"`` and nothing else changed (same budget, calibration seeds, skipped layers and fine-tuning
recipe), so it stands beside Table 1's paper-settings row and the simple criteria at every stage (notebook 18,
"Beyond the paper"). None runs at the smoke scale.

    python -m ibprune_lib experiments run presets --scale cpu
"""

from dataclasses import replace

from ibprune_lib.harness.grid import Cell, load_table
from ibprune_lib.settings import PRESETS

NETWORKS = ("resnet56", "vgg16")


def cells(scale: str) -> list[Cell]:
    if scale == "smoke":
        return []
    paper = [cell for cell in load_table("table1", scale)
             if cell.model in NETWORKS and cell.widths == "uniform" and cell.method in PRESETS["tuned"]
             and cell.finetune_seed is None and cell.seeds[0] == 0]  # run 0 only
    return [replace(cell, preset="tuned") for cell in paper]
