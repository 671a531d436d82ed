"""The grid's cells and tables: ids, checks, settings, and what each table declares."""

from __future__ import annotations

import functools
from dataclasses import replace

import pytest
import torch

from ibprune_lib.counting import count
from ibprune_lib.data import NUM_CLASSES
from ibprune_lib.harness.grid import NOT_RUN_HERE, TABLES, UNTRAINED, Cell, Grid, distinguishing_settings, load_table
from ibprune_lib.harness.grid.runner import _starting_model
from ibprune_lib.models import get_model, input_size
from ibprune_lib.paths import REPO_ROOT
from ibprune_lib.pruning.budget import sliced_copy, target_range
from ibprune_lib.pruning.layers import survey_layers
from ibprune_lib.settings import PRESETS, SelectionSettings, preset_settings
from ibprune_lib.train import has_fast_bf16

from grid_helpers import TABLE, grid_args, run_cli, write_table


def test_cell_id_is_stable_and_follows_the_content():
    cell = Cell("resnet56", weights="weights:w.th", method="l1", target_flops=0.5)
    assert cell.id == Cell("resnet56", weights="weights:w.th", method="l1", target_flops=0.5).id
    assert cell.id.startswith("resnet56-l1-")
    assert cell.id != Cell("resnet56", weights="weights:w.th", method="l1", target_flops=0.5, seeds=(0,)).id
    assert cell.id != Cell("resnet56", weights="weights:w.th", method="l1", target_flops=0.5, finetune_epochs=3).id


def test_fields_added_later_keep_the_ids_of_committed_cells():
    committed = {path.stem for path in (REPO_ROOT / "results/cpu/table1").glob("*.json")}
    assert committed and committed <= {cell.id for cell in load_table("table1", "cpu")}


def test_a_bad_ablation_cell_is_refused():
    with pytest.raises(ValueError, match="finetune_epochs must be an int >= 0"):
        Cell("vgg16", weights="w.pt", method="sglp", target_params=0.15, finetune_epochs=-1).check()
    with pytest.raises(ValueError, match="finetune_seed must be an int >= 0 or None, got -1"):
        Cell("vgg16", weights="w.pt", method="sglp", target_params=0.15, finetune_seed=-1).check()
    with pytest.raises(ValueError, match="use_gram=False is for sglp, stlp, lasso, not apib"):
        Cell("vgg16", weights="w.pt", method="apib", target_params=0.15, use_gram=False).check()
    with pytest.raises(ValueError, match="unknown preset 'best': choose one of paper, tuned"):
        Cell("vgg16", weights="w.pt", method="sglp", target_params=0.15, preset="best").check()
    with pytest.raises(ValueError, match="preset 'tuned' sets the kernel; leave kernel at its default"):
        Cell("vgg16", weights="w.pt", method="sglp", target_params=0.15, preset="tuned", kernel="sigmoid").check()


def test_a_cell_prunes_with_its_presets_settings_under_its_own_options(monkeypatch):
    paper = Cell("vgg16", weights="w.pt", method="sglp", target_params=0.15, kernel="gaussian")
    assert paper.selection_settings() == SelectionSettings(kernel="gaussian")
    tuned = Cell("vgg16", weights="w.pt", method="stlp", target_params=0.15, preset="tuned",
                 options=(("linkage", "complete"),))
    assert tuned.selection_settings() == PRESETS["tuned"]["stlp"].replace(linkage="complete")
    assert tuned.selection_settings().kernel == "gaussian" and not tuned.selection_settings().normalise
    unnamed = Cell("vgg16", weights="w.pt", method="lasso", target_params=0.15, preset="tuned")
    assert unnamed.selection_settings() == SelectionSettings()  # a method the preset does not name
    columns = Cell("vgg16", weights="w.pt", method="sglp", target_params=0.15, direction="columns", use_gram=False)
    assert columns.selection_settings().record() == {"kernel": "laplacian", "direction": "columns", "use_gram": False}
    first_id = tuned.id
    monkeypatch.setitem(PRESETS, "tuned", {"stlp": SelectionSettings(kernel="sigmoid")})  # a revised preset: its
    assert tuned.id != first_id and tuned.selection_settings().kernel == "sigmoid"  # cells run again


def test_ablations_sweep_one_setting_at_a_time_from_table1s_vgg16_cell():
    cells = load_table("ablations", "cpu")
    base = next(c for c in load_table("table1", "cpu") if c.model == "vgg16" and c.method == "sglp")
    varied = {key for c in cells if c.method == "sglp" for key in ("kernel", "batch_size", "skip_first", "use_gram",
              "direction", "target_params", "target_flops") if getattr(c, key) != getattr(base, key)}  # fmt: skip
    assert varied == {"kernel", "batch_size", "skip_first", "use_gram", "direction", "target_params", "target_flops"}
    assert all(c.finetune_epochs == 3 and c.finetune_precision == "bf16" and c.model == "vgg16" for c in cells)
    assert all(sum(getattr(c, key) != getattr(base, key) for key in ("kernel", "batch_size", "skip_first", "use_gram",
               "direction")) <= 1 for c in cells)  # fmt: skip


@pytest.mark.slow
def test_status_names_what_each_cell_changes_from_its_networks_first_cell(tmp_path):
    ablations = load_table("ablations", "cpu")
    shown = distinguishing_settings(ablations)
    by_setting = {}
    for cell in ablations:
        by_setting.setdefault(shown[cell.id], set()).add(cell.method)
    assert by_setting["base"] == {"sglp", "stlp", "l1", "apib"}
    for setting in ("bs 1024", "kernel gaussian", "skip 2", "raw maps", "columns", "params 0.3", "flops 0.8"):
        assert {"sglp", "stlp"} <= by_setting[setting], setting
    table1 = load_table("table1", "cpu")
    second_runs = [c for c in table1 if c.finetune_seed is not None]
    assert second_runs and {distinguishing_settings(table1)[c.id] for c in second_runs} == {
        f"seeds [0], fine-tuning seed {second_runs[0].finetune_seed}"}
    last = ablations[-1]
    status = run_cli("experiments", "status", "ablations", "--scale", "cpu", "--cell", last.id,
                     "--results", str(tmp_path / "results"), "--work", str(tmp_path / "runs"))
    assert status.returncode == 0, status.stderr
    state = "to" if has_fast_bf16(torch.device("cpu")) else "not"  # a bf16 cell is "not run here" without AMX
    assert status.stdout.split()[:6] == [last.id, "flops", f"{last.target_flops},", "skip", str(last.skip_first), state]


def test_table1_declares_every_method_on_every_network():
    cells = load_table("table1", "cpu")
    for network in ("vgg16", "resnet56", "resnet110"):
        methods = {c.method for c in cells if c.model == network and c.widths == "uniform"}
        assert methods == {"sglp", "stlp", "apib", "lasso", "l1", "fpgm", "hrank", "random"}
    assert {(c.method, c.widths) for c in cells if c.widths == "itpruner"} == {("l1", "itpruner"), ("stlp", "itpruner")}
    googlenet = [c for c in cells if c.model == "googlenet"]
    assert {c.method for c in googlenet} == {"sglp", "stlp", "apib", "lasso", "l1", "fpgm", "hrank", "random"}
    assert all(c.needs == "cuda" and c.target_flops == 0.31 for c in googlenet)
    (smoke,) = [c for c in load_table("table1", "smoke") if c.model == "googlenet"]
    assert smoke.weights == UNTRAINED and smoke.needs is None and smoke.weights_path() is None


def test_table8_is_vgg16_on_cifar100_at_the_papers_flops_budget():
    cells = load_table("table8", "cpu")
    assert {c.method for c in cells} == {"sglp", "stlp", "apib", "l1", "random"}
    assert all(c.dataset == "cifar100" and c.target_flops == 0.45 and c.model == "vgg16" for c in cells)
    assert load_table("table8", "smoke") == []


def test_an_untrained_cell_starts_from_the_same_seeded_network_every_time():
    cell = Cell("resnet20", weights=UNTRAINED, method="l1", target_flops=0.5)
    (first, name, size), (second, _, _) = _starting_model(cell, 10), _starting_model(cell, 10)
    assert name == "resnet20" and size == (3, 32, 32) and not first.training
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


@pytest.mark.slow
def test_a_cell_that_needs_a_gpu_is_not_run_here_on_a_cpu(tmp_path):
    text = TABLE.replace("target_flops=0.6)", 'target_flops=0.6, needs="cuda")').replace("4bfd9763.th", "none.th")
    table = write_table(tmp_path, text)  # its weights are missing too: a CPU runner must not ask for them
    grid = Grid(str(table), "smoke", results=tmp_path / "results", work=tmp_path / "runs")
    cell = grid.cells[0]
    assert grid.run([cell], torch.device("cpu"), progress=False) == [
        (cell, f"{NOT_RUN_HERE}: needs --device cuda (a GPU)")]
    assert grid.state(cell)["state"] == NOT_RUN_HERE and not grid.result_path(cell).exists()
    result = run_cli("experiments", "run", *grid_args(table, tmp_path))
    assert result.returncode == 0 and "0 done, 0 skipped, 0 failed, 1 not run here" in result.stdout
    status = run_cli("experiments", "status", *grid_args(table, tmp_path)[:-1])
    assert "0 to do, 1 not run here; about 0.0 h" in status.stdout
    with pytest.raises(ValueError, match="needs must be None or 'cuda'"):
        Cell("resnet56", weights="w.th", method="l1", target_flops=0.5, needs="tpu").check()


@functools.cache
def least_kept(model: str, num_classes: int, skip_first: int) -> dict[str, float]:
    """The shares of the parameters and MACs a network keeps with one channel left in each pruned layer."""
    network, size = get_model(model, num_classes).eval(), input_size(model)
    layers = survey_layers(network, size, skip_first).prunable
    full, least = count(network, size), count(sliced_copy(network, layers, [1] * len(layers)), size)
    return {"params": least.params / full.params, "macs": least.macs / full.macs}


@pytest.mark.slow
@pytest.mark.parametrize("table", TABLES)
def test_every_declared_budget_is_reachable_past_the_cells_whole_layers(table):
    # an unreachable one fails only when its cell runs (70% and 80% of VGG-16's FLOPs past four whole layers did)
    for cell in load_table(table, "cpu"):
        metric, target = (("macs", cell.target_flops) if cell.target_flops is not None
                          else ("params", cell.target_params))
        floor = least_kept(cell.model, NUM_CLASSES[cell.dataset], cell.skip_first)[metric]
        assert target_range(target)[1] >= floor, f"{cell.id} keeps at least {floor:.3f} of the {metric}"


def test_the_solvers_table_pairs_each_exact_cell_with_the_smoothed_problem_solved_by_spg():
    solvers = load_table("solvers", "cpu")
    exact = [cell for cell in solvers if not cell.options]
    pairs = [("resnet56", "sglp"), ("resnet56", "stlp"), ("vgg16", "sglp"), ("vgg16", "stlp")]
    assert sorted((cell.model, cell.method) for cell in exact) == pairs and len(solvers) == 2 * len(pairs)
    for cell in solvers:
        if not cell.options:
            assert (cell.preset, cell.kernel, cell.direction, cell.finetune_epochs) == ("paper", "laplacian", "rows", 0)
            assert (REPO_ROOT / "results" / "cpu" / "solvers" / f"{cell.id}.json").is_file()  # the study's first run
            continue
        options = dict(cell.options)
        assert options["solver"] == "spg" and replace(cell, options=()) in exact
        assert options.get("tree_prox") == ("smoothed" if cell.method == "stlp" else None)  # else SPG = exact prox
    assert load_table("solvers", "smoke") == []


def test_the_presets_table_is_table1s_cells_of_the_tuned_methods_with_the_tuned_preset_alone():
    table1 = {cell.id: cell for cell in load_table("table1", "cpu")}
    presets = load_table("presets", "cpu")
    assert sorted((cell.model, cell.method) for cell in presets) == [("resnet56", "stlp"), ("vgg16", "stlp")]
    for cell in presets:
        assert cell.preset == "tuned" and cell.selection_settings() == preset_settings("tuned", "stlp")
        paper = table1[replace(cell, preset="paper").id]  # Table 1 holds the same cell with the paper's settings
        assert (paper.widths, paper.finetune_epochs) == ("uniform", None)
    assert load_table("presets", "smoke") == []
