"""Running a table's cells: resumable, one JSON result per cell, one runner per cell at a time.

Working files live in ``<work>/<scale>/<table>/<id>/`` (stages done, the pruned network, the per-epoch
fine-tuning checkpoint), so a killed runner loses at most one epoch; the result goes atomically to
``<results>/<scale>/<table>/<id>.json`` with its provenance. A cell is held under an exclusive ``flock`` while
it runs: two runners on one grid never take the same cell, and the lock dies with its process, so a
successor takes over a dead runner's cell. Spreading cells over machines is a scheduler's job
(``recipes/slurm-array.sh`` runs one cell per array task).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from ... import distributed
from ...counting import count
from ...data import ImageData, hold_out_validation, load_cifar
from ...download import PRETRAINED, pretrained_weights
from ...models import check_outputs, get_model, input_size, load_model, save_model
from ...paths import imagenet_dir, results_dir, work_dir
from ...provenance import git_commit, provenance, save_json
from ...pruning import prune
from ...streaming import FolderStream, draw_calibration, open_stream, recalibration_pool, test_size
from ...train import evaluate, fit, recalibrate_batchnorm, top1
from .cell import UNTRAINED, Cell
from .estimates import NOT_RUN_HERE, expected_seconds, saved_stages, seconds_before_finetuning
from .protocol import PROTOCOLS, Protocol
from .status import progress_text, summary
from .tables import load_table

LAYER_KEYS = ("name", "channels", "kept", "kept_indices", "lam", "n_solves", "n_edges", "n_groups", "seconds",
              "completed")
"""What a cell's result keeps of each pruned layer's record (``prune``'s report): the channels kept, the λ found and
the solves it took, the size of the structure (sGLP-IB's graph edges, sTLP-IB's tree groups), the selection
seconds, so a slow cell says which layer was slow and why, and how many channels the completion rule chose where
no λ reached k (``lasso.adaptive``)."""


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
    results: Path = field(default_factory=results_dir)
    work: Path = field(default_factory=work_dir)
    cells: list[Cell] = field(init=False)

    def __post_init__(self):
        code_commit()  # read now: the commit this process runs, even if HEAD moves while a long grid trains
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

    def state(self, cell: Cell) -> dict:
        """``{"state": done|running|failed|to do|not run here, "detail": str}`` of one cell; a cell still to run
        also has ``"expected"``, the seconds it still needs (``estimates.expected_seconds``, None when unmeasured)."""
        result = self.read(cell)
        if result is not None:
            return {"state": "done", "detail": summary(result), "seconds": result["seconds"]["total"]}
        missing = cell.missing_on(torch.device("cpu"))
        if missing is not None:
            return {"state": NOT_RUN_HERE, "detail": missing}
        expected = expected_seconds(self, cell)
        lock = _try_lock(self._lock_path(cell))
        if lock is None:
            return {"state": "running", "detail": progress_text(self.work_dir(cell), expected), "expected": expected}
        os.close(lock)
        error = self.work_dir(cell) / "error.json"
        if error.is_file():
            return {"state": "failed", "detail": json.loads(error.read_text())["error"], "expected": expected}
        return {"state": "to do", "detail": progress_text(self.work_dir(cell), expected), "expected": expected}

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
                left (``estimates.expected_seconds``) would take it past it is left for a later run, and so is one of a
                kind nothing done at this scale has timed (run it without ``until``). A machine that goes away at a
                known time loses no half-run cell.

        Returns:
            ``(cell, outcome)`` per cell: ``done``, ``skipped (done)``, ``skipped (running)``,
            ``skipped (would end after --until)``, ``skipped (not timed yet: run it without --until)`` or
            ``failed: …``.
        """
        distributed.run_on_main(lambda: self._fetch_weights(cells, device, progress))
        datasets: dict[str, ImageData | FolderStream] = {}
        outcomes = []
        show = progress and distributed.is_main()
        bar = tqdm(cells, desc=f"{self.name} ({self.scale})", disable=not show)
        for cell in bar:
            bar.set_postfix_str(cell.id)
            lock = None
            outcome = distributed.run_on_main(lambda: self._claim(cell, device, until))
            if isinstance(outcome, int):  # rank 0 holds the cell's lock
                lock, outcome = (outcome if distributed.is_main() else None), None
            if outcome is not None:
                outcomes.append((cell, outcome))
                continue
            try:
                if cell.dataset not in datasets:
                    datasets[cell.dataset] = load_dataset(cell.dataset, self.scale)
                result = run_cell(cell, self.protocol, datasets[cell.dataset], self.work_dir(cell), device, progress,
                                  memo=self.work / "unpruned")
                result["table"] = self.name
                if distributed.is_main():
                    save_json(self.result_path(cell), result)
                    for done_with in (self.work_dir(cell) / "error.json", self.work_dir(cell) / "finetune.pt",
                                      self._lock_path(cell)):  # a runner that opens the lock later sees the result
                        done_with.unlink(missing_ok=True)
                    tqdm.write(f"{cell.id}: {summary(result)}")
                outcomes.append((cell, "done"))
            except Exception as error:  # one failed cell must not stop the grid; its error is kept for `status`
                if distributed.active():
                    raise  # the other ranks wait in a collective: end the run, torchrun stops them
                message = f"{type(error).__name__}: {error}".splitlines()[0]
                save_json(self.work_dir(cell) / "error.json", {"error": message, "traceback": traceback.format_exc()})
                outcomes.append((cell, f"failed: {message}"))
                tqdm.write(f"{cell.id}: failed: {message}")
            finally:
                if lock is not None:
                    os.close(lock)
        return outcomes

    def _fetch_weights(self, cells: list[Cell], device: torch.device, progress: bool) -> None:
        """Check the folders and fetch the public weights the cells start from, before any cell runs."""
        self.check_writable()
        for cell in cells:
            path = cell.weights_path()
            if self.result_path(cell).is_file() or cell.missing_on(device) or path is None or path.is_file():
                continue
            name = cell.weights.removeprefix("weights:")
            if name in PRETRAINED:
                pretrained_weights(name, progress)  # the public weights are fetched once, verified
            else:
                fix = (f"set IBPRUNE_WEIGHTS to the folder holding {name}" if cell.weights.startswith("weights:")
                       else "train the baseline (results/cpu/baselines/README.md says how)")
                raise FileNotFoundError(f"cell {cell.id}: no weights at {cell.weights_path()}. Fix: {fix}")

    def _claim(self, cell: Cell, device: torch.device, until: float | None) -> str | int:
        """Why ``cell`` is not run now (an outcome), or the descriptor of its lock, now held by this runner."""
        if self.result_path(cell).is_file():
            return "skipped (done)"
        missing = cell.missing_on(device)
        if missing is not None:
            return f"{NOT_RUN_HERE}: {missing}"
        expected = expected_seconds(self, cell) if until is not None else None
        if until is not None and expected is None:
            return "skipped (not timed yet: run it without --until)"
        if expected is not None and time.time() + expected > until:
            return "skipped (would end after --until)"
        lock = _try_lock(self._lock_path(cell))
        if lock is None:
            return "skipped (running)"
        if self.result_path(cell).is_file():  # finished by another runner since the check above
            os.close(lock)
            return "skipped (done)"
        return lock


def load_dataset(name: str, scale: str) -> ImageData | FolderStream:
    """A cell's dataset: CIFAR in memory (downloaded if missing), or ImageNet's folder streamed with the scale's
    crop (``STREAM_CROP``)."""
    if name == "imagenet":
        return open_stream(imagenet_dir(), STREAM_CROP[scale])
    return load_cifar(name, download=True)


STREAM_CROP = {"smoke": 64, "cpu": 224, "paper": 224}
"""The crop side of a streamed folder at each scale: ImageNet's 224, and 64 at ``smoke`` (the tests' generated
folders)."""


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


def mean_spread(values: list[float]) -> dict:
    """``{"values", "mean", "std"}`` of a list: the sample standard deviation, 0 for a single value."""
    tensor = torch.tensor(values, dtype=torch.float64)
    return {"values": values, "mean": tensor.mean().item(), "std": tensor.std().item() if len(values) > 1 else 0.0}


@functools.cache
def code_commit() -> str:
    """The commit of the code this process runs, read once (when the first grid is made), so that it stays the same
    if HEAD moves while a long grid trains."""
    return git_commit()


def _starting_model(cell: Cell, num_classes: int) -> tuple[torch.nn.Module, str, tuple[int, int, int]]:
    """(the cell's unpruned network in eval mode, its name, its input size)."""
    if cell.weights == UNTRAINED:
        torch.manual_seed(0)
        return get_model(cell.model, num_classes).eval(), cell.model, input_size(cell.model)
    model, name, size, _ = load_model(cell.weights_path(), cell.model, num_classes)
    check_outputs(model, name, num_classes, cell.dataset)
    return model, name, size


def _unpruned_top1(cell: Cell, model: torch.nn.Module, name: str, data, n: int, memo: Path | None) -> float:
    """Top-1 of the cell's unpruned network, evaluated once per weights file, test set and device type.

    Every cell of a network starts from the same weights, and a whole VGG-16 takes minutes to evaluate on two
    cores: the first cell writes ``memo/<weights digest>-<dataset>-<images>-<device>.json``, the others read it.
    """
    source = cell.weights_path()
    digest = f"untrained-{cell.model}" if source is None else hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    device = next(model.parameters()).device.type
    path = None if memo is None else memo / f"{digest}-{cell.dataset}-{n}-{device}.json"
    if path is not None and path.is_file():
        return json.loads(path.read_text())["top1"]
    accuracy = top1(model, data, name, limit=n)
    if path is not None:
        save_json(path, {"top1": accuracy, "weights": cell.weights, "dataset": cell.dataset, "test_images": n,
                         "device": device, "provenance": provenance()})
    return accuracy


def _prune_stages(cell: Cell, protocol: Protocol, data, work: Path, device: torch.device, progress: bool,
                  memo: Path | None, validation) -> dict:
    """The unpruned network's top-1 and every calibration seed's pruning, recalibration and top-1, resumed from the
    stages saved in ``work``; the first seed's network saved as ``work/pruned.pt``. Run by one process."""
    stages = saved_stages(work)
    n = min(protocol.test_images or test_size(data), test_size(data))
    model, name, size = _starting_model(cell, data.num_classes)
    model.to(device)
    if "unpruned" not in stages:
        tic = time.perf_counter()
        counts = count(model, size)
        stages["unpruned"] = {
            "top1": _unpruned_top1(cell, model, name, data, n, memo), "macs": counts.macs,
            "params": counts.params, "params_without_norm": counts.params_without_norm,
        }
        stages["seconds"]["unpruned_eval"] = time.perf_counter() - tic
        save_json(work / "stages.json", stages)

    seeds = cell.seeds[: protocol.calibration_seeds]
    pruned_file = work / "pruned.pt"
    for seed in seeds:
        if any(record["seed"] == seed for record in stages["seeds"]) and (seed != seeds[0] or pruned_file.is_file()):
            continue
        tic = time.perf_counter()
        images, labels = draw_calibration(data, cell.batch_size, seed)
        result = prune(model, images, seed=seed, model_name=name, progress=progress, **cell.prune_arguments())
        pruned = result.model
        top1_pruned = top1(pruned, data, name, limit=n)
        recalibrate_batchnorm(pruned, recalibration_pool(data), name,
                              protocol.recalibration_batches, protocol.recalibration_batch_size, seed)
        record = {
            "seed": seed,
            "calibration_class_counts": torch.bincount(labels, minlength=data.num_classes).tolist(),
            "top1_pruned": top1_pruned,
            "top1_recalibrated": top1(pruned, data, name, limit=n),
            **({"top1_recalibrated_validation": evaluate(pruned, *validation, name, progress=False)}
               if validation else {}),
            "selection_seconds": result.report["seconds"]["selection"],
            "seconds": time.perf_counter() - tic,
            "totals": result.report["totals"],
            "layers": [{key: layer[key] for key in LAYER_KEYS} for layer in result.report["layers"]],
            **({"reconstruction": result.report["reconstruction"]} if cell.reconstruct else {}),
        }
        if seed == seeds[0]:
            save_model(pruned, pruned_file, name, report=result.report)
        stages["seeds"] = [r for r in stages["seeds"] if r["seed"] != seed] + [record]
        save_json(work / "stages.json", stages)
    return stages


def run_cell(
    cell: Cell, protocol: Protocol, data: ImageData | FolderStream, work: Path, device: torch.device,
    progress: bool = True, memo: Path | None = None,
) -> dict:
    """Run one cell through the protocol, resuming from the stages saved in ``work``.

    Under ``torchrun`` rank 0 alone prunes (and evaluates the unpruned and pruned networks); every rank then
    fine-tunes its copy of the pruned network, each batch split over the ranks, and the final top-1 sums the ranks'
    counts. Every rank returns the same result; rank 0 writes it.

    Args:
        cell: the configuration.
        protocol: the scale's protocol.
        data: the cell's dataset, in memory or streamed (``load_dataset``).
        work: the cell's working folder (created; resumed from when it holds earlier stages).
        device: where the networks run.
        progress: tqdm bars.
        memo: folder of the unpruned networks' top-1, shared by the cells (None: evaluate every time).

    Returns:
        The JSON-ready result: the cell, the protocol, counts, every stage's top-1, seconds and provenance.
    """
    started, load_at_start = time.perf_counter(), [round(load, 2) for load in os.getloadavg()]
    if distributed.is_main():
        work.mkdir(parents=True, exist_ok=True)
    validation = None
    if cell.validation:
        data, *validation = hold_out_validation(data, cell.validation)
    n = min(protocol.test_images or test_size(data), test_size(data))
    stages = distributed.run_on_main(
        lambda: _prune_stages(cell, protocol, data, work, device, progress, memo, validation))
    seeds = cell.seeds[: protocol.calibration_seeds]

    tic = time.perf_counter()
    finetuned, name, size, _ = load_model(work / "pruned.pt")
    finetuned.to(device)
    epochs = protocol.finetune_epochs(cell)
    history, top1_finetuned = None, None
    if epochs:
        seed = seeds[0] if cell.finetune_seed is None else cell.finetune_seed
        config = protocol.finetune_config(cell, name, seed)
        history = fit(finetuned, data, config, checkpoint=work / "finetune.pt", test_subset=protocol.monitor_images,
                      progress=progress)
        top1_finetuned = top1(finetuned, data, name, limit=n)
        if cell.validation:
            stages["finetuned_validation"] = evaluate(finetuned, *validation, name, progress=False)
        if distributed.is_main():
            save_model(finetuned.cpu(), work / "finetuned.pt", name)
    finetune_seconds = time.perf_counter() - tic

    records = sorted(stages["seeds"], key=lambda r: seeds.index(r["seed"]))
    totals = records[0]["totals"]
    unpruned = stages["unpruned"]
    after = count(finetuned, size)
    return {
        "cell": {**asdict(cell), "id": cell.id, "selection_settings": cell.selection_settings().record()},
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
                    "total": seconds_before_finetuning(stages) + finetune_seconds},
        "provenance": provenance(scale=protocol.scale, code_commit=code_commit(), device=str(device), seeds=list(seeds),
                                 this_run_seconds=time.perf_counter() - started,
                                 load_average_at_start=load_at_start,
                                 **({"processes": distributed.world_size()} if distributed.active() else {})),
    }
