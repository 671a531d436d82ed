"""Grid results as the book's tables: one row per cell, and a network's rows laid out like the paper's.

Every number comes from a cell's JSON; a cell that has not run is a row that says "not run yet".
"""

from __future__ import annotations

import re

import pandas as pd

from .experiments import Cell, mean_spread
from .kernels import KERNELS
from .paper import METHOD_LABELS, MODEL_LABELS, TABLE1, TABLE1_BUDGET_ROW
from .selection import PRESETS

NOT_RUN = "not run yet"
NEEDS_GPU = "not run here: needs a GPU"


def method_label(cell: Cell) -> str:
    """``sTLP-IB``, ``L1-norm (ITPruner widths)``…"""
    label = METHOD_LABELS.get(cell.method, cell.method)
    return label if cell.widths == "uniform" else f"{label} ({'ITPruner' if cell.widths == 'itpruner' else cell.widths} widths)"


def _finetuned_runs(cells: list[Cell], results: dict[str, dict | None]) -> tuple[dict, dict]:
    """(finetune group → fine-tuned top-1 of its cells that ran, finetune group → how many cells it has)."""
    runs, declared = {}, {}
    for cell in cells:
        group = cell.finetune_group
        declared[group] = declared.get(group, 0) + 1
        result = results.get(cell.id)
        if result is not None and result["stages"]["finetuned"] is not None:
            runs.setdefault(group, []).append(result["stages"]["finetuned"])
    return runs, declared


def cell_rows(cells: list[Cell], results: dict[str, dict | None]) -> pd.DataFrame:
    """One row per cell: its settings, every stage's top-1 (mean and spread over seeds), counts and times.

    A cell that fine-tunes another's pruned network again (``Cell.finetune_seed``) is no row of its own: its
    fine-tuned top-1 joins that cell's, whose ``finetuned`` is then the mean over the runs and
    ``finetuned_std`` their spread.

    Args:
        cells: the table's cells.
        results: cell id → its result JSON, or None when not run.

    Returns:
        Columns ``id, model, method, label, done, status, unpruned, pruned, pruned_std, recalibrated,
        recalibrated_std, finetuned, finetuned_std, finetune_runs, finetune_cells, delta, flops_reduction,
        params_reduction, seeds, selection_seconds, hours, commit``; ``status`` is "done", NOT_RUN or NEEDS_GPU
        (a cell that needs a GPU); ``finetune_runs`` of ``finetune_cells`` fine-tuning runs have run; NaN where
        a cell has not run.
    """
    runs, declared = _finetuned_runs(cells, results)
    rows = []
    for cell in cells:
        if cell.finetune_seed is not None:
            continue  # a further fine-tuning run of another cell's network: folded into that cell's row
        finetuned = runs.get(cell.finetune_group, [])
        row = {"id": cell.id, "model": cell.model, "method": cell.method, "widths": cell.widths,
               "label": method_label(cell), "done": results.get(cell.id) is not None}
        result = results.get(cell.id)
        row["status"] = "done" if result is not None else NEEDS_GPU if cell.needs else NOT_RUN
        row |= {"finetune_runs": len(finetuned) if result is not None else 0,
                "finetune_cells": declared[cell.finetune_group]}
        if result is not None:
            stages, counts = result["stages"], result["counts"]
            spread = mean_spread(finetuned) if finetuned else None
            row |= {
                "unpruned": stages["unpruned"],
                "pruned": stages["pruned"]["mean"], "pruned_std": stages["pruned"]["std"],
                "recalibrated": stages["recalibrated"]["mean"], "recalibrated_std": stages["recalibrated"]["std"],
                "finetuned": None if spread is None else spread["mean"],
                "finetuned_std": None if spread is None else spread["std"],
                "delta": None if spread is None else spread["mean"] - stages["unpruned"],
                "flops_reduction": counts["flops_reduction"], "params_reduction": counts["params_reduction"],
                "seeds": len(result["seeds"]), "selection_seconds": result["selection_seconds"]["mean"],
                "hours": result["seconds"]["total"] / 3600, "commit": result["provenance"].get(
                    "code_commit", result["provenance"]["commit"])[:10],
                "hardware": result["provenance"]["hardware"]["cpu"], "time_utc": result["provenance"]["time_utc"],
            }
        rows.append(row)
    columns = ["unpruned", "pruned", "pruned_std", "recalibrated", "recalibrated_std", "finetuned", "finetuned_std",
               "delta", "flops_reduction", "params_reduction", "seeds", "selection_seconds", "hours", "commit"]
    frame = pd.DataFrame(rows)
    return frame.reindex(columns=[*frame.columns, *(c for c in columns if c not in frame.columns)])


def _mean_spread(mean: float, std: float, seeds: int) -> str:
    return f"{mean:.2f}" if seeds < 2 else f"{mean:.2f} ± {std:.2f}"


def network_table(rows: pd.DataFrame, model: str,
                  paper: list[tuple[str, float, float | None, float | None]] | None = None) -> pd.DataFrame:
    """A network's rows laid out like the paper's Table 1: ours (every stage) and the paper's, told apart.

    Args:
        rows: :func:`cell_rows`' output.
        model: the network.
        paper: the paper's rows to quote, ``(method, top-1, FLOPs ↓, params ↓)`` with an ``unpruned`` one (Δ is
            against it), e.g. ``paper.TABLE8``; default: Table 1's rows of ``model``.

    Returns:
        Display strings: ``source, method, top-1 (%)`` (after fine-tuning; mean ± spread where a cell was
        fine-tuned more than once), ``Δ (points), FLOPs ↓ (%), params ↓ (%), pruned (%)`` (top-1 right after
        pruning), ``recalibrated (%)`` (after BatchNorm recalibration), ``selection (s)``; the paper's rows
        show "—" where it reports nothing.
    """
    columns = ["source", "method", "top-1 (%)", "Δ (points)", "FLOPs ↓ (%)", "params ↓ (%)",
               "pruned (%)", "recalibrated (%)", "selection (s)"]
    out = []
    ours = rows[rows["model"] == model]
    for _, row in ours.sort_values("finetuned", ascending=False, na_position="last").iterrows():
        if not row["done"]:
            out.append(["here", row["label"], row["status"], *[""] * 6])
            continue
        out.append([
            "here", row["label"], _mean_spread(row["finetuned"], row["finetuned_std"], row["finetune_runs"]),
            f"{row['delta']:+.2f}", f"{row['flops_reduction']:.1f}",
            f"{row['params_reduction']:.1f}", _mean_spread(row["pruned"], row["pruned_std"], row["seeds"]),
            _mean_spread(row["recalibrated"], row["recalibrated_std"], row["seeds"]),
            f"{row['selection_seconds']:.1f}",
        ])
    if paper is None:
        paper = [row for name, *row in TABLE1 if name == model]
    unpruned = next(top1 for method, top1, *_ in paper if method == "unpruned")
    for method, top1, flops, params in paper:
        if method == "unpruned":
            continue
        out.append(["paper", METHOD_LABELS.get(method, method), f"{top1:.2f}", f"{top1 - unpruned:+.2f}",
                    "—" if flops is None else f"{flops}", "—" if params is None else f"{params}", "—", "—", "—"])
    return pd.DataFrame(out, columns=columns)


def network_caption(rows: pd.DataFrame, model: str, scale: str) -> str:
    """The caption of :func:`network_table`: the network, the scale, our unpruned top-1 and the budget row."""
    unpruned = rows.loc[rows["model"] == model, "unpruned"].dropna()
    ours = f"; our unpruned top-1 {unpruned.iloc[0]:.2f}%" if len(unpruned) else ""
    runs = rows.loc[rows["model"] == model, "finetune_runs"].max()
    repeated = f"; top-1 ± spread: the mean over up to {runs} fine-tuning runs" if runs > 1 else ""
    flops, params = TABLE1_BUDGET_ROW[model]
    return (f"{MODEL_LABELS[model]} on CIFAR-10 at the {scale} scale{ours}{repeated}; the paper's budget row "
            f"removes {flops}% of FLOPs, {params}% of parameters")


_NUMBER_TEXT = re.compile(r"^[+\-−]?\d[\d,.]*(e[+\-]?\d+)?( ± \d[\d.]*)?%?$")
_NO_NUMBER = {"", "—", NOT_RUN, NEEDS_GPU}


def _reads_as_numbers(column: pd.Series) -> bool:
    """True for a numeric column, or one of numbers formatted as text ("93.41", "+0.05", "24.5 ± 1.2", "—")."""
    if pd.api.types.is_numeric_dtype(column):
        return True
    values = [str(v) for v in column if not pd.isna(v)]
    return any(v not in _NO_NUMBER for v in values) and all(
        v in _NO_NUMBER or _NUMBER_TEXT.match(v) for v in values)


def style_table(frame: pd.DataFrame, caption: str | None = None):
    """A compact Styler without the index that scrolls inside the book's content column: text columns (and
    their headers) left-aligned, numbers (also numbers formatted as text) right-aligned."""
    text = [i for i, c in enumerate(frame.columns) if not _reads_as_numbers(frame[c])]
    styler = frame.style.hide(axis="index").set_properties(**{"text-align": "right", "white-space": "nowrap"})
    if text:  # text wraps, so that a long label does not push the numbers out of the column
        styler = styler.set_properties(subset=[frame.columns[i] for i in text],
                                       **{"text-align": "left", "white-space": "normal", "min-width": "8em"})
    styler = styler.set_table_styles([
        {"selector": "", "props": "font-size: 0.8em; display: block; overflow-x: auto; max-width: 100%;"},
        {"selector": "caption", "props": "text-align: left; caption-side: top;"},
        {"selector": "th", "props": "text-align: right; padding: 2px 6px;"},
        {"selector": "td", "props": "padding: 2px 6px;"},
        *({"selector": f"th.col{i}", "props": "text-align: left;"} for i in text),
    ])
    return styler.set_caption(caption) if caption else styler


def _top1(rows: pd.DataFrame, model: str, method: str, stage: str) -> tuple[float, float] | None:
    """(top-1 at ``stage``, its spread over calibration seeds, or over fine-tuning runs after fine-tuning: 0 at a
    stage measured once), or None if not run."""
    match = rows[(rows["model"] == model) & (rows["method"] == method) & (rows["widths"] == "uniform") & rows["done"]]
    if match.empty:
        return None
    spread = f"{stage}_std"
    return float(match[stage].iloc[0]), float(match[spread].iloc[0]) if spread in match else 0.0


def _at_least(a: tuple[float, float], b: tuple[float, float]) -> str:
    """'holds', 'does not hold', or 'within the spread' when the gap is no larger than the larger spread."""
    if a[0] != b[0] and abs(a[0] - b[0]) <= max(a[1], b[1]):
        return "within the spread over seeds"
    return "holds" if a[0] >= b[0] else "does not hold"


def claims(rows: pd.DataFrame, models: list[str], stage: str = "finetuned") -> pd.DataFrame:
    """The paper's claims (Table 1's, and Table 8's on CIFAR-100) checked on our cells at one stage.

    Claims: sTLP-IB ≥ sGLP-IB; each IB method above the unpruned baseline (Δ ≥ 0); sTLP-IB above every baseline
    criterion the table declares for the network (of APIB, plain lasso, L1-norm, FPGM, HRank, random; uniform
    widths). At a stage measured for every calibration seed (right after pruning, after recalibration) a
    comparison whose gap is no larger than the larger of the two spreads over seeds is neither: it is "within the
    spread over seeds". After fine-tuning the spread is that over a cell's fine-tuning runs where it has several
    (ResNet-56), and none where it was fine-tuned once: such a comparison is of single runs.

    Returns:
        ``network, claim, verdict`` with verdict ``holds (…)``, ``does not hold (…)``, ``within the spread over
        seeds (…)`` or ``not run yet``.
    """
    out = []
    baselines = ("apib", "lasso", "l1", "fpgm", "hrank", "random")
    for model in models:
        stlp, sglp = _top1(rows, model, "stlp", stage), _top1(rows, model, "sglp", stage)
        if stlp is None or sglp is None:
            verdict = NOT_RUN
        else:
            verdict = f"{_at_least(stlp, sglp)} ({stlp[0]:.2f} vs {sglp[0]:.2f})"
        out.append((model, "sTLP-IB ≥ sGLP-IB", verdict))
        if stage == "finetuned":
            for method in ("sglp", "stlp"):
                top1 = _top1(rows, model, method, stage)
                verdict = NOT_RUN
                if top1 is not None:
                    delta = top1[0] - _top1(rows, model, method, "unpruned")[0]
                    verdict = f"{'holds' if delta >= 0 else 'does not hold'} (Δ {delta:+.2f})"
                out.append((model, f"{METHOD_LABELS[method]} keeps the unpruned top-1 (Δ ≥ 0)", verdict))
        uniform = rows[(rows["model"] == model) & (rows["widths"] == "uniform")]
        declared = [m for m in baselines if (uniform["method"] == m).any()]
        ran = {m: top1 for m in declared if (top1 := _top1(rows, model, m, stage)) is not None}
        if stlp is None or not ran:
            verdict = NOT_RUN
        else:
            best = max(ran, key=lambda m: ran[m][0])
            verdict = (f"{_at_least(stlp, ran[best])} (sTLP-IB {stlp[0]:.2f}, best other "
                       f"{METHOD_LABELS[best]} {ran[best][0]:.2f}; {len(ran)} of {len(declared)} run)")
        out.append((model, "sTLP-IB above every other criterion", verdict))
    return pd.DataFrame(out, columns=["network", "claim", "verdict"])


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
            _mean_spread(row["recalibrated"], row["recalibrated_std"], row["seeds"]),
            _mean_spread(row["pruned"], row["pruned_std"], row["seeds"]),
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


_OPTION_TEXT = {
    "threshold": "graph τ = {}", "knn": "k-NN graph, k = {}", "gamma_graph": "γ/λ = {}", "linkage": "{} linkage",
    "score": "ranked by {} alone", "normalise": "unit-norm columns: {}", "solver": "solver {}",
}
_ON_OFF = {False: "off", True: "on"}


def describe_settings(settings: dict) -> str:
    """Selection settings in words, e.g. {"kernel": "gaussian", "normalise": False} → "gaussian kernel, unit-norm
    columns: off"; {} → "as the paper states them"."""
    words = [f"{value} kernel" if name == "kernel" else _OPTION_TEXT[name].format(_ON_OFF.get(value, value))
             for name, value in settings.items()]
    return ", ".join(words) or "as the paper states them"


def setting_label(cell: Cell) -> str:
    """How a settings-study cell differs from the paper's settings, in words ("the paper's" when it does not)."""
    changes = [_OPTION_TEXT[name].format(_ON_OFF.get(value, value)) for name, value in cell.options]
    if cell.preset != "paper":
        changes.insert(0, f"preset {cell.preset} ({describe_settings(PRESETS[cell.preset].get(cell.method, {}))})")
    elif cell.kernel != "laplacian":
        changes.append(f"{cell.kernel} kernel")
    if cell.direction != "rows":
        changes.append(f"candidates as {cell.direction}")
    return ", ".join(changes) or "the paper's"


def kept_overlap(first: dict, second: dict) -> float:
    """Mean over the pruned layers of |A ∩ B| / |A ∪ B|, A and B the channels two cell results keep with
    their first calibration seed (1: the same channels; NaN when no layer is pruned in both)."""

    def kept(result: dict) -> dict[str, set[int]]:
        return {layer["name"]: set(layer["kept_indices"]) for layer in result["seeds"][0]["layers"]
                if layer["kept"] < layer["channels"]}  # fmt: skip

    a, b = kept(first), kept(second)
    shared = [name for name in a if name in b]
    return sum(len(a[n] & b[n]) / len(a[n] | b[n]) for n in shared) / len(shared) if shared else float("nan")


def setting_effects(rows: pd.DataFrame) -> pd.DataFrame:
    """Each changed setting of the settings study against the paper's, per network and method.

    Args:
        rows: :func:`cell_rows`' output with two more columns, ``setting`` (:func:`setting_label`) and
            ``preset``; cells of a preset other than ``paper`` are left out.

    Returns:
        One row per cell with a changed setting, columns ``setting, model, method, delta, spread, effect``:
        ``delta`` the change in mean top-1 after recalibration (points), ``spread`` the larger standard deviation
        over calibration seeds of the two cells, ``effect`` "better" or "worse" when ``|delta| > spread``, else
        "within spread" — or NOT_RUN when either cell has not run.
    """
    paper_settings = rows[rows["preset"] == "paper"]
    base = paper_settings[paper_settings["setting"] == "the paper's"].set_index(["model", "method"])
    out = []
    for _, row in paper_settings[paper_settings["setting"] != "the paper's"].iterrows():
        key = (row["model"], row["method"])
        reference = base.loc[key] if key in base.index else None
        if not row["done"] or reference is None or not reference["done"]:
            out.append([row["setting"], row["model"], row["method"], float("nan"), float("nan"), NOT_RUN])
            continue
        delta = row["recalibrated"] - reference["recalibrated"]
        spread = max(row["recalibrated_std"], reference["recalibrated_std"])
        effect = "within spread" if abs(delta) <= spread else "better" if delta > 0 else "worse"
        out.append([row["setting"], row["model"], row["method"], delta, spread, effect])
    return pd.DataFrame(out, columns=["setting", "model", "method", "delta", "spread", "effect"])


def qualifying_settings(effects: pd.DataFrame) -> dict[str, list[str]]:
    """The settings that may join a method's preset: "better" for that method on every network, two or more.

    Args:
        effects: :func:`setting_effects`' output.

    Returns:
        method → its qualifying settings, the largest mean gain first; a setting with a cell not run yet does
        not qualify.
    """
    qualifying = {}
    for (method, setting), group in effects.groupby(["method", "setting"], sort=False):
        if group["model"].nunique() > 1 and (group["effect"] == "better").all():
            qualifying.setdefault(method, []).append((group["delta"].mean(), setting))
    return {method: [setting for _, setting in sorted(found, reverse=True)] for method, found in qualifying.items()}
