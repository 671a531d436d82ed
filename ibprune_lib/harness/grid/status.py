"""What ``experiments status`` prints: a cell's summary and progress, what sets it apart, the table's tally."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from .cell import Cell
from .estimates import NOT_RUN_HERE, compute_left, finetuning_progress

if TYPE_CHECKING:
    from .runner import Grid


def summary(result: dict) -> str:
    stages = result["stages"]
    finetuned = "not fine-tuned" if stages["finetuned"] is None else f"{stages['finetuned']:.2f} fine-tuned"
    return (f"top-1 {stages['pruned']['mean']:.2f} pruned, {stages['recalibrated']['mean']:.2f} recalibrated, "
            f"{finetuned}; FLOPs -{result['counts']['flops_reduction']:.1f}%, "
            f"params -{result['counts']['params_reduction']:.1f}%; {result['seconds']['total'] / 60:.1f} min")


def progress_text(work: Path, expected: float | None) -> str:
    """What a cell not done yet has done, and what it is expected to still need."""
    left = "" if expected is None else f"; about {expected / 60:.0f} min to go"
    stages = work / "stages.json"
    if not stages.is_file():
        return "not started" + left
    done = json.loads(stages.read_text())
    text = f"{len(done.get('seeds', []))} seed(s) pruned"
    finetuning = finetuning_progress(work)
    if finetuning is not None:
        text += f", fine-tuning epoch {finetuning[0]} done"
    return text + left


def status_line(grid: Grid, states: dict[str, dict]) -> str:
    """``status``'s last line: the cells in each state, and the compute left.

    Args:
        grid: the table.
        states: ``Grid.state`` of every cell, by id.

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
