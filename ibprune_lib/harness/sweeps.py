"""The ablations' sweeps: the cells that vary one setting from Table 1's VGG-16 cell, as rows, a table, a
summary and a plot."""

from __future__ import annotations

import pandas as pd

from ..kernels import KERNELS
from .grid import Cell
from .paper import METHOD_LABELS
from .report import cell_rows, mean_spread_text

ABLATION_BASE = {"batch_size": 128, "kernel": "laplacian", "skip_first": 4, "use_gram": True, "direction": "rows",
                 "budget": ("params", 0.15)}
"""The setting every ablation sweep starts from: Table 1's VGG-16 cell (``experiments/ablations.py``)."""


def _budget(cell: Cell) -> tuple[str, float]:
    return ("params", cell.target_params) if cell.target_params is not None else ("flops", cell.target_flops)


def _setting(cell: Cell, name: str):
    return _budget(cell) if name == "budget" else getattr(cell, name)


def sweep_rows(cells: list[Cell], results: dict[str, dict | None], setting: str,
               fallback: tuple[str, ...] = ()) -> pd.DataFrame:
    """The cells of a sweep over one setting: every cell equal to ``ABLATION_BASE`` but for ``setting``.

    Args:
        cells: the ablation table's cells.
        results: cell id → its result JSON, or None when not run.
        setting: a key of ``ABLATION_BASE`` (``budget`` is the pair (``params`` or ``flops``, keep ratio)).
        fallback: settings a cell may also change where no cell of its value and method keeps them at the base
            (``("skip_first",)`` for the budgets that four whole layers cannot reach); its ``differs`` says how.

    Returns:
        :func:`cell_rows` of those cells with a ``value`` column (the setting's value) and a ``differs`` column
        (``"skip_first=2"``, or ``""`` for a cell at the base but for ``setting``), sorted by value and method.

    Raises:
        ValueError: an unknown setting.
    """
    if setting not in ABLATION_BASE:
        raise ValueError(f"unknown setting {setting!r}: choose one of {', '.join(ABLATION_BASE)}")
    others = [name for name in ABLATION_BASE if name != setting]

    changed = {cell.id: {name: _setting(cell, name) for name in others if _setting(cell, name) != ABLATION_BASE[name]}
               for cell in cells}
    nearest_base = {}
    for cell in cells:
        key = (_setting(cell, setting), cell.method)
        if set(changed[cell.id]) <= set(fallback) and (
                key not in nearest_base or len(changed[cell.id]) < len(changed[nearest_base[key].id])):
            nearest_base[key] = cell
    chosen_ids = {cell.id for cell in nearest_base.values()}
    chosen = [cell for cell in cells if cell.id in chosen_ids]
    rows = cell_rows(chosen, results)
    rows["value"] = [_setting(cell, setting) for cell in chosen]
    rows["differs"] = [", ".join(f"{name}={value}" for name, value in changed[cell.id].items()) for cell in chosen]
    order = {"method": {method: i for i, method in enumerate(METHOD_LABELS)},
             "value": {kernel: i for i, kernel in enumerate(KERNELS)} if setting == "kernel" else None}
    return rows.sort_values(["value", "method"], key=lambda c: c.map(order[c.name]) if order[c.name] else c,
                            kind="stable").reset_index(drop=True)


def sweep_table(rows: pd.DataFrame, value_label: str, paper: dict[str, dict] | None = None,
                value_text=str) -> pd.DataFrame:
    """A sweep laid out for the book: one row per (value, method), every stage's top-1, the paper's beside.

    Args:
        rows: :func:`sweep_rows`' output.
        value_label: the header of the setting's column.
        paper: method → value → the paper's top-1 (or (top-1, bracketed %) as Tables 7 and 9 print it).
        value_text: how a value is written (a cell that also changes a fallback setting adds it in brackets).

    Returns:
        Display strings: ``value_label, method, top-1 (%)`` (after the short fine-tuning), ``Δ (points)``,
        ``recalibrated (%)``, ``pruned (%)`` (mean ± spread over seeds), ``FLOPs ↓ (%)``, ``params ↓ (%)``,
        ``selection (s)``, ``paper (%)``; a cell not run shows its status.
    """
    out = []
    for _, row in rows.iterrows():
        reported = (paper or {}).get(row["method"], {}).get(row["value"])
        if isinstance(reported, tuple):
            reported = f"{reported[0]:.2f} ({reported[1]:.0f}%)"
        paper_text = "—" if reported is None else reported if isinstance(reported, str) else f"{reported:.2f}"
        head = [value_text(row["value"]) + (f" ({row['differs']})" if row["differs"] else ""), row["label"]]
        if not row["done"]:
            out.append([*head, row["status"], *[""] * 6, paper_text])
            continue
        out.append([
            *head, f"{row['finetuned']:.2f}", f"{row['delta']:+.2f}",
            mean_spread_text(row["recalibrated"], row["recalibrated_std"], row["seeds"]),
            mean_spread_text(row["pruned"], row["pruned_std"], row["seeds"]),
            f"{row['flops_reduction']:.1f}", f"{row['params_reduction']:.1f}", f"{row['selection_seconds']:.1f}",
            paper_text,
        ])
    return pd.DataFrame(out, columns=[value_label, "method", "top-1 (%)", "Δ (points)", "recalibrated (%)",
                                      "pruned (%)", "FLOPs ↓ (%)", "params ↓ (%)", "selection (s)", "paper (%)"])


STAGE_TEXT = {"pruned": "right after pruning", "recalibrated": "after BatchNorm recalibration",
              "finetuned": "after fine-tuning"}
ONE_RUN_PER_CELL = ("Each top-1 after fine-tuning is one fine-tuning run of one pruned network: how much of the "
                    "differences between cells is run-to-run noise would take repeated runs, not run here.")


def sweep_summary(rows: pd.DataFrame, value_text=str, paper: dict[str, dict] | None = None,
                  stage: str = "finetuned", prefix: str = "") -> list[str]:
    """The book's summary of a sweep: per method, its lowest and highest top-1 over the values that ran, and the
    paper's lowest and highest over the same values, so a reader sees whether the two agree on which is best.

    Args:
        rows: :func:`sweep_rows`' output.
        value_text: how a value is written in a sentence (e.g. ``"batch {}".format``).
        paper: method → value → the paper's top-1 (or (top-1, bracketed %)), as for :func:`sweep_table`.
        stage: ``"pruned"``, ``"recalibrated"`` (means over the calibration seeds) or ``"finetuned"``.
        prefix: put before each method's label (e.g. ``"layer skipping, "``).

    Returns:
        One Markdown bullet per method that ran at two values or more, in the rows' order (a method run at one
        value only, the base cell beside the sweep, is left to the table).
    """
    lines = []
    done = rows[rows["done"] & rows[stage].notna()]
    for method, group in done.groupby("method", sort=False):
        values, top1 = list(group["value"]), list(group[stage])
        if len(values) == 1:
            continue
        text = f"- {prefix}{group['label'].iloc[0]}: top-1 {STAGE_TEXT[stage]} " + _span(values, top1, value_text)
        reported = {value: _paper_top1(top) for value, top in (paper or {}).get(method, {}).items() if value in values}
        if len(reported) > 1:
            text += (f"; the paper, at the same {len(reported)} values: "
                     + _span(list(reported), list(reported.values()), value_text))
        lines.append(text + ".")
    return lines


def _paper_top1(reported: float | tuple[float, float]) -> float:
    """The paper's top-1 of a sweep value, printed alone or as Tables 7 and 9 print it, (top-1, bracketed %)."""
    return reported[0] if isinstance(reported, tuple) else reported


def _span(values: list, top1: list[float], value_text) -> str:
    """``"from 89.36% (batch 512) to 89.95% (batch 64)"``, or ``"89.36% at every value"`` when they are equal."""
    low, high = top1.index(min(top1)), top1.index(max(top1))
    if top1[low] == top1[high]:
        return f"{top1[low]:.2f}% at every value"
    return f"from {top1[low]:.2f}% ({value_text(values[low])}) to {top1[high]:.2f}% ({value_text(values[high])})"


def plot_sweep(ax, rows: pd.DataFrame, x_of, paper: dict[str, dict] | None = None, paper_x=None) -> None:
    """Top-1 after fine-tuning per method against the swept setting: ours as filled lines, the paper's hollow,
    a square around each cell that also changed a fallback setting, and, when every cell run pruned the same
    network, its unpruned top-1 as a dashed line.

    Args:
        ax: a matplotlib Axes.
        rows: :func:`sweep_rows`' output (the cells not run are left out).
        x_of: a value → its x position.
        paper: method → the paper's key → its top-1 (or (top-1, bracketed %)), as for :func:`sweep_table`.
        paper_x: the paper's key → its x position.
    """
    for _, group in rows[rows["done"]].groupby("method", sort=False):
        ax.plot([x_of(v) for v in group["value"]], group["finetuned"], "o-", label=group["label"].iloc[0])
    for differs, group in rows[rows["done"] & (rows["differs"] != "")].groupby("differs"):
        ax.scatter([x_of(v) for v in group["value"]], group["finetuned"], marker="s", s=110, facecolors="none",
                   edgecolors="0.3", label=f"with {differs}")
    for i, values in enumerate((paper or {}).values()):
        ax.scatter([paper_x(v) for v in values], [_paper_top1(v) for v in values.values()],
                   facecolors="none", edgecolors="k", s=30, label="the paper" if i == 0 else None)
    unpruned = rows.loc[rows["done"], "unpruned"].unique()
    if len(unpruned) == 1:
        ax.axhline(unpruned[0], color="0.5", linestyle="--", linewidth=1, label="unpruned (ours)")
    ax.set_ylabel("top-1 after fine-tuning (%)")
