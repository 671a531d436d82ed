"""A 4x longer fine-tuning schedule: does Table 1's ranking on ResNet-56 survive it?

ResNet-56 at Table 1's budget (53% of the FLOPs removed, first four prunable layers whole), pruned by the paper's two
methods, L1-norm and random, and fine-tuned for four times the scale's recipe (32 epochs at ``cpu``, the same
one-cycle recipe otherwise), two runs each. Run *r* prunes with calibration seed *r* and fine-tunes with data-order
seed *r*, as Table 1's runs do (``table1.run``), so its 8-epoch runs 0 and 1 are the same pruned networks trained
four times shorter. Le & Hua (ICLR 2021) showed that the fine-tuning schedule alone can make random pruning
competitive: the book plots top-1 against epochs (8 and 32) per criterion and says whether the gap to the best
simple criterion closes, stays or opens.

    python -m ibprune_lib experiments run longer --scale cpu
"""

from dataclasses import replace

from ibprune_lib.harness.grid import PROTOCOLS, Cell, load_table

METHODS = ("stlp", "sglp", "l1", "random")
RUNS = (0, 1)
LONGER = 4
"""How many times the scale's fine-tuning recipe the cells train."""


def cells(scale: str) -> list[Cell]:
    table1 = {cell.method: cell for cell in load_table("table1", scale)
              if cell.model == "resnet56" and cell.widths == "uniform" and cell.seeds[0] == 0
              and cell.finetune_seed is None}  # fmt: skip
    methods, runs = (("l1",), RUNS[:1]) if scale == "smoke" else (METHODS, RUNS)
    epochs = LONGER * PROTOCOLS[scale].finetune.epochs
    return [replace(table1[m], seeds=(r,), finetune_epochs=epochs) for r in runs for m in methods]
