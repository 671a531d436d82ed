"""The settings study read out: each setting in words, its effect on top-1 against the paper's settings, and the
settings that qualify for a preset."""

from __future__ import annotations

import pandas as pd

from ..settings import PRESETS, SelectionSettings
from .grid import Cell
from .report import NOT_RUN

_OPTION_TEXT = {
    "threshold": "graph τ = {}", "knn": "k-NN graph, k = {}", "gamma_graph": "γ/λ = {}", "linkage": "{} linkage",
    "score": "ranked by {} alone", "normalise": "unit-norm columns: {}", "solver": "solver {}",
    "tree_prox": "{} tree groups",
}
_ON_OFF = {False: "off", True: "on"}


def describe_settings(settings: SelectionSettings | None) -> str:
    """Selection settings in words, by what they change from the paper's, e.g. ``SelectionSettings(kernel="gaussian",
    normalise=False)`` → "gaussian kernel, unit-norm columns: off"; the defaults or None → "as the paper states
    them"."""
    changes = settings.changes() if settings is not None else {}
    words = [f"{value} kernel" if name == "kernel" else _OPTION_TEXT[name].format(_ON_OFF.get(value, value))
             for name, value in changes.items()]
    return ", ".join(words) or "as the paper states them"


def setting_label(cell: Cell) -> str:
    """How a settings-study cell differs from the paper's settings, in words ("the paper's" when it does not)."""
    changes = [_OPTION_TEXT[name].format(_ON_OFF.get(value, value)) for name, value in cell.options]
    if cell.preset != "paper":
        changes.insert(0, f"preset {cell.preset} ({describe_settings(PRESETS[cell.preset].get(cell.method))})")
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


def setting_effects(rows: pd.DataFrame, stage: str = "validation") -> pd.DataFrame:
    """Each changed setting of the settings study against the paper's, per network and method.

    Args:
        rows: :func:`cell_rows`' output with two more columns, ``setting`` (:func:`setting_label`) and
            ``preset``; cells of a preset other than ``paper`` are left out.
        stage: the top-1 that decides: ``validation`` (after recalibration, on the held-out training images:
            what a setting is chosen on) or ``recalibrated`` (the same on the test set: reported, never chosen on).

    Returns:
        One row per cell with a changed setting, columns ``setting, model, method, delta, spread, effect``:
        ``delta`` the change in mean top-1 at ``stage`` (points), ``spread`` the larger standard deviation
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
        delta = row[stage] - reference[stage]
        spread = max(row[f"{stage}_std"], reference[f"{stage}_std"])
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


def study_table(rows: pd.DataFrame, model: str) -> pd.DataFrame:
    """One row per study cell of ``model``, best top-1 on the validation split first.

    Args:
        rows: ``report.cell_rows`` of the study, with a ``setting`` column (:func:`setting_label`).
        model: the network.

    Returns:
        Columns method, setting, validation (%), recalibrated (%), pruned (%) as "mean ± sd" over the calibration
        seeds, and selection (s); a cell not run shows its status.
    """
    ours = rows[rows["model"] == model].sort_values("validation", ascending=False, na_position="last")
    out = []
    for _, row in ours.iterrows():
        if not row["done"]:
            out.append([row["label"], row["setting"], row["status"], "", "", ""])
            continue
        out.append([row["label"], row["setting"], *(f"{row[stage]:.2f} ± {row[f'{stage}_std']:.2f}"
                                                    for stage in ("validation", "recalibrated", "pruned")),
                    f"{row['selection_seconds']:.1f}"])
    return pd.DataFrame(out, columns=["method", "setting", "validation (%)", "recalibrated (%)", "pruned (%)",
                                      "selection (s)"])


def plot_study(rows: pd.DataFrame, model: str, title: str):
    """Top-1 after recalibration (mean ± sd over the seeds) of ``model``'s finished study cells, one line a cell.

    Returns:
        The matplotlib figure, or None when no cell of ``model`` has run.
    """
    import matplotlib.pyplot as plt

    done = rows[(rows["model"] == model) & rows["done"]].sort_values("recalibrated")
    if done.empty:
        return None
    figure, ax = plt.subplots(figsize=(8, 0.28 * len(done) + 1))
    ax.errorbar(done["recalibrated"], range(len(done)), xerr=done["recalibrated_std"], fmt="o", ms=4)
    ax.set_yticks(range(len(done)), done["label"] + " · " + done["setting"])
    ax.set_xlabel("top-1 after BN recalibration (%)")
    ax.set_title(title)
    return figure


def setting_cell(rows: pd.DataFrame, model: str, method: str, setting: str = "the paper's") -> pd.DataFrame:
    """The study row(s) of ``model`` and ``method`` whose setting starts with ``setting``."""
    mine = rows[(rows["model"] == model) & (rows["method"] == method)]
    return mine[mine["setting"].str.startswith(setting)]


def tuned_cell(rows: pd.DataFrame, model: str, method: str) -> pd.DataFrame:
    """The tuned preset's row, or the paper's settings' where the preset keeps them for ``method``."""
    return setting_cell(rows, model, method, "preset tuned" if method in PRESETS["tuned"] else "the paper's")


def recalibrated(found: pd.DataFrame) -> tuple[float, float] | None:
    """(mean, sd) of a finished cell's top-1 after recalibration, else None."""
    if not len(found) or not found["done"].iloc[0]:
        return None
    return found["recalibrated"].iloc[0], found["recalibrated_std"].iloc[0]


def recalibrated_text(found: pd.DataFrame) -> str:
    """"mean ± sd" of a finished cell's top-1 after recalibration, else "not run yet"."""
    value = recalibrated(found)
    return NOT_RUN if value is None else f"{value[0]:.2f} ± {value[1]:.2f}"


def effect_text(found: pd.DataFrame) -> str:
    """"+7.31 (better)" for one (setting, network, method) of :func:`setting_effects`; "—" where the setting is not
    the method's."""
    if found.empty:
        return "—"
    row = found.iloc[0]
    return NOT_RUN if row["effect"] == NOT_RUN else f"{row['delta']:+.2f} ({row['effect']})"


def standing_against(tuned: tuple[float, float], name: str, simple: tuple[float, float]) -> str:
    """How a (mean, sd) stands against the better simple criterion's, in words: level within the larger spread
    over seeds, trailing, or leading."""
    gap, spread = tuned[0] - simple[0], max(tuned[1], simple[1])
    if abs(gap) <= spread:
        return f"is level with {name} ({gap:+.2f} points, within the spread over seeds of {spread:.2f})."
    if gap < 0:
        return f"still trails {name} by {-gap:.2f} points."
    return f"leads {name}, the better simple criterion, by {gap:.2f} points."
