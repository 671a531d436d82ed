"""A cell: one configuration of a table, named by its content.

A cell's id is derived from its content, so editing a cell makes a new one and never reuses a stale result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from ...paths import REPO_ROOT, imagenet_dir, weights_dir
from ...pruning import get_criterion
from ...pruning.pipeline import check_allocation, check_options
from ...settings import PRESETS, SelectionSettings, preset_settings
from ...train import PRECISIONS, has_fast_bf16

LATER_FIELDS = ("use_gram", "finetune_epochs", "finetune_seed", "needs", "options", "finetune_precision", "validation",
                "reconstruct", "allocation")
"""Cell fields added after Table 1's first cells were committed: at their defaults they stay out of ``Cell.id``."""

RAW_MAP_METHODS = ("sglp", "stlp", "lasso")
"""The methods that can regress the raw feature maps instead of Gram matrices (``Cell.use_gram=False``)."""

DATASETS = ("cifar10", "cifar100", "imagenet")
"""A cell's datasets: CIFAR in memory, or ImageNet's folder streamed (``paths.imagenet_dir``)."""

UNTRAINED = "untrained"
"""``Cell.weights`` of a network with its seeded initial weights: a smoke cell of a network with no baseline."""

@dataclass(frozen=True)
class Cell:
    """One configuration of a table.

    Attributes:
        model: zoo name.
        weights: ``weights:<file>`` (a file in ``$IBPRUNE_WEIGHTS``), a path relative to the repository, or
            ``untrained`` (the zoo's initial weights, seeded: plumbing only).
        method: pruning criterion (``ibprune_lib.pruning.METHODS``).
        target_flops: keep ratio of the MACs, or a (lo, hi) range; exactly one of the two targets.
        target_params: keep ratio of the parameters, or a (lo, hi) range.
        dataset: ``cifar10``, ``cifar100`` or ``imagenet`` (the folder ``paths.imagenet_dir`` names, streamed;
            its classes are its ``train/`` subfolders).
        kernel: Gram kernel of the information-bottleneck methods (a cell with a preset other than ``paper``
            takes its preset's and leaves this at its default).
        batch_size: calibration images.
        seeds: calibration seeds (the first one is fine-tuned).
        skip_first: leading prunable layers left whole.
        widths: ``uniform`` or ``itpruner``.
        min_width: ITPruner's lower bound on a layer's keep ratio.
        direction: ``rows`` or ``columns``.
        preset: named selection settings (``selection.PRESETS``).
        use_gram: regress centred Gram matrices (the method) or the raw feature maps (an ablation).
        finetune_epochs: fine-tuning epochs instead of the scale's recipe (the ablations' short protocol); 0
            stops after BatchNorm recalibration (the settings study).
        finetune_seed: the seed of the fine-tuning run (its data order, crops and flips); None: the first
            calibration seed, as for every cell that predates it. A seed other than the first calibration seed
            makes the cell no run of its configuration (``run_index``): Table 1's older second ResNet-56 runs,
            which pruned with calibration seed 0 again and fine-tuned with data-order seed 1.
        needs: ``"cuda"`` for a cell this project's CPU cannot afford (GoogLeNet: 33 minutes an epoch); a
            runner without ``--device cuda`` leaves it "not run here".
        options: (name, value) pairs of selection settings (``settings.SelectionSettings``) over the preset's.
        finetune_precision: the fine-tuning precision instead of the scale's recipe (``train.PRECISIONS``); a
            ``"bf16"`` cell runs only where bf16 is fast (``train.has_fast_bf16``): the ablations' short protocol.
        validation: hold this many training images out (``data.hold_out_validation``, the same split for every
            cell) and report top-1 on them too, after recalibration and after fine-tuning: the number a table
            that chooses a setting or a variant chooses on. Calibration, recalibration and fine-tuning then draw
            from the other training images; the test set is still reported and chooses nothing.
        reconstruct: refit each pruned layer's consumer by least squares after the surgery
            (``pruning.reconstruct``), before BatchNorm recalibration.
        allocation: ``uniform`` (one shared keep ratio) or ``global`` (the widths from one threshold on the
            criterion's normalised scores, ``pruning.allocation``; ``min_width`` its floor).
    """

    model: str
    weights: str
    method: str
    target_flops: float | tuple[float, float] | None = None
    target_params: float | tuple[float, float] | None = None
    dataset: str = "cifar10"
    kernel: str = "laplacian"
    batch_size: int = 128
    seeds: tuple[int, ...] = (0, 1, 2)
    skip_first: int = 4
    widths: str = "uniform"
    min_width: float | None = None
    direction: str = "rows"
    preset: str = "paper"
    use_gram: bool = True
    finetune_epochs: int | None = None
    finetune_seed: int | None = None
    needs: str | None = None
    options: tuple[tuple[str, Any], ...] = ()
    finetune_precision: str | None = None
    validation: int | None = None
    reconstruct: bool = False
    allocation: str = "uniform"

    @property
    def id(self) -> str:
        """``<model>-<method>[-<widths>]-<8 hex digits of the content's SHA-256>``.

        Fields added after the first cells were committed (LATER_FIELDS) count only when they differ from
        their defaults, so the ids of those cells, and the results filed under them, stay. A preset other than
        ``paper`` counts with its settings, so a revised preset's cells do not reuse the old preset's results.
        """
        defaults = {f.name: f.default for f in fields(self)}
        content = {key: value for key, value in asdict(self).items()
                   if key not in LATER_FIELDS or value != defaults[key]}  # fmt: skip
        if self.preset != "paper":  # a preset's settings may be revised: its cells then run again
            preset = PRESETS.get(self.preset, {}).get(self.method)
            content["preset_settings"] = preset.changes() if preset else {}
        digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:8]
        widths = "" if self.widths == "uniform" else f"-{self.widths}"
        return f"{self.model}-{self.method}{widths}-{digest}"

    @property
    def run_group(self) -> str:
        """The id shared by the runs of one configuration: the cells that differ only in their calibration seeds.
        Run *r* prunes with calibration seed *r* first and fine-tunes with data-order seed *r* (``run_index``)."""
        return replace(self, seeds=(), finetune_seed=None).id

    @property
    def run_index(self) -> int | None:
        """*r* for run *r* of its configuration (first calibration seed *r*, fine-tuned with data-order seed *r*);
        None for a cell fine-tuned with a data-order seed other than its calibration seed, which is no run by
        that definition (Table 1's older second ResNet-56 runs)."""
        if self.finetune_seed is not None and self.finetune_seed != self.seeds[0]:
            return None
        return self.seeds[0]

    def selection_settings(self) -> SelectionSettings:
        """The settings this cell selects with: its preset's, with its kernel (under the ``paper`` preset), its
        direction, its form (Gram or raw maps) and its own ``options`` over them.

        Raises:
            ValueError: an unknown preset or option, or a bad value (``SelectionSettings`` says which).
        """
        kernel = {"kernel": self.kernel} if self.preset == "paper" else {}
        return preset_settings(self.preset, self.method, **{**kernel, "direction": self.direction,
                                                            "use_gram": self.use_gram, **dict(self.options)})

    def prune_arguments(self) -> dict:
        """The keyword arguments of ``pruning.prune`` this cell selects with: its method, target, whole leading
        layers, widths and selection settings; the caller adds the seed, the model's name and progress."""
        return dict(method=self.method, target_flops=self.target_flops, target_params=self.target_params,
                    skip_first=self.skip_first, widths=self.widths, min_width=self.min_width, preset=self.preset,
                    settings=self.selection_settings(), reconstruct=self.reconstruct, allocation=self.allocation)

    def check(self) -> None:
        """Validate the cell (method, settings, targets, protocol fields) without doing any work.

        Raises:
            ValueError: the first problem, naming the cell.
        """
        try:
            get_criterion(self.method, settings=self.selection_settings())
            budget = check_options(self.widths, self.target_params, self.target_flops)
            check_allocation(self.allocation, self.widths, budget, 1)
        except ValueError as error:
            raise ValueError(f"cell {self.id}: {error}") from None
        if self.preset != "paper" and self.kernel != "laplacian":
            raise ValueError(f"cell {self.id}: preset {self.preset!r} sets the kernel; leave kernel at its default")
        if not self.seeds:
            raise ValueError(f"cell {self.id}: needs at least one calibration seed")
        epochs = self.finetune_epochs
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0):
            raise ValueError(f"cell {self.id}: finetune_epochs must be an int >= 0 or None, got {epochs!r}")
        seed = self.finetune_seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"cell {self.id}: finetune_seed must be an int >= 0 or None, got {seed!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"cell {self.id}: dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        if self.dataset == "imagenet" and self.validation is not None:
            raise ValueError(f"cell {self.id}: a validation split is for the in-memory datasets, not a streamed one")
        if self.needs not in (None, "cuda"):
            raise ValueError(f"cell {self.id}: needs must be None or 'cuda', got {self.needs!r}")
        if self.finetune_precision not in (None, *PRECISIONS):
            raise ValueError(f"cell {self.id}: finetune_precision must be None or one of {', '.join(PRECISIONS)}, "
                             f"got {self.finetune_precision!r}")
        if self.validation is not None and (isinstance(self.validation, bool) or not isinstance(self.validation, int)
                                            or self.validation <= 0):
            raise ValueError(f"cell {self.id}: validation must be a positive int or None, got {self.validation!r}")
        if not isinstance(self.reconstruct, bool):
            raise ValueError(f"cell {self.id}: reconstruct must be True or False, got {self.reconstruct!r}")
        if not self.use_gram and self.method not in RAW_MAP_METHODS:
            raise ValueError(f"cell {self.id}: use_gram=False is for {', '.join(RAW_MAP_METHODS)}, not {self.method}")

    def settings(self) -> list[str]:
        """What ``experiments list`` prints after the network, criterion and widths, one setting a string.

        Returns:
            e.g. ``["params 0.15", "seeds [0, 1, 2]", "kernel laplacian", "bs 128", "skip 4"]``, then only the
            settings this cell changes from their defaults (``"raw maps"``, ``"fine-tune 3 epochs"``, ...).
        """
        target = f"flops {self.target_flops}" if self.target_flops is not None else f"params {self.target_params}"
        optional = [(self.preset != "paper", f"preset {self.preset}"), (not self.use_gram, "raw maps"),
                    (self.direction == "columns", "columns"),
                    (self.finetune_epochs is not None, f"fine-tune {self.finetune_epochs} epochs"),
                    (self.finetune_precision is not None, f"{self.finetune_precision}"),
                    (self.finetune_seed is not None, f"fine-tuning seed {self.finetune_seed}"),
                    (self.validation is not None, f"validation {self.validation}"),
                    (self.reconstruct, "reconstruct"),
                    (self.allocation != "uniform", f"{self.allocation} allocation"),
                    *((True, f"{name}={value}") for name, value in self.options),
                    (self.needs is not None, f"needs {self.needs}")]  # fmt: skip
        return [target, f"seeds {list(self.seeds)}", f"kernel {self.selection_settings().kernel}",
                f"bs {self.batch_size}", f"skip {self.skip_first}", *(text for shown, text in optional if shown)]

    def missing_on(self, device: torch.device) -> str | None:
        """What a runner on ``device`` lacks to run this cell (CUDA; hardware bf16), or None when it runs it."""
        device = torch.device(device)
        if self.needs is not None and device.type != self.needs:
            if self.dataset == "imagenet":
                return "needs ImageNet and GPUs (--device cuda, $IBPRUNE_IMAGENET)"
            return f"needs --device {self.needs} (a GPU)"
        if self.dataset == "imagenet" and not (imagenet_dir() / "train").is_dir():
            return f"needs ImageNet's train/ and val/ at {imagenet_dir()} (set IBPRUNE_IMAGENET)"
        if self.finetune_precision == "fp16" and device.type != "cuda":
            return "needs --device cuda (fp16 fine-tuning)"
        if self.finetune_precision == "bf16" and not has_fast_bf16(device):
            return "needs a CPU with AVX512-BF16 or AMX, or --device cuda (bf16 fine-tuning)"
        return None

    def weights_path(self) -> Path | None:
        """The weights file this cell starts from, resolved on this machine; None for ``untrained``."""
        if self.weights == UNTRAINED:
            return None
        if self.weights.startswith("weights:"):
            return weights_dir() / self.weights.removeprefix("weights:")
        return REPO_ROOT / self.weights

