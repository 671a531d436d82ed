"""The book's shared table style."""

import json

import pandas as pd
import pytest

from ibprune_lib.harness.grid import Cell, load_table
from ibprune_lib.harness.paper import TABLE8
from ibprune_lib.harness.report import (
    NEEDS_GPU,
    NOT_RUN,
    cell_rows,
    claims,
    network_caption,
    network_table,
    style_table,
)
from ibprune_lib.harness.study import kept_overlap, qualifying_settings, setting_effects, setting_label
from ibprune_lib.harness.sweeps import plot_sweep, sweep_rows, sweep_summary, sweep_table
from ibprune_lib.paths import REPO_ROOT


def test_tables_scroll_inside_the_column_with_text_left_numbers_right_and_no_index():
    frame = pd.DataFrame({"layer": ["layer1.4.conv1", "layer2.0.conv1"], "kept": [11, 16], "λ": [1.5e-3, 2e-4]})
    html = style_table(frame, "A caption").format({"λ": "{:.3g}"}).to_html()
    assert "<caption>A caption</caption>" in html and "overflow-x: auto" in html
    assert "row_heading" not in html  # no raw 0, 1, … index
    styles = html.split("</style>")[0]
    left = [c for c in styles.split("}") if "text-align: left" in c and "caption" not in c]
    assert left and all("col0" in block and "col1" not in block and "col2" not in block for block in left)
    assert "caption {\n  text-align: left" in styles  # a caption reads from the left edge of the column
    assert ">0.0015<" in html and ">layer1.4.conv1<" in html


def test_numbers_formatted_as_text_are_right_aligned_like_numbers():
    frame = pd.DataFrame({
        "method": ["sTLP-IB", "L1-norm"],
        "top-1 (%)": ["93.41", "not run yet"],
        "Δ (points)": ["+0.05", "−1.20"],
        "pruned (%)": ["24.50 ± 1.21", "—"],
        "note": ["—", "run 3"],
    })
    styles = style_table(frame).to_html().split("</style>")[0]
    left = "".join(c for c in styles.split("}") if "text-align: left" in c and "caption" not in c)
    assert "col0" in left and "col4" in left  # the label and the free text
    assert not any(f"col{i}" in left for i in (1, 2, 3))


def test_a_cell_not_run_says_why_in_the_networks_table():
    cells = [Cell("googlenet", weights="g.pt", method="l1", target_flops=0.31, needs="cuda"),
             Cell("googlenet", weights="g.pt", method="stlp", target_flops=0.31)]
    rows = cell_rows(cells, {cell.id: None for cell in cells})
    assert rows["status"].tolist() == [NEEDS_GPU, NOT_RUN]
    table = network_table(rows, "googlenet")
    ours = table[table["source"] == "here"]
    assert ours["top-1 (%)"].tolist() == [NEEDS_GPU, NOT_RUN]
    assert (table["source"] == "paper").sum() == 3  # HRank, sGLP-IB, sTLP-IB as the paper prints them


def test_a_budget_four_whole_layers_cannot_reach_joins_its_sweep_only_as_a_fallback_and_says_so():
    cells = load_table("ablations", "cpu")
    assert ("flops", 0.2) not in set(sweep_rows(cells, {}, "budget")["value"])
    rows = sweep_rows(cells, {}, "budget", fallback=("skip_first",))
    assert not rows.duplicated(["value", "method"]).any()  # the base cell wins over the layer-skipping sweep's
    differs = dict(zip(zip(rows["value"], rows["method"]), rows["differs"]))
    assert differs[("flops", 0.2), "sglp"] == differs[("flops", 0.3), "stlp"] == "skip_first=2"
    assert differs[("params", 0.15), "sglp"] == differs[("flops", 0.4), "stlp"] == ""
    table = sweep_table(rows, "FLOPs kept")
    assert "0.2) (skip_first=2)" in " ".join(table["FLOPs kept"])


@pytest.mark.slow
def test_a_sweep_holds_the_cells_that_vary_one_setting_and_quotes_the_paper_beside_them():
    cells = load_table("ablations", "cpu")
    rows = sweep_rows(cells, {}, "kernel")
    assert rows["value"].tolist()[:3] == ["linear"] * 3 and set(rows["value"]) == {"linear", "gaussian", "sigmoid",
                                                                                   "laplacian"}
    assert all(len(set(rows[rows["value"] == k]["method"])) == len(rows[rows["value"] == k]) for k in set(rows["value"]))
    budget = sweep_rows(cells, {}, "budget")
    assert {value for value in budget["value"]} >= {("params", 0.1), ("params", 0.15), ("flops", 0.4)}
    table = sweep_table(sweep_rows(cells, {}, "batch_size"), "batch", {"sglp": {64: (93.77, 8)}})
    first = table.iloc[0]
    assert (first["batch"], first["method"], first["top-1 (%)"], first["paper (%)"]) == ("64", "sGLP-IB", NOT_RUN,
                                                                                         "93.77 (8%)")
    with pytest.raises(ValueError, match="unknown setting 'threads'"):
        sweep_rows(cells, {}, "threads")


def test_a_sweep_summary_sets_each_methods_lowest_and_highest_beside_the_papers_at_the_same_values():
    rows = pd.DataFrame({
        "method": ["sglp", "sglp", "sglp", "stlp", "stlp", "l1"], "done": [True, True, False, True, True, True],
        "label": ["sGLP-IB", "sGLP-IB", "sGLP-IB", "sTLP-IB", "sTLP-IB", "L1-norm"],
        "value": [64, 128, 256, 64, 128, 128], "finetuned": [90.1, 89.5, None, 89.0, 89.8, 90.0],
        "pruned": [10.0, 10.0, None, 10.0, 11.5, 10.0],
    })
    paper = {"sglp": {64: 93.77, 128: (94.05, 8), 256: 94.07}, "stlp": {64: 93.76, 128: 93.76}}
    assert sweep_summary(rows, "batch {}".format, paper) == [
        "- sGLP-IB: top-1 after fine-tuning from 89.50% (batch 128) to 90.10% (batch 64); the paper, at the same 2 "
        "values: from 93.77% (batch 64) to 94.05% (batch 128).",  # 256 did not run here: the paper's is left out
        "- sTLP-IB: top-1 after fine-tuning from 89.00% (batch 64) to 89.80% (batch 128); the paper, at the same 2 "
        "values: 93.76% at every value.",
    ]  # L1-norm ran at the base value only: left to the table
    pruned = sweep_summary(rows, "batch {}".format, stage="pruned", prefix="sweep, ")
    assert pruned[0] == "- sweep, sGLP-IB: top-1 right after pruning 10.00% at every value."
    assert pruned[1].startswith("- sweep, sTLP-IB: top-1 right after pruning from 10.00% (batch 64) to 11.50%")
    assert sweep_summary(rows[rows["method"] == "l1"]) == []


def test_a_sweep_cell_that_ran_shows_every_stage_beside_the_cells_not_run_yet():
    cells = load_table("ablations", "cpu")
    first = sweep_rows(cells, {}, "batch_size").iloc[0]
    committed = next((REPO_ROOT / "results" / "cpu" / "table1").glob("vgg16-sglp-*.json"))  # a real result's shape
    result = json.loads(committed.read_text())
    table = sweep_table(sweep_rows(cells, {first["id"]: result}, "batch_size"), "batch")
    ran, rest = table.iloc[0], table.iloc[1:]
    stages = result["stages"]
    assert ran["top-1 (%)"] == f"{stages['finetuned']:.2f}"
    assert ran["Δ (points)"] == f"{stages['finetuned'] - stages['unpruned']:+.2f}"
    assert ran["recalibrated (%)"].startswith(f"{stages['recalibrated']['mean']:.2f} ± ")
    assert ran["FLOPs ↓ (%)"] == f"{result['counts']['flops_reduction']:.1f}"
    assert (rest["top-1 (%)"] == NOT_RUN).all() and (rest["Δ (points)"] == "").all()


@pytest.mark.slow
def test_a_sweep_plot_marks_the_unpruned_networks_top1_only_when_every_cell_pruned_the_same_one_and_fallbacks():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = pd.DataFrame({"method": ["sglp", "stlp", "stlp"], "label": ["sGLP-IB", "sTLP-IB", "sTLP-IB"],
                         "done": [True, True, False], "value": [64, 64, 128], "finetuned": [90.1, 89.0, None],
                         "unpruned": [92.06, 92.06, None],
                         "differs": ["", "skip_first=2", "skip_first=2"]})  # fmt: skip
    _, ax = plt.subplots()
    plot_sweep(ax, rows, lambda v: v, {"sglp": {64: 93.77}}, lambda v: v)
    squared = [c for c in ax.collections if c.get_label() == "with skip_first=2"]
    assert len(squared) == 1 and squared[0].get_offsets().tolist() == [[64, 89.0]]  # the cell not run is left out
    assert [line.get_label() for line in ax.get_lines()] == ["sGLP-IB", "sTLP-IB", "unpruned (ours)"]
    assert list(ax.get_lines()[-1].get_ydata()) == [92.06, 92.06]
    _, ax = plt.subplots()
    plot_sweep(ax, rows.assign(unpruned=[92.06, 93.0, None]), lambda v: v)  # two networks: no single baseline
    assert [line.get_label() for line in ax.get_lines()] == ["sGLP-IB", "sTLP-IB"]
    plt.close("all")


def test_a_study_cell_says_what_it_changed_and_overlaps_are_jaccard_means():
    base = dict(weights="w.th", target_flops=0.5, finetune_epochs=0)
    assert setting_label(Cell("resnet56", method="sglp", **base)) == "the paper's"
    assert setting_label(Cell("resnet56", method="sglp", options=(("knn", 4),), **base)) == "k-NN graph, k = 4"
    assert setting_label(Cell("resnet56", method="stlp", options=(("normalise", False),), kernel="linear",
                              **base)) == "unit-norm columns: off, linear kernel"  # fmt: skip
    assert setting_label(Cell("resnet56", method="stlp", preset="tuned", **base)) == (
        "preset tuned (gaussian kernel, unit-norm columns: off)")
    assert setting_label(Cell("resnet56", method="sglp", preset="tuned", **base)) == (
        "preset tuned (as the paper states them)")

    def result(*kept):
        return {"seeds": [{"layers": [{"name": f"l{i}", "kept": len(k), "channels": 4, "kept_indices": k}
                                      for i, k in enumerate(kept)]}]}  # fmt: skip

    assert kept_overlap(result([0, 1], [0, 1, 2, 3]), result([1, 2], [0, 1, 2, 3])) == pytest.approx(1 / 3)
    assert kept_overlap(result([0, 1]), result([0, 1])) == 1.0


def study_rows(entries):
    """Rows as the settings-study notebook builds them: (model, method, setting, mean, sd) of the validation top-1
    per cell, None: not run. The test top-1 runs the other way (100 − mean): choosing on it would reverse every
    verdict."""
    rows = []
    for model, method, setting, mean, sd in entries:
        rows.append({"model": model, "method": method, "setting": setting, "preset": "paper",
                     "done": mean is not None, "validation": mean, "validation_std": sd,
                     "recalibrated": None if mean is None else 100 - mean, "recalibrated_std": sd})
    return pd.DataFrame(rows)


def test_setting_effects_compare_each_setting_with_the_papers_beyond_the_larger_spread():
    rows = study_rows([
        ("resnet56", "sglp", "the paper's", 66.0, 1.0), ("resnet56", "sglp", "linear kernel", 73.0, 0.5),
        ("resnet56", "sglp", "graph τ = 0.7", 66.5, 0.2), ("resnet56", "sglp", "k-NN graph, k = 4", 60.0, 3.0),
        ("resnet56", "sglp", "γ/λ = 2", None, None),
    ])
    effects = setting_effects(rows).set_index("setting")
    assert effects.loc["linear kernel", "delta"] == pytest.approx(7.0)
    assert effects.loc["linear kernel", "spread"] == 1.0
    assert effects["effect"].to_dict() == {"linear kernel": "better", "graph τ = 0.7": "within spread",
                                           "k-NN graph, k = 4": "worse", "γ/λ = 2": NOT_RUN}


def test_setting_effects_leave_out_other_presets_and_need_the_papers_cell():
    rows = study_rows([("vgg16", "stlp", "linear kernel", 60.0, 1.0), ("vgg16", "stlp", "the paper's", None, None)])
    tuned = study_rows([("vgg16", "stlp", "preset tuned (linear kernel)", 60.0, 1.0)]).assign(preset="tuned")
    effects = setting_effects(pd.concat([rows, tuned], ignore_index=True))
    assert effects["setting"].tolist() == ["linear kernel"]
    assert effects["effect"].tolist() == [NOT_RUN]


def test_a_setting_qualifies_for_a_method_only_when_better_for_it_on_every_network():
    base = [(model, method, "the paper's", 60.0, 1.0) for model in ("resnet56", "vgg16") for method in ("sglp", "stlp")]
    rows = study_rows(base + [
        # better on both networks for sTLP-IB, within the spread on one for sGLP-IB: joins sTLP-IB's only
        ("resnet56", "sglp", "unit-norm columns: off", 65.0, 1.0),
        ("vgg16", "sglp", "unit-norm columns: off", 60.5, 1.0),
        ("resnet56", "stlp", "unit-norm columns: off", 64.0, 1.0),
        ("vgg16", "stlp", "unit-norm columns: off", 62.5, 1.0),
        # better on both networks, a larger mean gain: first
        ("resnet56", "stlp", "linear kernel", 70.0, 1.0), ("vgg16", "stlp", "linear kernel", 64.0, 1.0),
        # worse on one network
        ("resnet56", "sglp", "linear kernel", 70.0, 1.0), ("vgg16", "sglp", "linear kernel", 57.0, 1.0),
        # better where it ran, not run on the other network: not yet
        ("resnet56", "sglp", "graph τ = 0.7", 65.0, 1.0), ("vgg16", "sglp", "graph τ = 0.7", None, None),
        # one network only: never
        ("resnet56", "sglp", "k-NN graph, k = 4", 65.0, 1.0),
    ])
    assert qualifying_settings(setting_effects(rows)) == {"stlp": ["linear kernel", "unit-norm columns: off"]}


def _claim_rows(unpruned=92.0, **runs):
    """Rows of finished uniform-width VGG-16 configurations: method → fine-tuned top-1 of each run; the
    recalibrated top-1 of each calibration seed is 50 + the run's."""
    return pd.DataFrame([
        {"model": "vgg16", "method": method, "widths": "uniform", "done": True, "unpruned": unpruned,
         "finetuned_values": list(values), "recalibrated_values": [v - 50 for v in values]}
        for method, values in runs.items()
    ])


def _verdicts(rows, stage="finetuned"):
    return {claim: (verdict, difference, runs) for _, claim, verdict, difference, runs
            in claims(rows, ["vgg16"], stage=stage).itertuples(index=False)}


def test_a_claim_holds_or_fails_only_where_welchs_test_says_so_with_two_runs_a_side():
    rows = _claim_rows(stlp=(92.0, 92.1, 92.2), sglp=(91.0, 91.1, 91.2), l1=(91.9, 92.3, 92.0))
    verdicts = _verdicts(rows)
    verdict, difference, runs = verdicts["sTLP-IB ≥ sGLP-IB"]
    assert verdict == "holds" and runs == "3 vs 3" and difference.startswith("+1.00 [+0.")
    assert verdicts["sTLP-IB keeps the unpruned top-1 (Δ ≥ 0)"][0] == "inconclusive"  # 92.1 ± 0.1 vs 92.0
    assert verdicts["sGLP-IB keeps the unpruned top-1 (Δ ≥ 0)"][:2] == ("fails", "-0.90 [-1.15, -0.65]")
    verdict, difference, runs = verdicts["sTLP-IB above every other criterion"]  # 92.1 vs L1-norm's 92.07
    assert verdict == "inconclusive (best other L1-norm; 1 of 1 run)" and runs == "3 vs 3"
    assert _verdicts(_claim_rows(stlp=(91.0, 91.1, 91.2), sglp=(92.0, 92.1, 92.2)))["sTLP-IB ≥ sGLP-IB"][0] == "fails"
    before = _verdicts(rows, stage="recalibrated")  # the same judgement over calibration seeds
    assert before["sTLP-IB ≥ sGLP-IB"][0] == "holds" and "keeps the unpruned" not in " ".join(before)


def test_one_run_decides_nothing_however_large_the_gap():
    rows = _claim_rows(stlp=(95.0,), sglp=(90.0, 90.1), random=(80.0, 80.2))
    verdicts = _verdicts(rows)
    assert verdicts["sTLP-IB ≥ sGLP-IB"] == ("inconclusive", "+4.95", "1 vs 2")
    assert verdicts["sTLP-IB keeps the unpruned top-1 (Δ ≥ 0)"] == ("inconclusive", "+3.00", "1")
    assert verdicts["sTLP-IB above every other criterion"][0].startswith("inconclusive")


def test_above_every_other_criterion_fails_where_one_criterion_is_significantly_above():
    rows = _claim_rows(stlp=(92.0, 92.1, 92.2), sglp=(91.0, 91.1, 91.2), fpgm=(93.0, 93.1, 93.2),
                       random=(80.0, 80.1, 80.3))
    verdict, difference, _ = _verdicts(rows)["sTLP-IB above every other criterion"]
    assert verdict == "fails (best other FPGM; 2 of 2 run)" and difference.startswith("-1.00")
    rows = _claim_rows(stlp=(92.0, 92.1, 92.2), random=(80.0, 80.1, 80.3))
    assert _verdicts(rows)["sTLP-IB above every other criterion"][0] == "holds (best other random; 1 of 1 run)"


def test_table8_quotes_its_own_paper_rows_and_its_claims_count_only_the_baselines_it_declares():
    budget = dict(weights="v.pt", dataset="cifar100", target_flops=0.45)
    cells = [Cell("vgg16", method=m, **budget) for m in ("stlp", "sglp", "apib", "l1")]
    results = {cells[0].id: _result(70.0, unpruned=62.9), cells[2].id: _result(70.5, unpruned=62.9)}
    rows = cell_rows(cells, results)
    table = network_table(rows, "vgg16", paper=TABLE8)
    quoted = table[table["source"] == "paper"].set_index("method")
    assert quoted.loc["CPMC", "Δ (points)"] == "-0.79"  # 73.01 against the paper's CIFAR-100 VGG-16, 73.80
    assert quoted.loc["sTLP-IB", "params ↓ (%)"] == "71" and "—" in quoted.loc["CPMC", "params ↓ (%)"]
    assert len(quoted) == len(TABLE8) - 1 and "93.96" not in table["top-1 (%)"].tolist()  # none of Table 1's
    verdict = dict(claims(rows, ["vgg16"])[["claim", "verdict"]].values)["sTLP-IB above every other criterion"]
    assert verdict == "inconclusive (best other APIB; 1 of 2 run)"  # one run each


def _result(finetuned: float, unpruned: float = 93.0, seeds=(0, 1, 2)) -> dict:
    """A cell's result JSON with what ``cell_rows`` reads: calibration seed s recalibrates to 60 + s."""
    records = [{"seed": seed, "top1_pruned": 10.0 + seed, "top1_recalibrated": 60.0 + seed} for seed in seeds]
    return {"stages": {"unpruned": unpruned, "finetuned": finetuned},
            "counts": {"flops_reduction": 53.0, "params_reduction": 62.0}, "seeds": records,
            "selection_seconds": {"mean": 1.0}, "seconds": {"total": 3600.0},
            "provenance": {"commit": "0123456789ab", "hardware": {"cpu": "x"}, "time_utc": "t"}}


def test_the_runs_of_a_configuration_make_one_row_and_an_older_extra_run_counts_in_no_mean():
    budget = dict(weights="w.th", target_flops=0.47)
    first = {m: Cell("resnet56", method=m, **budget) for m in ("stlp", "sglp")}
    runs = {(m, r): Cell("resnet56", method=m, seeds=(r,), **budget) for m in first for r in (1, 2)}
    extra = Cell("resnet56", method="stlp", seeds=(0,), finetune_seed=1, **budget)
    assert [c.run_index for c in (first["stlp"], runs["stlp", 2], extra)] == [0, 2, None]
    assert first["stlp"].run_group == runs["stlp", 1].run_group == extra.run_group != first["sglp"].run_group
    results = {first["stlp"].id: _result(91.0), runs["stlp", 1].id: _result(92.0, seeds=(1,)),
               runs["stlp", 2].id: _result(93.0, seeds=(2,)), extra.id: _result(95.0, seeds=(0,)),
               first["sglp"].id: _result(91.4)}
    rows = cell_rows([*first.values(), *runs.values(), extra], results).set_index("method")
    assert rows.index.tolist() == ["stlp", "sglp"]  # runs are no rows of their own
    assert rows.loc["stlp", "finetuned_values"] == [91.0, 92.0, 93.0] and rows.loc["stlp", "extra_runs"] == [95.0]
    assert rows.loc["stlp", "finetuned"] == pytest.approx(92.0) and rows.loc["stlp", "finetuned_std"] == 1.0
    assert rows.loc["stlp", "recalibrated_values"] == [60.0, 61.0, 62.0]  # each calibration seed once
    assert rows.loc["stlp", "delta"] == pytest.approx(-1.0)
    assert (rows.loc["stlp", "finetune_runs"], rows.loc["sglp", "finetune_runs"]) == (3, 1)
    assert (rows.loc["stlp", "finetune_cells"], rows.loc["sglp", "finetune_cells"]) == (3, 3)
    table = network_table(rows.reset_index(), "resnet56")
    ours = table[table["source"] == "here"].set_index("method")["top-1 (%)"]
    assert ours.to_dict() == {"sTLP-IB": "92.00 ± 1.00 (3)", "sGLP-IB": "91.40 (1)"}
    assert "mean ± standard deviation (number of runs)" in network_caption(rows.reset_index(), "resnet56", "cpu")
    verdict = dict(claims(rows.reset_index(), ["resnet56"])[["claim", "verdict"]].values)["sTLP-IB ≥ sGLP-IB"]
    assert verdict == "inconclusive"  # sGLP-IB has one run
