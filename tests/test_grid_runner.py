"""Running cells: the protocol's stages, resuming a killed runner, locks, failures, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ibprune_lib.harness.grid import NOT_RUN_HERE, UNTRAINED, Cell, Grid, load_table
from ibprune_lib.harness.grid import cell as cell_module
from ibprune_lib.harness.grid import runner
from ibprune_lib.harness.grid.runner import _try_lock, _unpruned_top1
from ibprune_lib.train import state_fingerprint

from grid_helpers import TABLE, comparable, grid_args, run_cli, write_table


def test_the_unpruned_top1_is_evaluated_once_per_network_and_test_set(tmp_path, monkeypatch):
    evaluated = []
    monkeypatch.setattr(runner, "top1", lambda model, data, name, limit: evaluated.append(limit) or 12.5)
    cell = Cell("resnet20", weights=UNTRAINED, method="l1", target_flops=0.5)
    model = torch.nn.Conv2d(3, 4, 1)
    data = "a dataset of at least 6 test images"
    for n in (6, 6, 4, 4):
        assert _unpruned_top1(cell, model, "resnet20", data, n, tmp_path) == 12.5
    assert evaluated == [6, 4] and len(list(tmp_path.glob("untrained-resnet20-cifar10-*-cpu.json"))) == 2
    _unpruned_top1(cell, model, "resnet20", data, 6, None)
    assert evaluated == [6, 4, 6]  # no memo: evaluated every time


TWO_RUNS = '''
from ibprune_lib.harness.grid import UNTRAINED, Cell

def cells(scale):
    cell = dict(weights=UNTRAINED, method="l1", target_flops=0.5, finetune_epochs=1)
    return [Cell("resnet20", seeds=(0, 1), **cell), Cell("resnet20", seeds=(0,), finetune_seed=3, **cell)]
'''


@pytest.mark.needs_data
def test_a_second_fine_tuning_run_fine_tunes_the_same_pruned_network_in_another_order(tmp_path, monkeypatch):
    started = []
    fit = runner.fit
    monkeypatch.setattr(runner, "fit", lambda model, data, config, **kwargs: started.append(
        (state_fingerprint(model), config.seed)) or fit(model, data, config, **kwargs))
    grid = Grid(str(write_table(tmp_path, TWO_RUNS)), "smoke", results=tmp_path / "results", work=tmp_path / "runs")
    assert [outcome for _, outcome in grid.run(grid.cells, torch.device("cpu"), progress=False)] == ["done", "done"]
    (first, first_seed), (again, again_seed) = started
    assert first == again and (first_seed, again_seed) == (0, 3)
    assert [grid.read(cell)["finetune"]["seed"] for cell in grid.cells] == [0, 3]


BF16 = '''
from ibprune_lib.harness.grid import UNTRAINED, Cell

def cells(scale):
    return [Cell("resnet20", weights=UNTRAINED, method="l1", target_flops=0.5, finetune_epochs=1,
                 finetune_precision="bf16")]
'''


@pytest.mark.needs_data
def test_a_bf16_cell_fine_tunes_in_bf16_where_the_hardware_has_it_and_is_not_run_elsewhere(tmp_path, monkeypatch):
    precisions = []
    fit = runner.fit
    monkeypatch.setattr(runner, "fit", lambda model, data, config, **kwargs: precisions.append(
        config.precision) or fit(model, data, config, **kwargs))
    monkeypatch.setattr(cell_module, "has_fast_bf16", lambda device: False)
    grid = Grid(str(write_table(tmp_path, BF16)), "smoke", results=tmp_path / "results", work=tmp_path / "runs")
    (cell,) = grid.cells
    missing = "needs a CPU with AVX512-BF16 or AMX, or --device cuda (bf16 fine-tuning)"
    assert grid.run(grid.cells, torch.device("cpu"), progress=False) == [(cell, f"{NOT_RUN_HERE}: {missing}")]
    assert grid.state(cell) == {"state": NOT_RUN_HERE, "detail": missing} and not precisions
    monkeypatch.setattr(cell_module, "has_fast_bf16", lambda device: True)
    assert grid.run(grid.cells, torch.device("cpu"), progress=False) == [(cell, "done")]
    result = grid.read(cell)
    assert precisions == ["bf16"] and result["finetune"]["precision"] == "bf16"
    assert result["protocol"]["finetune"]["precision"] == "bf16"  # what ran, not the scale's recipe (fp32)
    assert "fp32" not in result["protocol"]["note"] and result["protocol"]["threads"] == torch.get_num_threads()
    with pytest.raises(ValueError, match="finetune_precision must be None or one of fp32, bf16, fp16, got 'fp8'"):
        replace(cell, finetune_precision="fp8").check()


def test_the_ablations_smoke_cell_regresses_raw_maps_and_fine_tunes_for_its_own_epochs(tmp_path, shared_weights):
    done = run_cli("experiments", "run", "ablations", *grid_args(Path("ablations.py"), tmp_path)[1:])
    assert done.returncode == 0, done.stderr
    (result_file,) = (tmp_path / "results" / "smoke" / "ablations").glob("*.json")
    result = json.loads(result_file.read_text())
    assert result["cell"]["use_gram"] is False and result["cell"]["method"] == "stlp"
    assert result["finetune"]["epochs"] == 1 == len(result["finetune"]["history"])
    assert result["protocol"]["finetune"]["epochs"] == 1  # the cell's own epochs, not the scale's recipe
    pruned = [layer for seed in result["seeds"] for layer in seed["layers"] if layer["kept"] < layer["channels"]]
    assert pruned and all(layer["n_groups"] > 0 and layer["n_edges"] is None and layer["seconds"] > 0
                          for layer in pruned)  # sTLP-IB's tree, and which layer took the time  # fmt: skip


def test_the_study_smoke_cell_passes_its_option_and_stops_after_recalibration(tmp_path, shared_weights, monkeypatch):
    import ibprune_lib.selection

    calls, pools = [], []
    knn_graph = ibprune_lib.selection.knn_graph_from_correlation
    monkeypatch.setattr(ibprune_lib.selection, "knn_graph_from_correlation",
                        lambda R, k: calls.append(k) or knn_graph(R, k))
    draw, recalibrate = runner.draw_calibration, runner.recalibrate_batchnorm
    monkeypatch.setattr(runner, "draw_calibration",
                        lambda data, *a, **kw: pools.append(len(data.x_train)) or draw(data, *a, **kw))
    monkeypatch.setattr(runner, "recalibrate_batchnorm",
                        lambda model, images, *a, **kw: pools.append(len(images)) or recalibrate(model, images, *a, **kw))
    grid = Grid("study", "smoke", results=tmp_path / "results", work=tmp_path / "runs")
    (outcome,) = grid.run(grid.cells, torch.device("cpu"), progress=False)
    assert grid.cells[0].validation == 5000 and pools == [45000, 45000]  # neither draws from the validation split
    validation = grid.read(grid.cells[0])["stages"]
    assert validation["validation_images"] == 5000 and 0 < validation["recalibrated_validation"]["mean"] <= 100
    assert outcome[1] == "done" and calls and set(calls) == {4}
    result = grid.read(grid.cells[0])
    assert result["stages"]["finetuned"] is None
    assert result["finetune"] == {"epochs": 0, "history": [], "wall_seconds": 0.0}  # no seed or precision: none ran
    assert result["protocol"]["finetune"] == {"epochs": 0} and "no fine-tuning" in result["protocol"]["note"]
    assert result["cell"]["options"] == [["knn", 4]] and "not fine-tuned" in grid.state(grid.cells[0])["detail"]
    assert result["cell"]["selection_settings"] == {"kernel": "laplacian", "knn": 4}
    with pytest.raises(ValueError, match="unknown selection setting 'tau'"):
        Cell("resnet56", weights="w.th", method="sglp", target_flops=0.5, options=(("tau", 0.7),)).check()


def test_a_killed_runner_resumes_its_fine_tuning_and_ends_as_an_uninterrupted_one(tmp_path, shared_weights):
    table = write_table(tmp_path)
    reference = run_cli("experiments", "run", *grid_args(table, tmp_path / "reference"))
    assert reference.returncode == 0, reference.stderr

    root = tmp_path / "killed"
    cell = load_table(str(table), "smoke")[0]
    checkpoint = root / "runs" / "smoke" / "tiny" / cell.id / "finetune.pt"
    runner = subprocess.Popen([sys.executable, "-m", "ibprune_lib", "experiments", "run", *grid_args(table, root)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not checkpoint.is_file() and runner.poll() is None:
        time.sleep(0.01)
    runner.send_signal(signal.SIGKILL)
    assert runner.wait() == -signal.SIGKILL, "the runner finished before it could be killed mid fine-tuning"
    assert torch.load(checkpoint, weights_only=False)["epoch"] == 1
    assert not (root / "results" / "smoke" / "tiny" / f"{cell.id}.json").exists()

    status = run_cli("experiments", "status", *grid_args(table, root)[:-1])
    assert "to do" in status.stdout and "fine-tuning epoch 1 done" in status.stdout
    assert "compute left" in status.stdout and "not timed yet" not in status.stdout  # timed by its own epoch
    resumed = run_cli("experiments", "run", *grid_args(table, root))
    assert resumed.returncode == 0, resumed.stderr
    read = lambda r: json.loads((r / "results" / "smoke" / "tiny" / f"{cell.id}.json").read_text())  # noqa: E731
    assert comparable(read(root)) == comparable(read(tmp_path / "reference"))
    done_with = root / "runs" / "smoke" / "tiny"  # the checkpoint and the lock go, the networks stay for a look
    assert sorted(p.name for p in done_with.iterdir()) == [cell.id]
    assert sorted(p.name for p in (done_with / cell.id).iterdir()) == ["finetuned.pt", "pruned.pt", "stages.json"]
    again = run_cli("experiments", "run", *grid_args(table, root))
    assert again.returncode == 0 and "0 done, 1 skipped" in again.stdout


@pytest.mark.needs_data
def test_a_cell_held_by_another_runner_is_skipped_and_shown_running(tmp_path):
    grid = Grid(str(write_table(tmp_path)), "smoke", results=tmp_path / "results", work=tmp_path / "runs")
    cell = grid.cells[0]
    held = _try_lock(grid._lock_path(cell))
    try:
        assert grid.state(cell)["state"] == "running"
        assert grid.run([cell], torch.device("cpu"), progress=False) == [(cell, "skipped (running)")]
    finally:
        os.close(held)
    assert grid.state(cell)["state"] == "to do"


def test_a_failing_cell_is_recorded_and_the_grid_goes_on(tmp_path, shared_weights):
    table = write_table(tmp_path, TABLE.replace('"resnet56", weights', '"resnet20", weights'))  # wrong weights
    grid = Grid(str(table), "smoke", results=tmp_path / "results", work=tmp_path / "runs")
    (outcome,) = grid.run(grid.cells, torch.device("cpu"), progress=False)
    assert outcome[1].startswith("failed: ValueError") and "does not fit" in outcome[1]
    state = grid.state(grid.cells[0])
    assert state["state"] == "failed" and "does not fit" in state["detail"]
    result = run_cli("experiments", "run", *grid_args(table, tmp_path))
    assert result.returncode == 1 and "0 done, 0 skipped, 1 failed" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["run", "no_such_table"], "unknown table 'no_such_table': choose one of"),
    (["run", "table1", "--cell", "nope"], "unknown --cell 'nope'"),
    (["run", "table1", "--device", "cuda:7"], "--device cuda:7: this machine has"),
    (["run", "table1", "--device", "tpu"], "--device 'tpu'"),
    (["run", "table1", "--until", "soon"], "--until 'soon' is not a time: give HH:MM (the next time the clock"),
    (["run", "table1", "--until", "2020-01-01T08:00"], "--until '2020-01-01T08:00' is already past (now 20"),
    (["status", "table1", "--threads", "0"], "'0': give the number of torch threads, an int >= 1"),
])
def test_bad_input_is_one_line_before_any_work(tmp_path, args, message):
    result = run_cli("experiments", *args, "--scale", "smoke", "--results", str(tmp_path / "r"),
                     "--work", str(tmp_path / "w"))
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_missing_weights_and_unwritable_results_are_refused(tmp_path):
    table = write_table(tmp_path, TABLE.replace("resnet56-4bfd9763.th", "missing.th"))
    result = run_cli("experiments", "run", *grid_args(table, tmp_path))
    assert result.returncode == 2 and "no weights at" in result.stderr and "IBPRUNE_WEIGHTS" in result.stderr
    (tmp_path / "file").write_text("")
    result = run_cli("experiments", "run", str(write_table(tmp_path)), "--scale", "smoke",
                     "--results", str(tmp_path / "file"), "--work", str(tmp_path / "w"))
    assert result.returncode == 2 and "--results folder" in result.stderr and "not writable" in result.stderr


@pytest.mark.slow
def test_a_reconstructing_cell_refits_the_consumers_and_records_each_ones_error(tmp_path, shared_weights):
    grid = Grid("beyond", "smoke", results=tmp_path / "results", work=tmp_path / "runs")
    (cell,) = grid.cells
    assert cell.reconstruct and "reconstruct" in cell.settings()
    assert replace(cell, reconstruct=False).id != cell.id
    assert [outcome for _, outcome in grid.run(grid.cells, torch.device("cpu"), progress=False)] == ["done"]
    (record,) = grid.read(cell)["seeds"]
    errors = record["reconstruction"]
    assert errors and all(e["error_after"] < e["error_before"] for e in errors.values())
