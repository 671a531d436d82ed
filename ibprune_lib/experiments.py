"""Experiments as a grid of cells: one configuration each, resumable, one JSON result per cell.

A table is a Python file ``experiments/<table>.py`` whose ``cells(scale)`` returns a list of :class:`Cell`.
A cell's id is derived from its content, so editing a cell makes a new one and never reuses a stale result.
Every cell follows one protocol (:data:`PROTOCOLS`, one per scale):

1. top-1 of the unpruned network on the same test images;
2. for each calibration seed: prune (selection seconds timed), top-1 right after pruning, BatchNorm
   recalibration on the training set, top-1 after it;
3. fine-tuning of the first seed's recalibrated network with the scale's recipe, then top-1.

Working files live in ``<work>/<scale>/<table>/<id>/`` (stages done, the pruned network, the per-epoch
fine-tuning checkpoint), so a killed runner loses at most one epoch; the result goes atomically to
``<results>/<scale>/<table>/<id>.json`` with its provenance. A cell is held under an exclusive ``flock`` while
it runs: two runners on one grid never take the same cell, and the lock dies with its process, so a
successor takes over a dead runner's cell. Spreading cells over machines is a scheduler's job
(``recipes/slurm-array.sh`` runs one cell per array task).

    python -m ibprune_lib experiments status table1 --scale cpu
    python -m ibprune_lib experiments run table1 --scale cpu [--cell ID] [--device cuda]
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import time
import traceback
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from statistics import fmean
from typing import Any

import torch
from tqdm.auto import tqdm

from .counting import count
from .data import NUM_CLASSES, ImageData, calibration_batch, hold_out_validation, load_cifar
from .download import PRETRAINED, pretrained_weights
from .models import check_outputs, get_model, input_size, load_model, save_model, weights_dir
from .provenance import REPO_ROOT, cpu_model, git_commit, provenance, save_json
from .pruning import prune
from .pruning.budget import CountModel, count_model, keep_counts_for_target
from .pruning.layers import survey_layers
from .pruning.pipeline import check_options
from .selection import PRESETS, preset_settings
from .train import PRECISIONS, TrainConfig, evaluate, fit, has_fast_bf16, recalibrate_batchnorm

EXPERIMENTS_DIR = REPO_ROOT / "experiments"
SCALES = ("smoke", "cpu", "paper")
CODE_COMMIT = git_commit()  # the code this process runs, even if HEAD moves while a long grid trains
LATER_FIELDS = ("use_gram", "finetune_epochs", "finetune_seed", "needs", "options", "finetune_precision", "validation")
"""Cell fields added after Table 1's first cells were committed: at their defaults they stay out of ``Cell.id``."""

RAW_MAP_METHODS = ("sglp", "stlp", "lasso")
"""The methods that can regress the raw feature maps instead of Gram matrices (``Cell.use_gram=False``)."""

UNTRAINED = "untrained"
"""``Cell.weights`` of a network with its seeded initial weights: a smoke cell of a network with no baseline."""

NOT_RUN_HERE = "not run here"
"""The state of a cell that needs a device this runner does not have (``Cell.needs``)."""

LAYER_KEYS = ("name", "channels", "kept", "kept_indices", "lam", "n_solves", "n_edges", "n_groups", "seconds",
              "completed")
"""What a cell's result keeps of each pruned layer's record (``prune``'s report): the channels kept, the λ found and
the solves it took, the size of the structure (sGLP-IB's graph edges, sTLP-IB's tree groups), the selection
seconds, so a slow cell says which layer was slow and why, and how many channels the completion rule chose where
no λ reached k (``lasso.adaptive``)."""

SELECTION_OPTIONS = ("threshold", "knn", "gamma_graph", "linkage", "score", "normalise", "solver", "tree_prox")
"""Settings of ``ibprune_lib.selection.select`` a cell may change one by one (``Cell.options``): the settings
study varies them."""


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
        dataset: ``cifar10`` or ``cifar100``.
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
        options: (name, value) pairs of ``SELECTION_OPTIONS`` passed to the selection, over the preset's.
        finetune_precision: the fine-tuning precision instead of the scale's recipe (``train.PRECISIONS``); a
            ``"bf16"`` cell runs only where bf16 is fast (``train.has_fast_bf16``): the ablations' short protocol.
        validation: hold this many training images out (``data.hold_out_validation``, the same split for every
            cell) and report top-1 on them too, after recalibration and after fine-tuning: the number a table
            that chooses a setting or a variant chooses on. Calibration, recalibration and fine-tuning then draw
            from the other training images; the test set is still reported and chooses nothing.
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
            content["preset_settings"] = PRESETS.get(self.preset, {}).get(self.method, {})
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:8]
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

    def selection_settings(self) -> dict:
        """The kernel and selection options this cell prunes with: its preset's, its own ``options`` over them."""
        return preset_settings(self.preset, self.method, self.kernel if self.preset == "paper" else None,
                               **dict(self.options))

    def prune_arguments(self) -> dict:
        """The keyword arguments of ``pruning.prune`` this cell selects with: its method, target, whole leading
        layers, widths, direction, form and selection settings; the caller adds the seed, the model's name and
        progress."""
        return dict(method=self.method, target_flops=self.target_flops, target_params=self.target_params,
                    skip_first=self.skip_first, widths=self.widths, direction=self.direction,
                    min_width=self.min_width, use_gram=self.use_gram, preset=self.preset,
                    **self.selection_settings())

    def check(self) -> None:
        """Validate the options (method, kernel, targets, preset) without doing any work."""
        check_options(self.method, self.kernel, self.direction, self.widths, self.target_params, self.target_flops)
        if self.preset not in PRESETS:
            raise ValueError(f"cell {self.id}: unknown preset {self.preset!r}: choose one of {', '.join(PRESETS)}")
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
        unknown = [name for name, _ in self.options if name not in SELECTION_OPTIONS]
        if unknown:
            raise ValueError(f"cell {self.id}: unknown option {unknown[0]!r}: choose from "
                             f"{', '.join(SELECTION_OPTIONS)}")
        if self.needs not in (None, "cuda"):
            raise ValueError(f"cell {self.id}: needs must be None or 'cuda', got {self.needs!r}")
        if self.finetune_precision not in (None, *PRECISIONS):
            raise ValueError(f"cell {self.id}: finetune_precision must be None or one of {', '.join(PRECISIONS)}, "
                             f"got {self.finetune_precision!r}")
        if self.validation is not None and (isinstance(self.validation, bool) or not isinstance(self.validation, int)
                                            or self.validation <= 0):
            raise ValueError(f"cell {self.id}: validation must be a positive int or None, got {self.validation!r}")
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
                    *((True, f"{name}={value}") for name, value in self.options),
                    (self.needs is not None, f"needs {self.needs}")]  # fmt: skip
        return [target, f"seeds {list(self.seeds)}", f"kernel {self.selection_settings()['kernel']}",
                f"bs {self.batch_size}", f"skip {self.skip_first}", *(text for shown, text in optional if shown)]

    def missing_on(self, device: torch.device) -> str | None:
        """What a runner on ``device`` lacks to run this cell (CUDA; hardware bf16), or None when it runs it."""
        device = torch.device(device)
        if self.needs is not None and device.type != self.needs:
            return f"needs --device {self.needs} (a GPU)"
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


def table_names() -> list[str]:
    """The tables declared under ``experiments/`` (files defining ``cells``)."""
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.py") if "def cells(" in p.read_text())


def load_table(table: str, scale: str) -> list[Cell]:
    """The cells of ``table`` at ``scale``: a name under ``experiments/`` or a path to a ``.py`` file.

    Raises:
        ValueError: unknown scale or table, a table with duplicate cells, or an invalid cell.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown --scale {scale!r}: choose one of {', '.join(SCALES)}")
    path = Path(table) if table.endswith(".py") else EXPERIMENTS_DIR / f"{table}.py"
    if not path.is_file() or "def cells(" not in path.read_text():
        raise ValueError(f"unknown table {table!r}: choose one of {', '.join(table_names())} (files in {EXPERIMENTS_DIR})")
    spec = importlib.util.spec_from_file_location(f"ibprune_table_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cells = list(module.cells(scale))
    ids = [cell.id for cell in cells]
    if len(set(ids)) != len(ids):
        raise ValueError(f"table {table!r} declares the same cell twice")
    for cell in cells:
        cell.check()
    return cells


@dataclass
class Grid:
    """A table's cells at one scale, with where their results and working files go.

    Attributes:
        table: the table's name (or a path to its file).
        scale: ``smoke``, ``cpu`` or ``paper``.
        results: results root; a cell's JSON is ``<results>/<scale>/<table>/<id>.json``.
        work: working-files root (checkpoints, locks), ``<work>/<scale>/<table>/``.
    """

    table: str
    scale: str
    results: Path = REPO_ROOT / "results"
    work: Path = REPO_ROOT / "runs"
    cells: list[Cell] = field(init=False)

    def __post_init__(self):
        self.cells = load_table(self.table, self.scale)
        self.results, self.work = Path(self.results), Path(self.work)

    @property
    def name(self) -> str:
        return Path(self.table).stem

    @property
    def protocol(self) -> Protocol:
        return PROTOCOLS[self.scale]

    def result_path(self, cell: Cell) -> Path:
        return self.results / self.scale / self.name / f"{cell.id}.json"

    def work_dir(self, cell: Cell) -> Path:
        return self.work / self.scale / self.name / cell.id

    def select(self, cell_ids: list[str] | None) -> list[Cell]:
        """The cells named by ``cell_ids`` (all when None), in the table's order.

        Raises:
            ValueError: an id the table does not declare.
        """
        if not cell_ids:
            return self.cells
        known = {cell.id: cell for cell in self.cells}
        unknown = [i for i in cell_ids if i not in known]
        if unknown:
            raise ValueError(f"unknown --cell {unknown[0]!r} in {self.name}: `experiments list {self.name}` shows the ids")
        return [known[i] for i in cell_ids]

    def expected_seconds(self, cell: Cell) -> float | None:
        """Seconds ``cell`` still needs, or None when nothing done has measured a cell of its kind.

        A cell with a fine-tuning checkpoint is timed by its own epochs: what its epochs left take at the speed
        this machine and runner count gave the ones done. Otherwise by done cells of its kind (:meth:`timing_kind`:
        network, solver, fine-tuning precision): the mean of this grid's done cells of its kind and fine-tuning
        length, less what the cell's saved stages already took; when this grid has none, the done cells of every
        table at this scale, what came before their fine-tuning from those of the same network and solver, their
        fine-tuning per epoch from those of the same network and precision, times the cell's epochs (so a table's
        first cell is timed too, and ``--until`` holds for it). Of the done cells, only those that ran on this CPU
        model with this process's thread count count when there are any, else those on this CPU model; of those,
        the ones nearest the cell in the share of the MACs kept (:func:`expected_macs_kept`), their fine-tuning
        seconds scaled by the ratio of the shares: a VGG-16 keeping 90% of its parameters fine-tunes about twice
        as long as one keeping 15%.
        """
        epochs = self.protocol.finetune_epochs(cell)
        work = self.work_dir(cell)
        finetuning = _finetuning_progress(work)
        if finetuning is not None:
            epochs_done, seconds = finetuning
            return (epochs - epochs_done) * seconds / epochs_done
        network, solver, precision = kind = self.timing_kind(cell)
        alike = [result for other in self.cells
                 if self.timing_kind(other) == kind and self.protocol.finetune_epochs(other) == epochs
                 and (result := self.read(other)) is not None]  # fmt: skip
        share = expected_macs_kept(cell)
        measured = _this_machine_first(alike)
        if measured:
            measured, scale = _nearest_in_size(measured, share)
            finetuning = scale * fmean(result["seconds"]["finetune"] for result in measured)
        else:
            same_network = self.results.glob(f"{self.scale}/*/{network}-*.json")  # every table's done cells
            results = [json.loads(path.read_text()) for path in same_network]
            elsewhere = [(_timing_kind(result), result) for result in results]
            measured = _this_machine_first([result for other, result in elsewhere if other[1] == solver])
            finetuned_alike = _this_machine_first([result for other, result in elsewhere
                                                   if other[2] == precision and result["finetune"].get("history")])
            if not measured or (epochs and not finetuned_alike):
                return None
            measured, _ = _nearest_in_size(measured, share)
            finetuning = 0.0
            if epochs:
                finetuned_alike, scale = _nearest_in_size(finetuned_alike, share)
                finetuning = epochs * scale * fmean(result["seconds"]["finetune"] / len(result["finetune"]["history"])
                                                    for result in finetuned_alike)  # fmt: skip
        before_finetuning = fmean(result["seconds"]["total"] - result["seconds"]["finetune"] for result in measured)
        return max(before_finetuning - _seconds_before_finetuning(_saved_stages(work)), 0.0) + finetuning

    def timing_kind(self, cell: Cell) -> tuple[str, str | None, str]:
        """What a cell's seconds depend on most: (network, solver, fine-tuning precision). The solver is None for
        the exact one; SPG's selection takes 20 times as long on VGG-16 (``experiments/solvers.py``), bf16
        fine-tuning half as long on a CPU with AMX."""
        return cell.model, cell.selection_settings().get("solver"), self.protocol.finetune_precision(cell)

    def state(self, cell: Cell) -> dict:
        """``{"state": done|running|failed|to do|not run here, "detail": str}`` of one cell; a cell still to run
        also has ``"expected"``, the seconds it still needs (:meth:`expected_seconds`, None when unmeasured)."""
        result = self.read(cell)
        if result is not None:
            return {"state": "done", "detail": _summary(result), "seconds": result["seconds"]["total"]}
        missing = cell.missing_on(torch.device("cpu"))
        if missing is not None:
            return {"state": NOT_RUN_HERE, "detail": missing}
        expected = self.expected_seconds(cell)
        lock = _try_lock(self._lock_path(cell))
        if lock is None:
            return {"state": "running", "detail": _progress(self.work_dir(cell), expected), "expected": expected}
        os.close(lock)
        error = self.work_dir(cell) / "error.json"
        if error.is_file():
            return {"state": "failed", "detail": json.loads(error.read_text())["error"], "expected": expected}
        return {"state": "to do", "detail": _progress(self.work_dir(cell), expected), "expected": expected}

    def _lock_path(self, cell: Cell) -> Path:
        return self.work / self.scale / self.name / f"{cell.id}.lock"

    def check_writable(self) -> None:
        """Raise a one-line error when the results or work folder cannot be written."""
        for root, flag in ((self.results, "--results"), (self.work, "--work")):
            folder = root / self.scale / self.name
            try:
                folder.mkdir(parents=True, exist_ok=True)
                probe = folder / f".probe-{os.getpid()}"
                probe.write_text("")
                probe.unlink()
            except OSError as error:
                raise ValueError(f"{flag} folder {folder} is not writable ({error.strerror}); pass a writable {flag}") from None

    def read(self, cell: Cell) -> dict | None:
        """The cell's result, or None when it has not run."""
        path = self.result_path(cell)
        return json.loads(path.read_text()) if path.is_file() else None

    def run(
        self, cells: list[Cell], device: torch.device = torch.device("cpu"), progress: bool = True,
        until: float | None = None,
    ) -> list[tuple[Cell, str]]:
        """Run every cell of ``cells`` that is neither done nor held by another runner.

        Args:
            cells: the cells to run, in order.
            device: where they run.
            progress: progress bars.
            until: a time (``time.time()`` seconds) no cell should end after: a cell whose expected seconds
                left (:meth:`expected_seconds`) would take it past it is left for a later run, and so is one of a
                kind nothing done at this scale has timed (run it without ``until``). A machine that goes away at a
                known time loses no half-run cell.

        Returns:
            ``(cell, outcome)`` per cell: ``done``, ``skipped (done)``, ``skipped (running)``,
            ``skipped (would end after --until)``, ``skipped (not timed yet: run it without --until)`` or
            ``failed: …``.
        """
        self.check_writable()
        for cell in cells:
            path = cell.weights_path()
            if self.result_path(cell).is_file() or cell.missing_on(device) or path is None or path.is_file():
                continue
            name = cell.weights.removeprefix("weights:")
            if name in PRETRAINED:
                pretrained_weights(name, progress)  # the public ResNets are fetched once, verified
            else:
                fix = (f"set IBPRUNE_WEIGHTS to the folder holding {name}" if cell.weights.startswith("weights:")
                       else "train the baseline (results/cpu/baselines/README.md says how)")
                raise FileNotFoundError(f"cell {cell.id}: no weights at {cell.weights_path()}. Fix: {fix}")
        datasets: dict[str, ImageData] = {}
        outcomes = []
        bar = tqdm(cells, desc=f"{self.name} ({self.scale})", disable=not progress)
        for cell in bar:
            bar.set_postfix_str(cell.id)
            if self.result_path(cell).is_file():
                outcomes.append((cell, "skipped (done)"))
                continue
            missing = cell.missing_on(device)
            if missing is not None:
                outcomes.append((cell, f"{NOT_RUN_HERE}: {missing}"))
                continue
            expected = self.expected_seconds(cell) if until is not None else None
            if until is not None and expected is None:
                outcomes.append((cell, "skipped (not timed yet: run it without --until)"))
                continue
            if expected is not None and time.time() + expected > until:
                outcomes.append((cell, "skipped (would end after --until)"))
                continue
            lock = _try_lock(self._lock_path(cell))
            if lock is None:
                outcomes.append((cell, "skipped (running)"))
                continue
            try:
                if self.result_path(cell).is_file():  # finished by another runner since the check above
                    outcomes.append((cell, "skipped (done)"))
                    continue
                if cell.dataset not in datasets:
                    datasets[cell.dataset] = load_cifar(cell.dataset, download=True)
                result = run_cell(cell, self.protocol, datasets[cell.dataset], self.work_dir(cell), device, progress,
                                  memo=self.work / "unpruned")
                result["table"] = self.name
                save_json(self.result_path(cell), result)
                for done_with in (self.work_dir(cell) / "error.json", self.work_dir(cell) / "finetune.pt",
                                  self._lock_path(cell)):  # a runner that opens the lock later sees the result
                    done_with.unlink(missing_ok=True)
                outcomes.append((cell, "done"))
                tqdm.write(f"{cell.id}: {_summary(result)}")
            except Exception as error:  # one failed cell must not stop the grid; its error is kept for `status`
                message = f"{type(error).__name__}: {error}".splitlines()[0]
                save_json(self.work_dir(cell) / "error.json", {"error": message, "traceback": traceback.format_exc()})
                outcomes.append((cell, f"failed: {message}"))
                tqdm.write(f"{cell.id}: failed: {message}")
            finally:
                os.close(lock)
        return outcomes


def _timing_kind(result: dict) -> tuple[str, str | None, str]:
    """:meth:`Grid.timing_kind` of a done cell, from its result (one from before the settings were recorded
    pruned with its own options, one from before precisions were, was fine-tuned in its protocol's)."""
    cell = result["cell"]
    settings = cell.get("selection_settings", dict(cell.get("options", ())))
    precision = result["finetune"].get("precision") or result["protocol"]["finetune"].get("precision")
    return cell["model"], settings.get("solver"), precision


def _try_lock(path: Path) -> int | None:
    """An exclusive ``flock`` on ``path`` (a file descriptor; close it to release), or None when held elsewhere."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _summary(result: dict) -> str:
    stages = result["stages"]
    finetuned = "not fine-tuned" if stages["finetuned"] is None else f"{stages['finetuned']:.2f} fine-tuned"
    return (f"top-1 {stages['pruned']['mean']:.2f} pruned, {stages['recalibrated']['mean']:.2f} recalibrated, "
            f"{finetuned}; FLOPs -{result['counts']['flops_reduction']:.1f}%, "
            f"params -{result['counts']['params_reduction']:.1f}%; {result['seconds']['total'] / 60:.1f} min")


def _progress(work: Path, expected: float | None) -> str:
    """What a cell not done yet has done, and what it is expected to still need."""
    left = "" if expected is None else f"; about {expected / 60:.0f} min to go"
    stages = work / "stages.json"
    if not stages.is_file():
        return "not started" + left
    done = json.loads(stages.read_text())
    text = f"{len(done.get('seeds', []))} seed(s) pruned"
    finetuning = _finetuning_progress(work)
    if finetuning is not None:
        text += f", fine-tuning epoch {finetuning[0]} done"
    return text + left


def _finetuning_progress(work: Path) -> tuple[int, float] | None:
    """``(epochs done, their wall seconds)`` of a cell's fine-tuning checkpoint, or None when it has none.

    The checkpoint is memory-mapped, so its weights are not read (``status`` asks twice per half-run cell).
    """
    checkpoint = work / "finetune.pt"
    if not checkpoint.is_file():
        return None
    state = torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True)
    return state["epoch"], state["wall_seconds"]


def _saved_stages(work: Path) -> dict:
    """The stages a cell's working folder has saved (``stages.json``): none yet when it has not started."""
    stages_file = work / "stages.json"
    return json.loads(stages_file.read_text()) if stages_file.is_file() else {"seeds": [], "seconds": {}}


def _hardware(result: dict) -> dict:
    return result.get("provenance", {}).get("hardware", {})


@functools.cache
def _count_model(model: str, num_classes: int, skip_first: int) -> CountModel:
    """The exact count model of a zoo network's architecture past its first ``skip_first`` prunable layers (a
    few seconds on VGG-16: cached)."""
    network = get_model(model, num_classes).eval()
    size = input_size(model)
    return count_model(network, survey_layers(network, size, skip_first).prunable, size)


def expected_macs_kept(cell: Cell) -> float:
    """The share of its network's MACs ``cell`` keeps: its FLOPs target, or the MACs that one shared keep ratio
    meeting its parameters target leaves (ITPruner's widths meet the same target with slightly different MACs)."""
    if cell.target_flops is not None:
        return fmean(cell.target_flops) if isinstance(cell.target_flops, (tuple, list)) else float(cell.target_flops)
    counts = _count_model(cell.model, NUM_CLASSES[cell.dataset], cell.skip_first)
    return counts.ratio(keep_counts_for_target(counts, "params", cell.target_params), "macs")


def _macs_kept(result: dict) -> float:
    """The share of its network's MACs a done cell kept."""
    return result["counts"]["macs_after"] / result["counts"]["macs_before"]


def _nearest_in_size(results: list[dict], share: float) -> tuple[list[dict], float]:
    """Of done cells' results, those nearest keeping ``share`` of the MACs (within 0.05 of the nearest), and
    the factor that scales their fine-tuning seconds to ``share`` (an epoch's compute grows with the MACs)."""
    nearest = min(abs(_macs_kept(result) - share) for result in results)
    near = [result for result in results if abs(_macs_kept(result) - share) <= nearest + 0.05]
    return near, share / fmean(_macs_kept(result) for result in near)


def _this_machine_first(results: list[dict]) -> list[dict]:
    """Of done cells' results, those measured on this CPU model with this process's torch threads, else those on
    this CPU model, else all: the same cell's wall time differs by 2-4x between the machines and thread counts
    the grid has run on."""
    here = {"cpu": cpu_model(), "torch_threads": torch.get_num_threads()}
    for keys in (("cpu", "torch_threads"), ("cpu",)):
        alike = [result for result in results if all(_hardware(result).get(key) == here[key] for key in keys)]
        if alike:
            return alike
    return results


def _seconds_before_finetuning(stages: dict) -> float:
    """Wall seconds of the saved stages before fine-tuning: the unpruned evaluation and every seed's pruning."""
    return stages["seconds"].get("unpruned_eval", 0.0) + sum(record["seconds"] for record in stages["seeds"])


def mean_spread(values: list[float]) -> dict:
    """``{"values", "mean", "std"}`` of a list: the sample standard deviation, 0 for a single value."""
    tensor = torch.tensor(values, dtype=torch.float64)
    return {"values": values, "mean": tensor.mean().item(), "std": tensor.std().item() if len(values) > 1 else 0.0}


def _starting_model(cell: Cell) -> tuple[torch.nn.Module, str, tuple[int, int, int]]:
    """(the cell's unpruned network in eval mode, its name, its input size)."""
    num_classes = NUM_CLASSES[cell.dataset]
    if cell.weights == UNTRAINED:
        torch.manual_seed(0)
        return get_model(cell.model, num_classes).eval(), cell.model, input_size(cell.model)
    model, name, size, _ = load_model(cell.weights_path(), cell.model, num_classes)
    check_outputs(model, name, num_classes, cell.dataset)
    return model, name, size


def _unpruned_top1(cell: Cell, model: torch.nn.Module, name: str, x_test, y_test, memo: Path | None) -> float:
    """Top-1 of the cell's unpruned network, evaluated once per weights file, test set and device type.

    Every cell of a network starts from the same weights, and a whole VGG-16 takes minutes to evaluate on two
    cores: the first cell writes ``memo/<weights digest>-<dataset>-<images>-<device>.json``, the others read it.
    """
    source = cell.weights_path()
    digest = f"untrained-{cell.model}" if source is None else hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    device = next(model.parameters()).device.type
    path = None if memo is None else memo / f"{digest}-{cell.dataset}-{len(x_test)}-{device}.json"
    if path is not None and path.is_file():
        return json.loads(path.read_text())["top1"]
    top1 = evaluate(model, x_test, y_test, name, progress=False)
    if path is not None:
        save_json(path, {"top1": top1, "weights": cell.weights, "dataset": cell.dataset, "test_images": len(x_test),
                         "device": device, "provenance": provenance()})
    return top1


def run_cell(
    cell: Cell, protocol: Protocol, data: ImageData, work: Path, device: torch.device, progress: bool = True,
    memo: Path | None = None,
) -> dict:
    """Run one cell through the protocol, resuming from the stages saved in ``work``.

    Args:
        cell: the configuration.
        protocol: the scale's protocol.
        data: the cell's dataset in memory.
        work: the cell's working folder (created; resumed from when it holds earlier stages).
        device: where the networks run.
        progress: tqdm bars.
        memo: folder of the unpruned networks' top-1, shared by the cells (None: evaluate every time).

    Returns:
        The JSON-ready result: the cell, the protocol, counts, every stage's top-1, seconds and provenance.
    """
    started, load_at_start = time.perf_counter(), [round(load, 2) for load in os.getloadavg()]
    work.mkdir(parents=True, exist_ok=True)
    stages_file = work / "stages.json"
    stages = _saved_stages(work)
    x_validation = y_validation = None
    if cell.validation:
        data, x_validation, y_validation = hold_out_validation(data, cell.validation)
    n = protocol.test_images or len(data.x_test)
    x_test, y_test = data.x_test[:n], data.y_test[:n]
    model, name, size = _starting_model(cell)
    model.to(device)

    if "unpruned" not in stages:
        tic = time.perf_counter()
        counts = count(model, size)
        stages["unpruned"] = {
            "top1": _unpruned_top1(cell, model, name, x_test, y_test, memo), "macs": counts.macs,
            "params": counts.params, "params_without_norm": counts.params_without_norm,
        }
        stages["seconds"]["unpruned_eval"] = time.perf_counter() - tic
        save_json(stages_file, stages)

    seeds = cell.seeds[: protocol.calibration_seeds]
    pruned_file = work / "pruned.pt"
    for seed in seeds:
        if any(record["seed"] == seed for record in stages["seeds"]) and (seed != seeds[0] or pruned_file.is_file()):
            continue
        tic = time.perf_counter()
        images, labels = calibration_batch(data.x_train, data.y_train, cell.batch_size, seed)
        result = prune(model, images, seed=seed, model_name=name, progress=progress, **cell.prune_arguments())
        pruned = result.model
        top1_pruned = evaluate(pruned, x_test, y_test, name, progress=False)
        recalibrate_batchnorm(pruned, data.x_train, name, protocol.recalibration_batches,
                              protocol.recalibration_batch_size, seed)
        record = {
            "seed": seed,
            "calibration_class_counts": torch.bincount(labels, minlength=data.num_classes).tolist(),
            "top1_pruned": top1_pruned,
            "top1_recalibrated": evaluate(pruned, x_test, y_test, name, progress=False),
            **({"top1_recalibrated_validation": evaluate(pruned, x_validation, y_validation, name, progress=False)}
               if cell.validation else {}),
            "selection_seconds": result.report["seconds"]["selection"],
            "seconds": time.perf_counter() - tic,
            "totals": result.report["totals"],
            "layers": [{key: layer[key] for key in LAYER_KEYS} for layer in result.report["layers"]],
        }
        if seed == seeds[0]:
            save_model(pruned, pruned_file, name, report=result.report)
        stages["seeds"] = [r for r in stages["seeds"] if r["seed"] != seed] + [record]
        save_json(stages_file, stages)

    tic = time.perf_counter()
    finetuned = load_model(pruned_file).module
    finetuned.to(device)
    epochs = protocol.finetune_epochs(cell)
    history, top1_finetuned = None, None
    if epochs:
        seed = seeds[0] if cell.finetune_seed is None else cell.finetune_seed
        config = protocol.finetune_config(cell, name, seed)
        history = fit(finetuned, data, config, checkpoint=work / "finetune.pt", test_subset=protocol.monitor_images,
                      progress=progress)
        top1_finetuned = evaluate(finetuned, x_test, y_test, name, progress=False)
        if cell.validation:
            stages["finetuned_validation"] = evaluate(finetuned, x_validation, y_validation, name, progress=False)
        save_model(finetuned.cpu(), work / "finetuned.pt", name)
    finetune_seconds = time.perf_counter() - tic

    records = sorted(stages["seeds"], key=lambda r: seeds.index(r["seed"]))
    totals = records[0]["totals"]
    unpruned = stages["unpruned"]
    after = count(finetuned, size)
    return {
        "cell": {**asdict(cell), "id": cell.id, "selection_settings": cell.selection_settings()},
        "scale": protocol.scale,
        "dataset": data.label,
        "protocol": protocol.record(cell, list(seeds), torch.get_num_threads()),
        "counts": {
            "macs_before": unpruned["macs"], "macs_after": totals["macs_after"],
            "params_before": unpruned["params"], "params_after": totals["params_after"],
            "params_without_norm_before": unpruned["params_without_norm"],
            "params_without_norm_after": after.params_without_norm,
            "flops_reduction": 100 * (1 - totals["macs_ratio"]),
            "params_reduction": 100 * (1 - totals["params_ratio"]),
            "params_without_norm_reduction": 100 * (1 - after.params_without_norm / unpruned["params_without_norm"]),
        },
        "test_images": n,
        "stages": {
            "unpruned": unpruned["top1"],
            "pruned": mean_spread([r["top1_pruned"] for r in records]),
            "recalibrated": mean_spread([r["top1_recalibrated"] for r in records]),
            "finetuned": top1_finetuned,
            "finetuned_seed": seeds[0],
            **({"validation_images": cell.validation,
                "recalibrated_validation": mean_spread([r["top1_recalibrated_validation"] for r in records]),
                "finetuned_validation": stages.get("finetuned_validation")} if cell.validation else {}),
        },
        "selection_seconds": mean_spread([r["selection_seconds"] for r in records]),
        "seeds": records,
        "finetune": {"epochs": epochs, **({"seed": config.seed, "precision": config.precision} if epochs else {}),
                     "history": history.history if history else [],
                     "wall_seconds": history.wall_seconds if history else 0.0},
        "seconds": {**stages["seconds"], "per_seed": [r["seconds"] for r in records], "finetune": finetune_seconds,
                    "total": _seconds_before_finetuning(stages) + finetune_seconds},
        "provenance": provenance(scale=protocol.scale, code_commit=CODE_COMMIT, device=str(device), seeds=list(seeds),
                                 this_run_seconds=time.perf_counter() - started,
                                 load_average_at_start=load_at_start),
    }


def status_line(grid: Grid, states: dict[str, dict]) -> str:
    """``status``'s last line: the cells in each state, and the compute left.

    Args:
        grid: the table.
        states: :meth:`Grid.state` of every cell, by id.

    Returns:
        e.g. ``table1 (cpu): 16 done, 2 running, 0 failed, 16 to do, 8 not run here; about 12.1 h of compute left
        at the measured rate (about 6.0 h of wall time with the 2 runners on it now), plus 7 cell(s) not timed yet
        (…)``. A runner holds one cell at a time, so the cells running count the runners.
    """
    tally = {state: sum(v["state"] == state for v in states.values())
             for state in ("done", "running", "failed", "to do", NOT_RUN_HERE)}
    seconds, unknown = compute_left(grid, states)
    left = [f"about {seconds / 3600:.1f} h of compute left at the measured rate"] if seconds or not unknown else []
    if left and seconds and tally["running"] > 1:
        left[0] += (f" (about {seconds / 3600 / tally['running']:.1f} h of wall time with the {tally['running']} "
                    "runners on it now)")
    if unknown:
        left.append(f"{unknown} cell(s) not timed yet (nothing done at this scale has timed their network, solver "
                    "and precision)")
    shown = [f"{count} {state}" for state, count in tally.items() if count or state != NOT_RUN_HERE]
    return f"{grid.name} ({grid.scale}): " + ", ".join(shown) + "; " + ", plus ".join(left)


def distinguishing_settings(cells: list[Cell]) -> dict[str, str]:
    """What sets each cell apart from its network's first cell in the same table (a table declares its base
    setting first): the :meth:`Cell.settings` the first one lacks. ``status`` shows it beside the id.

    Args:
        cells: a table's cells, in its order.

    Returns:
        ``{cell id: "bs 512"}``, ``{cell id: "seeds [0], fine-tuning seed 1"}``, ...; ``"base"`` for a cell with
        its network's first cell's settings.
    """
    first = {}
    for cell in cells:
        first.setdefault(cell.model, cell.settings())
    return {cell.id: ", ".join(s for s in cell.settings() if s not in first[cell.model]) or "base" for cell in cells}


def compute_left(grid: Grid, states: dict[str, dict]) -> tuple[float, int]:
    """Seconds still needed for the cells to do here, each at what it still needs (the ``"expected"`` of its
    :meth:`Grid.state`; cells not run here are left out).

    Returns:
        (seconds, number of undone cells of a kind with no measurement yet).
    """
    expected = [states[cell.id]["expected"] for cell in grid.cells
                if states[cell.id]["state"] not in ("done", NOT_RUN_HERE)]  # fmt: skip
    return sum(e for e in expected if e is not None), sum(e is None for e in expected)
