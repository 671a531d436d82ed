"""How long a cell still needs, from the seconds that done cells saved: what ``status`` shows and what ``--until``
decides by."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING

import torch

from ...provenance import cpu_model
from .cell import Cell
from .protocol import Protocol

if TYPE_CHECKING:
    from .runner import Grid

NOT_RUN_HERE = "not run here"
"""The state of a cell that needs a device this runner does not have (``Cell.needs``)."""


def expected_seconds(grid: Grid, cell: Cell) -> float | None:
    """Seconds ``cell`` still needs, or None when nothing done has measured a cell of its kind.

    A cell with a fine-tuning checkpoint is timed by its own epochs: what its epochs left take at the speed
    this machine and runner count gave the ones done. Otherwise by done cells of its kind (:func:`timing_kind`:
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
    epochs = grid.protocol.finetune_epochs(cell)
    work = grid.work_dir(cell)
    finetuning = finetuning_progress(work)
    if finetuning is not None:
        epochs_done, seconds = finetuning
        return (epochs - epochs_done) * seconds / epochs_done
    network, solver, precision = kind = timing_kind(grid.protocol, cell)
    alike = [result for other in grid.cells
             if timing_kind(grid.protocol, other) == kind and grid.protocol.finetune_epochs(other) == epochs
             and (result := grid.read(other)) is not None]  # fmt: skip
    share = expected_macs_kept(cell, grid.results / grid.scale)
    measured = _this_machine_first(alike)
    if measured:
        measured, scale = _nearest_in_size(measured, share)
        finetuning = scale * fmean(result["seconds"]["finetune"] for result in measured)
    else:
        same_network = grid.results.glob(f"{grid.scale}/*/{network}-*.json")  # every table's done cells
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
    return max(before_finetuning - seconds_before_finetuning(saved_stages(work)), 0.0) + finetuning


def timing_kind(protocol: Protocol, cell: Cell) -> tuple[str, str | None, str]:
    """What a cell's seconds depend on most: (network, solver, fine-tuning precision). The solver is None for
    the exact one; SPG's selection takes 20 times as long on VGG-16 (``experiments/solvers.py``), bf16
    fine-tuning half as long on a CPU with AMX."""
    solver = cell.selection_settings().solver
    return cell.model, None if solver == "auto" else solver, protocol.finetune_precision(cell)


def _timing_kind(result: dict) -> tuple[str, str | None, str]:
    """:func:`timing_kind` of a done cell, from its result (one from before the settings were recorded
    pruned with its own options, one from before precisions were, was fine-tuned in its protocol's)."""
    cell = result["cell"]
    settings = cell.get("selection_settings", dict(cell.get("options", ())))
    precision = result["finetune"].get("precision") or result["protocol"]["finetune"].get("precision")
    return cell["model"], settings.get("solver"), precision


def finetuning_progress(work: Path) -> tuple[int, float] | None:
    """``(epochs done, their wall seconds)`` of a cell's fine-tuning checkpoint, or None when it has none.

    The checkpoint is memory-mapped, so its weights are not read (``status`` asks twice per half-run cell).
    """
    checkpoint = work / "finetune.pt"
    if not checkpoint.is_file():
        return None
    state = torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True)
    return state["epoch"], state["wall_seconds"]


def saved_stages(work: Path) -> dict:
    """The stages a cell's working folder has saved (``stages.json``): none yet when it has not started."""
    stages_file = work / "stages.json"
    return json.loads(stages_file.read_text()) if stages_file.is_file() else {"seeds": [], "seconds": {}}


def _hardware(result: dict) -> dict:
    return result.get("provenance", {}).get("hardware", {})


def expected_macs_kept(cell: Cell, done: Path) -> float:
    """The share of its network's MACs ``cell`` keeps: its FLOPs target; for a parameters target, the share that the
    done cells pruned alike kept (any table under ``done``: the same network, dataset, target, widths and whole
    leading layers), else the target itself (the two shares differ by a few points on these networks).

    Args:
        cell: the cell.
        done: the folder of a scale's results, ``<results>/<scale>``.
    """
    if cell.target_flops is not None:
        return fmean(cell.target_flops) if isinstance(cell.target_flops, (tuple, list)) else float(cell.target_flops)
    target = list(cell.target_params) if isinstance(cell.target_params, tuple) else cell.target_params
    pruned_alike = {"target_params": target, "dataset": cell.dataset, "widths": cell.widths,
                    "skip_first": cell.skip_first}
    alike = [_macs_kept(result) for path in done.glob(f"*/{cell.model}-*.json")
             if pruned_alike.items() <= (result := json.loads(path.read_text())).get("cell", {}).items()]
    return fmean(alike) if alike else fmean(target) if isinstance(target, list) else float(target)


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


def seconds_before_finetuning(stages: dict) -> float:
    """Wall seconds of the saved stages before fine-tuning: the unpruned evaluation and every seed's pruning."""
    return stages["seconds"].get("unpruned_eval", 0.0) + sum(record["seconds"] for record in stages["seeds"])


def compute_left(grid: Grid, states: dict[str, dict]) -> tuple[float, int]:
    """Seconds still needed for the cells to do here, each at what it still needs (the ``"expected"`` of its
    :meth:`Grid.state`; cells not run here are left out).

    Returns:
        (seconds, number of undone cells of a kind with no measurement yet).
    """
    expected = [states[cell.id]["expected"] for cell in grid.cells
                if states[cell.id]["state"] not in ("done", NOT_RUN_HERE)]  # fmt: skip
    return sum(e for e in expected if e is not None), sum(e is None for e in expected)
