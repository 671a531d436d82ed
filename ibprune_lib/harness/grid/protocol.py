"""What a scale does with every cell: the protocol (test images, calibration seeds, BatchNorm recalibration, the
fine-tuning recipe), one per scale.

1. top-1 of the unpruned network on the same test images;
2. for each calibration seed: prune (selection seconds timed), top-1 right after pruning, BatchNorm
   recalibration on the training set, top-1 after it;
3. fine-tuning of the first seed's recalibrated network with the scale's recipe, then top-1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ...train import TrainConfig
from .cell import Cell

SCALES = ("smoke", "cpu", "paper")
"""``smoke`` (plumbing, seconds a cell: CI), ``cpu`` (this project's machines; results committed), ``paper`` (the
papers' schedules; GPUs)."""


@dataclass(frozen=True)
class Protocol:
    """What a scale does with every cell.

    Attributes:
        scale: its name.
        test_images: test images for every top-1 (None: the whole test set).
        calibration_seeds: how many of a cell's seeds to run (None: all).
        recalibration_batches: BatchNorm recalibration batches (of ``recalibration_batch_size`` images).
        recalibration_batch_size: images per recalibration batch.
        finetune: the fine-tuning recipe (its ``model`` is set per cell).
        monitor_images: test images for the per-epoch top-1 during fine-tuning (None: all).
        note: the recipe in words, for the book.
    """

    scale: str
    test_images: int | None
    calibration_seeds: int | None
    recalibration_batches: int
    recalibration_batch_size: int
    finetune: TrainConfig
    monitor_images: int | None
    note: str = ""

    def record(self, cell: Cell, seeds: list[int], threads: int) -> dict:
        """The protocol as it ran for ``cell``: the calibration seeds run, the torch threads, and the fine-tuning
        recipe with the cell's own epochs, precision and data-order seed (``{"epochs": 0}`` alone where it stopped
        after recalibration); the scale's note only where the cell followed the scale's recipe.

        Args:
            cell: the cell that ran.
            seeds: the calibration seeds it ran (the first fine-tuned).
            threads: torch's intra-op threads of the run.
        """
        epochs = self.finetune_epochs(cell)
        finetune = {"epochs": 0}
        if epochs:
            seed = seeds[0] if cell.finetune_seed is None else cell.finetune_seed
            finetune = {k: v for k, v in asdict(self.finetune_config(cell, "", seed)).items() if k != "model"}
        follows_recipe = cell.finetune_epochs is None and cell.finetune_precision is None
        if follows_recipe:
            note = self.note
        elif epochs:
            note = (f"the {self.scale} scale's recipe shortened or changed by the cell: fine-tuned for {epochs} "
                    f"epoch{'s' if epochs > 1 else ''} in {finetune['precision']}")
        else:
            note = f"the {self.scale} scale's protocol up to BatchNorm recalibration; no fine-tuning"
        return {**{k: v for k, v in asdict(self).items() if k != "finetune"}, "note": note,
                "calibration_seeds": list(seeds), "threads": threads, "finetune": finetune}

    def finetune_epochs(self, cell: Cell) -> int:
        """The epochs ``cell`` is fine-tuned for: its own, else the recipe's."""
        return self.finetune.epochs if cell.finetune_epochs is None else cell.finetune_epochs

    def finetune_precision(self, cell: Cell) -> str:
        """The precision ``cell`` is fine-tuned in: its own, else the recipe's."""
        return self.finetune.precision if cell.finetune_precision is None else cell.finetune_precision

    def finetune_config(self, cell: Cell, model: str, seed: int) -> TrainConfig:
        """The recipe ``cell`` is fine-tuned with: the scale's, with the cell's own epochs and precision."""
        return replace(self.finetune, model=model, seed=seed, epochs=self.finetune_epochs(cell),
                       precision=self.finetune_precision(cell))


_FINETUNE = dict(momentum=0.9, nesterov=True, weight_decay=5e-4, batch_size=128, schedule="onecycle", seed=0)
PROTOCOLS = {
    "smoke": Protocol(
        "smoke", test_images=200, calibration_seeds=1, recalibration_batches=2, recalibration_batch_size=64,
        finetune=TrainConfig(model="", epochs=2, lr=0.01, train_subset=256, precision="fp32", **_FINETUNE),
        monitor_images=200, note="plumbing only: 256 training images, 200 test images; no number means anything",
    ),
    "cpu": Protocol(
        "cpu", test_images=None, calibration_seeds=None, recalibration_batches=40, recalibration_batch_size=128,
        finetune=TrainConfig(model="", epochs=8, lr=0.05, precision="fp32", **_FINETUNE),
        monitor_images=2000,
        note="8 epochs on the full training set, one-cycle (15% warm-up to lr 0.05, cosine to 0), Nesterov SGD, "
             "wd 5e-4, batch 128, fp32 (bf16 is 10 times slower than fp32 on a CPU without AVX512-BF16, and "
             "one precision for every cell keeps them comparable); per-epoch top-1 on 2,000 test images, final "
             "on all 10,000",
    ),
    "paper": Protocol(
        "paper", test_images=None, calibration_seeds=None, recalibration_batches=40, recalibration_batch_size=128,
        finetune=TrainConfig(model="", epochs=400, lr=0.01, precision="bf16",
                             **{**_FINETUNE, "schedule": "cosine"}),
        monitor_images=None,
        note="the paper's length (fine-tuned for 400-500 epochs): 400 epochs, cosine from lr 0.01, Nesterov SGD, "
             "wd 5e-4, batch 128; for a GPU",
    ),
}
