"""Grid results as the book's tables: one row per cell, and a network's rows laid out like the paper's.

Every number comes from a cell's JSON; a cell that has not run is a row that says "not run yet".
"""

from __future__ import annotations

import re
from dataclasses import replace

import pandas as pd

from .grid import Cell, mean_spread
from .paper import METHOD_LABELS, MODEL_LABELS, TABLE1, TABLE1_BUDGET_ROW
from .verdicts import FAILS, HOLDS, INCONCLUSIVE, Comparison, compare, compare_to

NOT_RUN = "not run yet"
NEEDS_GPU = "not run here: needs a GPU"


def method_label(cell: Cell) -> str:
    """``sTLP-IB``, ``L1-norm (ITPruner widths)``…"""
    label = METHOD_LABELS.get(cell.method, cell.method)
    return label if cell.widths == "uniform" else f"{label} ({'ITPruner' if cell.widths == 'itpruner' else cell.widths} widths)"


def _finetuned(result: dict | None) -> float | None:
    return None if result is None else result["stages"]["finetuned"]


def _per_seed(results: list[dict], key: str) -> list[float]:
    """``key`` (``top1_pruned`` or ``top1_recalibrated``) of every calibration seed the results ran, once a seed
    (run *r* prunes with seed *r*, which its configuration's run 0 also ran: the first record of a seed counts)."""
    seen = {}
    for result in results:
        for record in result["seeds"]:
            if key in record:  # a cell without a validation split has no validation top-1
                seen.setdefault(record["seed"], record[key])
    return list(seen.values())


def cell_rows(cells: list[Cell], results: dict[str, dict | None]) -> pd.DataFrame:
    """One row per configuration: its settings, every stage's top-1 over its runs and seeds, counts and times.

    The runs of a configuration (``Cell.run_group``: cells differing only in calibration seeds; run *r*
    prunes with seed *r* and fine-tunes with data-order seed *r*) make one row, that of its first declared run:
    ``finetuned`` is the mean over the runs fine-tuned so far, ``finetuned_std`` their sample standard deviation,
    ``finetuned_values`` the runs themselves. ``pruned`` and ``recalibrated`` are over every calibration seed
    the runs pruned with. A cell fine-tuned with a data-order seed other than its calibration seed
    (``Cell.run_index`` None: Table 1's older second ResNet-56 runs) is no run: its top-1 is listed in
    ``extra_runs`` and counts in no mean. Cells with a validation split (``Cell.validation``) also have
    ``validation`` (top-1 after recalibration on the held-out training images, over calibration seeds),
    ``validation_std``, ``validation_values`` and ``finetuned_validation`` (mean over runs); NaN elsewhere.

    Args:
        cells: the table's cells.
        results: cell id → its result JSON, or None when not run.

    Returns:
        Columns ``id, model, method, widths, label, done, status, finetune_runs, finetune_cells,
        finetuned_values, extra_runs, unpruned, pruned, pruned_std, pruned_values, recalibrated,
        recalibrated_std, recalibrated_values, finetuned, finetuned_std, delta, flops_reduction,
        params_reduction, seeds, selection_seconds, hours, commit``; ``status`` is "done", NOT_RUN or NEEDS_GPU
        (a cell that needs a GPU); ``finetune_runs`` of ``finetune_cells`` declared runs are fine-tuned; NaN
        where the first run has not run. ``hours`` are the first run's.
    """
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.run_group, []).append(cell)
    rows = []
    for group in groups.values():
        runs = [cell for cell in group if cell.run_index is not None] or group
        head = runs[0]
        done = [result for cell in runs if (result := results.get(cell.id)) is not None]
        finetuned = [top1 for result in done if (top1 := _finetuned(result)) is not None]
        extra = [top1 for cell in group if cell.run_index is None and (top1 := _finetuned(results.get(cell.id)))]
        row = {"id": head.id, "model": head.model, "method": head.method, "widths": head.widths,
               "label": method_label(head), "done": results.get(head.id) is not None}
        row["status"] = "done" if row["done"] else NEEDS_GPU if head.needs else NOT_RUN
        row |= {"finetune_runs": len(finetuned), "finetune_cells": len(runs), "finetuned_values": finetuned,
                "extra_runs": extra}
        result = results.get(head.id)
        if result is not None:
            stages, counts = result["stages"], result["counts"]
            spread = mean_spread(finetuned) if finetuned else None
            pruned, recalibrated = (mean_spread(_per_seed(done, key)) for key in ("top1_pruned", "top1_recalibrated"))
            validation = _per_seed(done, "top1_recalibrated_validation")
            if validation:
                spread_validation = mean_spread(validation)
                finetuned_validation = [v for r in done if (v := r["stages"].get("finetuned_validation")) is not None]
                row |= {"validation": spread_validation["mean"], "validation_std": spread_validation["std"],
                        "validation_values": validation,
                        "finetuned_validation": mean_spread(finetuned_validation)["mean"] if finetuned_validation
                        else None}
            row |= {
                "unpruned": stages["unpruned"],
                "pruned": pruned["mean"], "pruned_std": pruned["std"], "pruned_values": pruned["values"],
                "recalibrated": recalibrated["mean"], "recalibrated_std": recalibrated["std"],
                "recalibrated_values": recalibrated["values"],
                "finetuned": None if spread is None else spread["mean"],
                "finetuned_std": None if spread is None else spread["std"],
                "delta": None if spread is None else spread["mean"] - stages["unpruned"],
                "flops_reduction": counts["flops_reduction"], "params_reduction": counts["params_reduction"],
                "seeds": len(pruned["values"]), "selection_seconds": result["selection_seconds"]["mean"],
                "hours": result["seconds"]["total"] / 3600, "commit": result["provenance"].get(
                    "code_commit", result["provenance"]["commit"])[:10],
                "hardware": result["provenance"]["hardware"]["cpu"], "time_utc": result["provenance"]["time_utc"],
            }
        rows.append(row)
    columns = ["unpruned", "pruned", "pruned_std", "pruned_values", "recalibrated", "recalibrated_std",
               "recalibrated_values", "finetuned", "finetuned_std", "delta", "flops_reduction", "params_reduction",
               "seeds", "selection_seconds", "hours", "commit", "validation", "validation_std", "validation_values",
               "finetuned_validation"]
    frame = pd.DataFrame(rows)
    return frame.reindex(columns=[*frame.columns, *(c for c in columns if c not in frame.columns)])


def runs_frame(rows: pd.DataFrame, model: str, stage: str = "finetuned") -> pd.DataFrame:
    """One row per run of ``model``'s finished configurations at ``stage`` (fine-tuning runs, or calibration
    seeds before fine-tuning), best mean first: ``criterion, top-1 (%)``, for ``verdicts.plot_runs``."""
    ours = rows[(rows["model"] == model) & rows["done"]].sort_values(stage, ascending=False)
    runs = [(row["label"], value) for _, row in ours.iterrows() for value in row[f"{stage}_values"]]
    return pd.DataFrame(runs, columns=["criterion", "top-1 (%)"])


def mean_spread_text(mean: float, std: float, n: int) -> str:
    """``"91.20 ± 0.14 (3)"``: mean ± sample standard deviation (how many); a single value alone, ``"91.20 (1)"``."""
    return f"{mean:.2f} ({int(n)})" if n < 2 else f"{mean:.2f} ± {std:.2f} ({int(n)})"


def network_table(rows: pd.DataFrame, model: str,
                  paper: list[tuple[str, float, float | None, float | None]] | None = None) -> pd.DataFrame:
    """A network's rows laid out like the paper's Table 1: ours (every stage) and the paper's, told apart.

    Args:
        rows: :func:`cell_rows`' output.
        model: the network.
        paper: the paper's rows to quote, ``(method, top-1, FLOPs ↓, params ↓)`` with an ``unpruned`` one (Δ is
            against it), e.g. ``paper.TABLE8``; default: Table 1's rows of ``model``.

    Returns:
        Display strings: ``source, method, top-1 (%)`` (after fine-tuning: mean ± standard deviation (runs)),
        ``Δ (points), FLOPs ↓ (%), params ↓ (%), pruned (%)`` (top-1 right after
        pruning, over calibration seeds), ``recalibrated (%)`` (after BatchNorm recalibration, likewise),
        ``selection (s)``; the paper's rows
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
            "here", row["label"], mean_spread_text(row["finetuned"], row["finetuned_std"], row["finetune_runs"]),
            f"{row['delta']:+.2f}", f"{row['flops_reduction']:.1f}",
            f"{row['params_reduction']:.1f}", mean_spread_text(row["pruned"], row["pruned_std"], row["seeds"]),
            mean_spread_text(row["recalibrated"], row["recalibrated_std"], row["seeds"]),
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
    flops, params = TABLE1_BUDGET_ROW[model]
    return (f"{MODEL_LABELS[model]} on CIFAR-10 at the {scale} scale{ours}; our top-1 is the mean ± standard "
            "deviation (number of runs) over fine-tuning runs, the stages before it over calibration seeds; the "
            "paper's budget row "
            f"removes {flops}% of FLOPs, {params}% of parameters")


_NUMBER_TEXT = re.compile(r"^[+\-−]?\d[\d,.]*(e[+\-]?\d+)?( ± \d[\d.]*)?( \(\d+\))?%?$")
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


def _values(rows: pd.DataFrame, model: str, method: str, stage: str) -> list[float] | None:
    """The top-1 values of ``method``'s uniform-width row at ``stage``: one per fine-tuning run after fine-tuning,
    one per calibration seed right after pruning or after recalibration, the one unpruned value; None if not
    run (or not fine-tuned yet)."""
    match = rows[(rows["model"] == model) & (rows["method"] == method) & (rows["widths"] == "uniform") & rows["done"]]
    if match.empty:
        return None
    row = match.iloc[0]
    values = [row["unpruned"]] if stage == "unpruned" else list(row[f"{stage}_values"])
    return values or None


def _claim(network: str, claim: str, comparison: Comparison | None, detail: str = "") -> tuple:
    if comparison is None:
        return network, claim, NOT_RUN, "", ""
    return (network, claim, comparison.verdict + (f" ({detail})" if detail else ""), comparison.interval_text(),
            comparison.runs_text())


def claims(rows: pd.DataFrame, models: list[str], stage: str = "finetuned") -> pd.DataFrame:
    """The paper's claims (Table 1's, and Table 8's on CIFAR-100) judged on our runs at one stage.

    Claims: sTLP-IB ≥ sGLP-IB; each IB method keeps the unpruned top-1 (Δ ≥ 0, after fine-tuning); sTLP-IB above
    every baseline criterion the table declares for the network (of APIB, plain lasso, L1-norm, FPGM, HRank,
    random; uniform widths). Each is judged by Welch's t-test on the runs (``verdicts.compare``): after
    fine-tuning the runs are the fine-tuning runs, before it the calibration seeds. It holds or fails only where
    the one-sided test says so at 5% with two or more runs a side; otherwise it is inconclusive. "Above every
    other criterion" holds where it holds against each, fails where it fails against one, and its difference is
    against the criterion with the best mean.

    Returns:
        ``network, claim, verdict, difference [95% interval]`` (the difference of means in points and its
        two-sided Welch interval, as ``+0.12 [-0.30, +0.54]``), ``runs`` (``3 vs 3``; ``3`` against the unpruned
        value); verdict ``holds``, ``fails``, ``inconclusive`` (with the best other criterion where it applies) or
        ``not run yet``.
    """
    out = []
    baselines = ("apib", "lasso", "l1", "fpgm", "hrank", "random")
    for model in models:
        stlp, sglp = _values(rows, model, "stlp", stage), _values(rows, model, "sglp", stage)
        out.append(_claim(model, "sTLP-IB ≥ sGLP-IB", compare(stlp, sglp) if stlp and sglp else None))
        if stage == "finetuned":
            for method in ("sglp", "stlp"):
                top1 = _values(rows, model, method, stage)
                unpruned = _values(rows, model, method, "unpruned")
                out.append(_claim(model, f"{METHOD_LABELS[method]} keeps the unpruned top-1 (Δ ≥ 0)",
                                  compare_to(top1, unpruned[0]) if top1 else None))
        uniform = rows[(rows["model"] == model) & (rows["widths"] == "uniform")]
        declared = [m for m in baselines if (uniform["method"] == m).any()]
        ran = {m: values for m in declared if (values := _values(rows, model, m, stage)) is not None}
        if stlp is None or not ran:
            out.append(_claim(model, "sTLP-IB above every other criterion", None))
            continue
        against = {m: compare(stlp, values) for m, values in ran.items()}
        best = max(ran, key=lambda m: sum(ran[m]) / len(ran[m]))
        verdicts = {c.verdict for c in against.values()}
        verdict = FAILS if FAILS in verdicts else HOLDS if verdicts == {HOLDS} else INCONCLUSIVE
        out.append(_claim(model, "sTLP-IB above every other criterion", replace(against[best], verdict=verdict),
                          f"best other {METHOD_LABELS[best]}; {len(ran)} of {len(declared)} run"))
    return pd.DataFrame(out, columns=["network", "claim", "verdict", "difference [95% interval]", "runs"])
