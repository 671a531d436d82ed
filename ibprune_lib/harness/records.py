"""Cell results that say what ran: rewrite older results' ``protocol`` and ``finetune`` blocks from their own fields.

Results written before the protocol was recorded per cell carry the scale's recipe (8 epochs, fp32, data-order
seed 0) whatever the cell did: the ablations' 3 bf16 epochs, the study's and the solvers' cells that stop after
recalibration, ResNet-56's second runs with data-order seed 1. Some also leave the fine-tuning's epochs, seed or
precision out or null. :func:`as_run` rebuilds both blocks from what the result itself holds — the cell's
declaration, the recipe recorded then, the calibration seeds run, the epochs in the fine-tuning history, the
threads in the provenance — never by rerunning, and checks them against each other (an epoch count that
disagrees with the history raises). It is what ``run_cell`` writes for a new cell, so rewriting a current
result changes nothing.

    python -m ibprune_lib.harness.records results/cpu     # rewrites the results that need it, atomically
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

import pandas as pd

from ..provenance import save_json
from ..train import TrainConfig
from .grid import PROTOCOLS, Cell, Protocol
from .paper import MODEL_LABELS
from .report import method_label


def cell_of(result: dict) -> Cell:
    """The :class:`Cell` a result was run for (lists back to tuples; fields added later at their defaults).

    Raises:
        ValueError: the rebuilt cell's id is not the one the result records.
    """
    declared = {f.name for f in fields(Cell)}
    values = {k: tuple(map(tuple, v)) if k == "options" else tuple(v) if isinstance(v, list) else v
              for k, v in result["cell"].items() if k in declared}  # fmt: skip
    cell = Cell(**values)
    if cell.id != result["cell"]["id"]:
        raise ValueError(f"result {result['cell']['id']}: its cell rebuilds as {cell.id}")
    return cell


def as_run(result: dict) -> dict:
    """``result`` with its ``protocol`` and ``finetune`` blocks saying what ran (a new dict; ``result`` is left
    as it is).

    Raises:
        ValueError: the fine-tuning history's length disagrees with the epochs the cell ran.
    """
    cell = cell_of(result)
    recorded = result["protocol"]
    recipe = {k: v for k, v in recorded["finetune"].items() if k in {f.name for f in fields(TrainConfig)}}
    base = {k: v for k, v in recorded.items() if k in {f.name for f in fields(Protocol)} and k != "finetune"}
    # a result that stopped after recalibration records {"epochs": 0} alone: any recipe stands in for it
    finetune = TrainConfig(model="", **recipe) if recipe.get("epochs") else PROTOCOLS[result["scale"]].finetune
    protocol = Protocol(**base, finetune=finetune)
    seeds = [record["seed"] for record in result["seeds"]]
    record = protocol.record(cell, seeds, result["provenance"]["hardware"]["torch_threads"])
    epochs = record["finetune"]["epochs"]
    history = result["finetune"].get("history", [])
    if result["stages"]["finetuned"] is not None and len(history) != epochs:
        raise ValueError(f"result {cell.id}: {len(history)} epochs in its history, {epochs} declared")
    finetune = {"epochs": epochs}
    if epochs:
        finetune |= {"seed": record["finetune"]["seed"], "precision": record["finetune"]["precision"]}
    finetune |= {k: v for k, v in result["finetune"].items() if k in ("history", "wall_seconds")}
    return json.loads(json.dumps({**result, "protocol": record, "finetune": finetune}))  # tuples as JSON lists


def cell_results(root: Path) -> list[Path]:
    """The cell results under ``root`` (JSON files holding a ``cell`` and a ``protocol``)."""
    paths = sorted(root.rglob("*.json"))
    return [path for path in paths if {"cell", "protocol"} <= set(json.loads(path.read_text()))]


def provenance_table(root: Path) -> pd.DataFrame:
    """One row per committed cell result under ``root`` (``results/``): where each number of the book came from.

    Returns:
        Columns table, scale, network, criterion, seeds, cell id, commit (10 hex digits, "+dirty" kept), CPU,
        threads, finished (UTC, to the minute) and wall hours, sorted by table and finishing time.
    """
    rows = []
    for path in cell_results(root):
        result = json.loads(path.read_text())
        cell, provenance = cell_of(result), result["provenance"]
        commit = provenance.get("code_commit", provenance["commit"])
        rows.append({
            "table": path.parent.name, "scale": result["scale"], "network": MODEL_LABELS.get(cell.model, cell.model),
            "criterion": method_label(cell), "seeds": " ".join(map(str, result["protocol"]["calibration_seeds"])),
            "cell id": cell.id, "commit": commit[:10] + ("+dirty" if commit.endswith("+dirty") else ""),
            "CPU": provenance["hardware"]["cpu"], "threads": provenance["hardware"]["torch_threads"],
            "finished (UTC)": provenance["time_utc"][:16].replace("T", " "),
            "wall (h)": result["seconds"]["total"] / 3600,
        })
    return pd.DataFrame(rows).sort_values(["table", "finished (UTC)"], ignore_index=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ibprune_lib.harness.records", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="a results folder, e.g. results/cpu")
    args = parser.parse_args(argv)
    changed = 0
    for path in cell_results(args.root):
        result = json.loads(path.read_text())
        rewritten = as_run(result)
        if rewritten != result:
            save_json(path, rewritten)
            changed += 1
    print(f"{changed} result(s) rewritten under {args.root}")


if __name__ == "__main__":
    main()
