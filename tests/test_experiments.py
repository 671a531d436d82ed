"""The experiment grid: cell ids, locking, failure, bad input, and a runner killed mid fine-tuning."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import torch

from ibprune_lib import experiments
from ibprune_lib.cli import parse_until
from ibprune_lib.counting import count
from ibprune_lib.data import NUM_CLASSES
from ibprune_lib.experiments import (
    NOT_RUN_HERE,
    UNTRAINED,
    Cell,
    Grid,
    _starting_model,
    _try_lock,
    _unpruned_top1,
    distinguishing_settings,
    expected_macs_kept,
    load_table,
    table_names,
)
from ibprune_lib.models import get_model, input_size
from ibprune_lib.provenance import REPO_ROOT, cpu_model
from ibprune_lib.pruning.budget import sliced_copy, target_range
from ibprune_lib.pruning.layers import survey_layers
from ibprune_lib.selection import PRESETS, preset_settings
from ibprune_lib.train import has_fast_bf16, state_fingerprint

TABLE = '''
from ibprune_lib.experiments import Cell

def cells(scale):
    return [Cell("resnet56", weights="weights:resnet56-4bfd9763.th", method="l1", target_flops=0.6)]
'''


def write_table(folder: Path, text: str = TABLE, name: str = "tiny") -> Path:
    path = folder / f"{name}.py"
    path.write_text(text)
    return path


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "ibprune_lib", *args], capture_output=True, text=True, **kwargs)


def grid_args(table: Path, root: Path) -> list[str]:
    return [str(table), "--scale", "smoke", "--results", str(root / "results"), "--work", str(root / "runs"),
            "--no-progress"]


def comparable(result: dict) -> dict:
    """What must not change between an interrupted and an uninterrupted run (times and provenance may)."""
    history = [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in result["finetune"]["history"]]
    seeds = [{k: v for k, v in seed.items() if k not in ("seconds", "selection_seconds", "layers")} | {
        "layers": [{k: v for k, v in layer.items() if k != "seconds"} for layer in seed["layers"]]}
        for seed in result["seeds"]]  # fmt: skip
    return {"stages": result["stages"], "counts": result["counts"], "history": history, "seeds": seeds}


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
    assert paper.selection_settings() == {"kernel": "gaussian"}
    tuned = Cell("vgg16", weights="w.pt", method="stlp", target_params=0.15, preset="tuned",
                 options=(("linkage", "complete"),))
    assert tuned.selection_settings() == {"kernel": "laplacian", **PRESETS["tuned"]["stlp"], "linkage": "complete"}
    unnamed = Cell("vgg16", weights="w.pt", method="lasso", target_params=0.15, preset="tuned")
    assert unnamed.selection_settings() == {"kernel": "laplacian"}  # a method the preset does not name
    first_id = tuned.id
    monkeypatch.setitem(PRESETS, "tuned", {"stlp": {"kernel": "sigmoid"}})  # a revised preset: its cells run again
    assert tuned.id != first_id and tuned.selection_settings()["kernel"] == "sigmoid"


def test_the_unpruned_top1_is_evaluated_once_per_network_and_test_set(tmp_path, monkeypatch):
    evaluated = []
    monkeypatch.setattr(experiments, "evaluate", lambda model, x, y, name, progress: evaluated.append(len(x)) or 12.5)
    cell = Cell("resnet20", weights=UNTRAINED, method="l1", target_flops=0.5)
    model = torch.nn.Conv2d(3, 4, 1)
    x, y = torch.zeros(6, 3, 8, 8, dtype=torch.uint8), torch.zeros(6, dtype=torch.long)
    for n in (6, 6, 4, 4):
        assert _unpruned_top1(cell, model, "resnet20", x[:n], y[:n], tmp_path) == 12.5
    assert evaluated == [6, 4] and len(list(tmp_path.glob("untrained-resnet20-cifar10-*-cpu.json"))) == 2
    _unpruned_top1(cell, model, "resnet20", x, y, None)
    assert evaluated == [6, 4, 6]  # no memo: evaluated every time


TWO_RUNS = '''
from ibprune_lib.experiments import UNTRAINED, Cell

def cells(scale):
    cell = dict(weights=UNTRAINED, method="l1", target_flops=0.5, finetune_epochs=1)
    return [Cell("resnet20", seeds=(0, 1), **cell), Cell("resnet20", seeds=(0,), finetune_seed=3, **cell)]
'''


def test_a_second_fine_tuning_run_fine_tunes_the_same_pruned_network_in_another_order(tmp_path, monkeypatch):
    started = []
    fit = experiments.fit
    monkeypatch.setattr(experiments, "fit", lambda model, data, config, **kwargs: started.append(
        (state_fingerprint(model), config.seed)) or fit(model, data, config, **kwargs))
    grid = Grid(str(write_table(tmp_path, TWO_RUNS)), "smoke", results=tmp_path / "results", work=tmp_path / "runs")
    assert [outcome for _, outcome in grid.run(grid.cells, torch.device("cpu"), progress=False)] == ["done", "done"]
    (first, first_seed), (again, again_seed) = started
    assert first == again and (first_seed, again_seed) == (0, 3)
    assert [grid.read(cell)["finetune"]["seed"] for cell in grid.cells] == [0, 3]


BF16 = '''
from ibprune_lib.experiments import UNTRAINED, Cell

def cells(scale):
    return [Cell("resnet20", weights=UNTRAINED, method="l1", target_flops=0.5, finetune_epochs=1,
                 finetune_precision="bf16")]
'''


def test_a_bf16_cell_fine_tunes_in_bf16_where_the_hardware_has_it_and_is_not_run_elsewhere(tmp_path, monkeypatch):
    precisions = []
    fit = experiments.fit
    monkeypatch.setattr(experiments, "fit", lambda model, data, config, **kwargs: precisions.append(
        config.precision) or fit(model, data, config, **kwargs))
    monkeypatch.setattr(experiments, "has_fast_bf16", lambda device: False)
    grid = Grid(str(write_table(tmp_path, BF16)), "smoke", results=tmp_path / "results", work=tmp_path / "runs")
    (cell,) = grid.cells
    missing = "needs a CPU with AVX512-BF16 or AMX, or --device cuda (bf16 fine-tuning)"
    assert grid.run(grid.cells, torch.device("cpu"), progress=False) == [(cell, f"{NOT_RUN_HERE}: {missing}")]
    assert grid.state(cell) == {"state": NOT_RUN_HERE, "detail": missing} and not precisions
    monkeypatch.setattr(experiments, "has_fast_bf16", lambda device: True)
    assert grid.run(grid.cells, torch.device("cpu"), progress=False) == [(cell, "done")]
    result = grid.read(cell)
    assert precisions == ["bf16"] and result["finetune"]["precision"] == "bf16"
    assert result["protocol"]["finetune"]["precision"] == "bf16"  # what ran, not the scale's recipe (fp32)
    assert "fp32" not in result["protocol"]["note"] and result["protocol"]["threads"] == torch.get_num_threads()
    with pytest.raises(ValueError, match="finetune_precision must be None or one of fp32, bf16, got 'fp16'"):
        replace(cell, finetune_precision="fp16").check()


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
    calibration_batch, recalibrate = experiments.calibration_batch, experiments.recalibrate_batchnorm
    monkeypatch.setattr(experiments, "calibration_batch",
                        lambda images, *a, **kw: pools.append(len(images)) or calibration_batch(images, *a, **kw))
    monkeypatch.setattr(experiments, "recalibrate_batchnorm",
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
    with pytest.raises(ValueError, match="unknown option 'tau'"):
        Cell("resnet56", weights="w.th", method="sglp", target_flops=0.5, options=(("tau", 0.7),)).check()


def test_ablations_sweep_one_setting_at_a_time_from_table1s_vgg16_cell():
    cells = load_table("ablations", "cpu")
    base = next(c for c in load_table("table1", "cpu") if c.model == "vgg16" and c.method == "sglp")
    varied = {key for c in cells if c.method == "sglp" for key in ("kernel", "batch_size", "skip_first", "use_gram",
              "direction", "target_params", "target_flops") if getattr(c, key) != getattr(base, key)}  # fmt: skip
    assert varied == {"kernel", "batch_size", "skip_first", "use_gram", "direction", "target_params", "target_flops"}
    assert all(c.finetune_epochs == 3 and c.finetune_precision == "bf16" and c.model == "vgg16" for c in cells)
    assert all(sum(getattr(c, key) != getattr(base, key) for key in ("kernel", "batch_size", "skip_first", "use_gram",
               "direction")) <= 1 for c in cells)  # fmt: skip


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
    (first, name, size), (second, _, _) = _starting_model(cell), _starting_model(cell)
    assert name == "resnet20" and size == (3, 32, 32) and not first.training
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


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


def test_until_as_a_clock_time_is_the_next_time_the_clock_shows_it():
    evening = datetime(2026, 12, 6, 22, 4, 30)
    assert parse_until("23:30", now=evening) == datetime(2026, 12, 6, 23, 30)
    assert parse_until("00:25", now=evening) == datetime(2026, 12, 7, 0, 25)  # after midnight
    assert parse_until("22:04", now=evening) == datetime(2026, 12, 7, 22, 4)  # just past
    assert parse_until("2026-12-07T00:25", now=evening) == datetime(2026, 12, 7, 0, 25)
    with pytest.raises(ValueError, match="already past"):
        parse_until("2026-12-06T21:00", now=evening)


def test_a_cell_expected_to_end_after_until_is_left_for_a_later_run(tmp_path, shared_weights):
    weights = 'weights="weights:resnet56-4bfd9763.th"'
    more = (f'Cell("resnet56", {weights}, method="fpgm", target_flops=0.6), '
            'Cell("resnet20", weights="weights:resnet20-12fca82f.th", method="random", target_flops=0.6)]')
    text = TABLE.replace('method="l1", target_flops=0.6)]', f'method="l1", target_flops=0.6), {more}')
    table = write_table(tmp_path, text)
    untimed = run_cli("experiments", "run", *grid_args(table, tmp_path / "fresh"), "--until", "2099-01-01T00:00")
    assert untimed.returncode == 0 and "0 done, 3 skipped, 0 failed" in untimed.stdout  # nothing has run: none timed
    assert "nothing has timed yet, as --until cannot hold for them: run them without --until" in untimed.stdout
    grid = Grid(str(table), "smoke", results=tmp_path / "results", work=tmp_path / "runs")
    done, same_kind, shorter = grid.cells
    grid.result_path(done).parent.mkdir(parents=True)
    grid.result_path(done).write_text(json.dumps(sized({"seconds": {"total": 3600.0, "finetune": 3000.0}})))
    assert grid.expected_seconds(same_kind) == 3600.0 and grid.expected_seconds(shorter) is None  # another network
    states = {done.id: {"state": "done"}, **{cell.id: grid.state(cell) for cell in (same_kind, shorter)}}
    assert states[same_kind.id]["detail"] == "not started; about 60 min to go"
    assert states[shorter.id]["detail"] == "not started"  # nothing has timed it
    assert experiments.compute_left(grid, states) == (3600.0, 1)
    held = [_try_lock(grid._lock_path(cell)) for cell in (same_kind, shorter)]  # so that nothing actually runs
    try:
        soon = grid.run([same_kind, shorter], torch.device("cpu"), progress=False, until=time.time() + 60)
        assert soon == [(same_kind, "skipped (would end after --until)"),
                        (shorter, "skipped (not timed yet: run it without --until)")]  # --until cannot hold for it
        later = grid.run([same_kind], torch.device("cpu"), progress=False, until=time.time() + 7200)
        assert later == [(same_kind, "skipped (running)")]  # it fits: the runner goes on to take its lock
        assert grid.run([shorter], torch.device("cpu"), progress=False) == [(shorter, "skipped (running)")]
        running = {**states, **{cell.id: {**states[cell.id], "state": "running"} for cell in (same_kind, shorter)}}
        assert experiments.status_line(grid, running).endswith(  # two cells held: two runners share what is left
            "1 done, 2 running, 0 failed, 0 to do; about 1.0 h of compute left at the measured rate (about 0.5 h of "
            "wall time with the 2 runners on it now), plus 1 cell(s) not timed yet (nothing done at this scale has "
            "timed their network, solver and precision)")
    finally:
        for fd in held:
            os.close(fd)


def sized(record: dict, macs_kept: float = 0.6) -> dict:
    """``record`` with the counts of a cell that kept ``macs_kept`` of its MACs (0.6: as much as TABLE's cells)."""
    return record | {"counts": {"macs_before": 1000, "macs_after": round(1000 * macs_kept)}}


def done_record(model: str, total: float, finetune: float, epochs: int, solver: str | None = None,
                precision: str = "fp32", old: bool = False, hardware: dict | None = None,
                macs_kept: float = 0.6) -> dict:
    """What timing reads of a done cell's result; ``old``: one from before the selection settings and the
    fine-tuning precision were recorded (its options and its protocol's precision tell them); ``hardware``: the
    machine its provenance names (none when None); ``macs_kept``: the share of its MACs it kept."""
    options = [] if solver is None else [["solver", solver]]
    record = sized({"cell": {"model": model, "options": options, "selection_settings": dict(options)},
                    "protocol": {"finetune": {"precision": "fp32"}}, "seconds": {"total": total, "finetune": finetune},
                    "finetune": {"history": [{}] * epochs, "precision": precision if epochs else None}}, macs_kept)
    if hardware is not None:
        record["provenance"] = {"hardware": hardware}
    if old:
        del record["cell"]["selection_settings"], record["finetune"]["precision"]
    return record


def test_a_tables_first_cells_are_timed_by_the_other_tables_cells_of_their_kind(tmp_path):
    weights = 'weights="weights:resnet56-4bfd9763.th"'
    more = [f'Cell("resnet56", {weights}, method="fpgm", target_flops=0.6, finetune_epochs=0)',
            f'Cell("resnet56", {weights}, method="sglp", target_flops=0.6, finetune_epochs=0, '
            'options=(("solver", "spg"),))',
            f'Cell("resnet56", {weights}, method="random", target_flops=0.6, finetune_precision="bf16")']
    text = TABLE.replace('method="l1", target_flops=0.6)]', f'method="l1", target_flops=0.6), {", ".join(more)}]')
    grid = Grid(str(write_table(tmp_path, text)), "smoke", results=tmp_path / "results", work=tmp_path / "runs")
    finetuned, not_finetuned, smoothed, in_bf16 = grid.cells
    assert all(grid.expected_seconds(cell) is None for cell in grid.cells)
    other_table = tmp_path / "results" / "smoke" / "table1"
    other_table.mkdir(parents=True)
    for name, record in [("resnet56-sglp-00000000", done_record("resnet56", 1000.0, 800.0, 4, old=True)),
                         ("resnet56-stlp-00000000", done_record("resnet56", 150.0, 0.0, 0)),  # selection only
                         ("resnet56-l1-00000000", done_record("resnet56", 500.0, 400.0, 4, precision="bf16")),
                         ("resnet56-stlp-11111111", done_record("resnet56", 5000.0, 0.0, 0, solver="spg", old=True)),
                         ("resnet20-l1-00000000", done_record("resnet20", 9999.0, 9000.0, 1))]:  # another network
        (other_table / f"{name}.json").write_text(json.dumps(record))
    before_finetuning = (200.0 + 150.0 + 100.0) / 3  # every exact-solver cell, whatever its fine-tuning precision
    epochs = grid.protocol.finetune_epochs(finetuned)
    assert grid.expected_seconds(finetuned) == before_finetuning + epochs * 200.0  # fp32 epochs: 200 s
    assert grid.expected_seconds(in_bf16) == before_finetuning + epochs * 100.0  # bf16 epochs: 100 s
    assert grid.expected_seconds(not_finetuned) == before_finetuning
    assert grid.expected_seconds(smoothed) == 5000.0  # SPG's selection, timed by SPG's cells alone
    grid.result_path(not_finetuned).parent.mkdir(parents=True)  # its own table's done cells count among them
    grid.result_path(not_finetuned).write_text(json.dumps(done_record("resnet56", 60.0, 0.0, 0)))
    assert grid.expected_seconds(finetuned) == (200.0 + 150.0 + 100.0 + 60.0) / 4 + epochs * 200.0
    (other_table / "resnet56-sglp-00000000.json").unlink()
    assert grid.expected_seconds(finetuned) is None  # no fp32 fine-tuned cell of its network times its epochs
    assert grid.expected_seconds(in_bf16) is not None
    (other_table / "resnet56-stlp-11111111.json").unlink()
    assert grid.expected_seconds(smoothed) is None  # the exact solver's cells do not time SPG's


def two_cell_grid(tmp_path: Path) -> Grid:
    """A smoke-scale grid of two ResNet-56 cells of one timing kind: TABLE's L1 cell, then an FPGM one."""
    weights = 'weights="weights:resnet56-4bfd9763.th"'
    text = TABLE.replace('method="l1", target_flops=0.6)]',
                         f'method="l1", target_flops=0.6), Cell("resnet56", {weights}, method="fpgm", target_flops=0.6)]')
    return Grid(str(write_table(tmp_path, text)), "smoke", results=tmp_path / "results", work=tmp_path / "runs")


def test_cells_are_timed_by_done_cells_of_this_cpu_and_thread_count_first(tmp_path):
    cell, done = (grid := two_cell_grid(tmp_path)).cells
    epochs = grid.protocol.finetune_epochs(cell)
    here = {"cpu": cpu_model(), "torch_threads": torch.get_num_threads()}
    other_table = tmp_path / "results" / "smoke" / "table1"
    other_table.mkdir(parents=True)
    for name, total, finetune, hardware in [
        ("resnet56-l1-00000000", 1000.0, 800.0, here),
        ("resnet56-l1-11111111", 3000.0, 2400.0, here | {"torch_threads": here["torch_threads"] + 1}),
        ("resnet56-l1-22222222", 9000.0, 8000.0, here | {"cpu": "another CPU"}),
    ]:
        record = done_record("resnet56", total, finetune, 4, hardware=hardware)
        (other_table / f"{name}.json").write_text(json.dumps(record))
    assert grid.expected_seconds(cell) == 200.0 + epochs * 200.0  # this CPU, these threads
    (other_table / "resnet56-l1-00000000.json").unlink()
    assert grid.expected_seconds(cell) == 600.0 + epochs * 600.0  # this CPU, other threads
    (other_table / "resnet56-l1-11111111.json").unlink()
    assert grid.expected_seconds(cell) == 1000.0 + epochs * 2000.0  # another CPU: all there is
    grid.result_path(done).parent.mkdir(parents=True)  # a done cell of its own grid and kind comes first
    grid.result_path(done).write_text(json.dumps(done_record("resnet56", 4000.0, 3000.0, epochs, hardware=here)))
    assert grid.expected_seconds(cell) == 4000.0


def test_cells_are_timed_by_the_done_cells_nearest_their_size_scaled_to_it(tmp_path):
    weights = 'weights="weights:resnet56-4bfd9763.th"'
    more = ", ".join(f'Cell("resnet56", {weights}, method="{method}", target_flops={keep})'
                     for method, keep in (("fpgm", 0.3), ("random", 0.9), ("random", 0.35)))  # fmt: skip
    text = TABLE.replace('method="l1", target_flops=0.6)]', f'method="l1", target_flops=0.6), {more}]')
    grid = Grid(str(write_table(tmp_path, text)), "smoke", results=tmp_path / "results", work=tmp_path / "runs")
    at_60, at_30, at_90, at_35 = grid.cells
    epochs = grid.protocol.finetune_epochs(at_90)
    grid.result_path(at_60).parent.mkdir(parents=True)
    for cell, macs_kept, total, finetune in ((at_60, 0.6, 1000.0, 600.0), (at_30, 0.3, 500.0, 200.0)):
        record = done_record("resnet56", total, finetune, epochs, macs_kept=macs_kept)
        grid.result_path(cell).write_text(json.dumps(record))
    assert grid.expected_seconds(at_90) == pytest.approx(400.0 + 600.0 * 0.9 / 0.6)  # the 60% cell alone
    assert grid.expected_seconds(at_35) == pytest.approx(300.0 + 200.0 * 0.35 / 0.3)  # the 30% cell alone
    other_table = tmp_path / "results" / "smoke" / "table1"  # the same cells done by another table time them alike
    other_table.mkdir()
    for cell in (at_60, at_30):
        grid.result_path(cell).rename(other_table / grid.result_path(cell).name)
    assert grid.expected_seconds(at_90) == pytest.approx(400.0 + 600.0 * 0.9 / 0.6)
    assert grid.expected_seconds(at_35) == pytest.approx(300.0 + 200.0 * 0.35 / 0.3)


@functools.cache
def least_kept(model: str, num_classes: int, skip_first: int) -> dict[str, float]:
    """The shares of the parameters and MACs a network keeps with one channel left in each pruned layer."""
    network, size = get_model(model, num_classes).eval(), input_size(model)
    layers = survey_layers(network, size, skip_first).prunable
    full, least = count(network, size), count(sliced_copy(network, layers, [1] * len(layers)), size)
    return {"params": least.params / full.params, "macs": least.macs / full.macs}


@pytest.mark.parametrize("table", table_names())
def test_every_declared_budget_is_reachable_past_the_cells_whole_layers(table):
    # an unreachable one fails only when its cell runs (70% and 80% of VGG-16's FLOPs past four whole layers did)
    for cell in load_table(table, "cpu"):
        metric, target = (("macs", cell.target_flops) if cell.target_flops is not None
                          else ("params", cell.target_params))
        floor = least_kept(cell.model, NUM_CLASSES[cell.dataset], cell.skip_first)[metric]
        assert target_range(target)[1] >= floor, f"{cell.id} keeps at least {floor:.3f} of the {metric}"


def test_a_parameters_target_keeps_the_macs_the_committed_cells_kept():
    grid = Grid("ablations", "cpu")
    done = [(cell, result) for cell in grid.cells
            if cell.target_params is not None and cell.widths == "uniform" and (result := grid.read(cell))]
    assert len({cell.target_params for cell, _ in done}) >= 3  # the ratio sweep's cells, 10% to 60% kept at least
    for cell, result in done:
        counts = result["counts"]
        assert expected_macs_kept(cell) == pytest.approx(counts["macs_after"] / counts["macs_before"], abs=1e-9)


def test_status_times_the_cells_for_runners_of_the_threads_it_is_given(tmp_path):
    grid = two_cell_grid(tmp_path)
    other_table = tmp_path / "results" / "smoke" / "table1"
    other_table.mkdir(parents=True)
    for threads, total in ((1, 1800.0), (2, 5400.0)):  # fine-tuning epochs that took no time: the totals are all
        record = done_record("resnet56", total, 0.0, 4, hardware={"cpu": cpu_model(), "torch_threads": threads})
        (other_table / f"resnet56-l1-0000000{threads}.json").write_text(json.dumps(record))
    for threads, minutes in (("1", 30), ("2", 90)):
        status = run_cli("experiments", "status", *grid_args(Path(grid.table), tmp_path), "--threads", threads)
        assert status.returncode == 0 and f"not started; about {minutes} min to go" in status.stdout


def test_a_half_run_cell_is_expected_to_need_only_what_is_left_of_it(tmp_path):
    done, half_run = (grid := two_cell_grid(tmp_path)).cells
    assert grid.expected_seconds(half_run) is None
    grid.result_path(done).parent.mkdir(parents=True)
    grid.result_path(done).write_text(json.dumps(sized({"seconds": {"total": 3600.0, "finetune": 3000.0}})))
    work = grid.work_dir(half_run)
    work.mkdir(parents=True)
    (work / "stages.json").write_text(json.dumps({"seconds": {"unpruned_eval": 100.0}, "seeds": [{"seconds": 200.0}]}))
    assert grid.expected_seconds(half_run) == 300.0 + 3000.0  # the stages before fine-tuning less what they took
    epochs = grid.protocol.finetune_epochs(half_run)
    torch.save({"epoch": 1, "wall_seconds": 50.0}, work / "finetune.pt")
    assert grid.expected_seconds(half_run) == (epochs - 1) * 50.0  # its own epochs, whatever the done cells took
    (work / "stages.json").unlink()
    grid.result_path(done).unlink()
    assert grid.expected_seconds(half_run) == (epochs - 1) * 50.0  # a kind not measured yet, timed by itself


def test_a_failing_cell_is_recorded_and_the_grid_goes_on(tmp_path, shared_weights):
    table = write_table(tmp_path, TABLE.replace('"resnet56", weights', '"resnet20", weights'))  # wrong weights
    grid = Grid(str(table), "smoke", results=tmp_path / "results", work=tmp_path / "runs")
    (outcome,) = grid.run(grid.cells, torch.device("cpu"), progress=False)
    assert outcome[1].startswith("failed: ValueError") and "does not fit" in outcome[1]
    state = grid.state(grid.cells[0])
    assert state["state"] == "failed" and "does not fit" in state["detail"]
    result = run_cli("experiments", "run", *grid_args(table, tmp_path))
    assert result.returncode == 1 and "0 done, 0 skipped, 1 failed" in result.stdout


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


def test_missing_weights_and_unwritable_results_are_refused(tmp_path):
    table = write_table(tmp_path, TABLE.replace("resnet56-4bfd9763.th", "missing.th"))
    result = run_cli("experiments", "run", *grid_args(table, tmp_path))
    assert result.returncode == 2 and "no weights at" in result.stderr and "IBPRUNE_WEIGHTS" in result.stderr
    (tmp_path / "file").write_text("")
    result = run_cli("experiments", "run", str(write_table(tmp_path)), "--scale", "smoke",
                     "--results", str(tmp_path / "file"), "--work", str(tmp_path / "w"))
    assert result.returncode == 2 and "--results folder" in result.stderr and "not writable" in result.stderr


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


GRID_CPU = REPO_ROOT / "recipes" / "grid_cpu.sh"
GRID_CPU_THREADS = max(len(os.sched_getaffinity(0)) // 2, 1)  # a runner's, two runners on the cores nproc counts


@pytest.mark.parametrize("threads_asked", [None, "1"])
def test_grid_cpu_starts_one_single_thread_runner_per_core_over_the_tables(tmp_path, threads_asked):
    started, calls = _start_grid_cpu(tmp_path, "", threads=threads_asked)
    assert started.returncode == 0, started.stderr
    threads = threads_asked or GRID_CPU_THREADS
    run = "-m ibprune_lib experiments run {} --scale cpu --no-progress"
    assert sorted(calls) == sorted(
        [f"{threads} {run.format('table1')}"] * 2 + [f"{threads} {run.format('presets')}"] * 2
    )
    assert f"2 runner(s) of {threads} thread(s)" in started.stdout


@pytest.mark.parametrize("variable, value, message", [
    ("RUNNERS", "0", "RUNNERS=0: give a positive number of runners"),
    ("RUNNERS", "two", "RUNNERS=two: give a positive number of runners"),
    ("THREADS", "0", "THREADS=0: give a positive number of torch threads a runner"),
])
def test_grid_cpu_refuses_a_bad_runner_or_thread_count_in_one_line(tmp_path, variable, value, message):
    env = {**os.environ, "PYTHON": str(tmp_path / "never-run"), variable: value, "GRID_LOG": str(tmp_path / "log")}
    refused = subprocess.run(["bash", str(GRID_CPU)], env=env, capture_output=True, text=True)
    assert refused.returncode == 2
    assert refused.stderr.strip() == message
    assert not (tmp_path / "log").exists()


def _start_grid_cpu(tmp_path, until: str, resolved_as: str | None = None,
                    threads: str | None = None) -> tuple[subprocess.CompletedProcess, list]:
    """Run grid_cpu.sh's two runners over two tables with a stub python that records each runner's threads and
    arguments, resolving UNTIL with the real ``parse_until`` or as ``resolved_as``, THREADS as given (unset:
    None); returns the start and, once the runners are done, the calls."""
    calls = tmp_path / "calls"
    resolve = f'echo {resolved_as}; exit' if resolved_as else f'exec {sys.executable} "$@"'
    stub = tmp_path / "python"
    stub.write_text(f'#!/bin/sh\ncase "$1" in -c) {resolve};; esac\necho "$OMP_NUM_THREADS $*" >> {calls}\n')
    stub.chmod(0o755)
    env = {**os.environ, "PYTHON": str(stub), "RUNNERS": "2", "GRID_LOG": str(tmp_path / "grid.log"), "UNTIL": until}
    env.pop("THREADS", None)
    if threads:
        env["THREADS"] = threads
    started = subprocess.run(["bash", str(GRID_CPU), "table1", "presets"], env=env, capture_output=True, text=True)
    if started.returncode == 0:
        pids = [int(pid) for pid in re.search(r"pids ([\d ]+) \(", started.stdout).group(1).split()]
        deadline = time.time() + 30
        while time.time() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
            time.sleep(0.1)
    return started, calls.read_text().splitlines() if calls.is_file() else []


def test_grid_cpu_resolves_until_once_so_every_table_reads_the_same_moment(tmp_path):
    two_hours_ago = (datetime.now() - timedelta(hours=2)).strftime("%H:%M")  # next shown in 22 hours
    started, calls = _start_grid_cpu(tmp_path, two_hours_ago)
    assert started.returncode == 0, started.stderr
    moment = parse_until(two_hours_ago).isoformat(timespec="minutes")
    assert sorted(calls) == sorted(
        [f"{GRID_CPU_THREADS} -m ibprune_lib experiments run {table} --scale cpu --no-progress --until {moment}"
         for table in ("table1", "presets")] * 2)  # fmt: skip


def test_grid_cpu_starts_no_table_once_until_is_past(tmp_path):
    started, calls = _start_grid_cpu(tmp_path, "03:25", resolved_as="2026-01-01T00:00")
    assert started.returncode == 0, started.stderr
    assert calls == []


def test_grid_cpu_refuses_a_bad_until_in_one_line_before_starting_a_runner(tmp_path):
    started, calls = _start_grid_cpu(tmp_path, "25:99")
    assert started.returncode == 2
    assert started.stderr.strip().startswith("UNTIL '25:99' is not a time: give HH:MM")
    assert len(started.stderr.strip().splitlines()) == 1 and calls == []
    assert not (tmp_path / "grid.log").exists()


GOOGLENET_GPU = REPO_ROOT / "recipes" / "googlenet_gpu.sh"


def test_googlenet_gpu_trains_the_baseline_once_then_runs_only_googlenets_cells(tmp_path):
    repo = tmp_path / "repo"  # the recipe works from its checkout's root: a copy, so results/ here stays untouched
    (repo / "recipes").mkdir(parents=True)
    recipe = repo / "recipes" / GOOGLENET_GPU.name
    recipe.write_bytes(GOOGLENET_GPU.read_bytes())
    calls = tmp_path / "calls"
    stub = tmp_path / "python"  # records every call; `train` writes its two files, `list` is the real one
    stub.write_text(f"""#!/bin/sh
echo "$*" >> {calls}
case "$3 $4" in
  "train "*) out=$(echo "$*" | sed 's/.* --out //'); mkdir -p "$out"; echo w > "$out/googlenet.pt"; echo {{}} > "$out/log.json";;
  "experiments list") exec {sys.executable} "$@";;
esac
""")
    stub.chmod(0o755)
    env = {**os.environ, "PYTHON": str(stub), "UNTIL": ""}
    for _ in range(2):
        assert subprocess.run(["bash", str(recipe), "12"], env=env, capture_output=True, text=True).returncode == 0
    trains = [line for line in calls.read_text().splitlines() if " train " in line]
    runs = [line.split() for line in calls.read_text().splitlines() if "experiments run" in line]
    assert len(trains) == 1 and "--epochs 12" in trains[0] and "--device cuda" in trains[0]
    assert sorted(p.name for p in (repo / "results" / "cpu" / "baselines" / "googlenet").iterdir()) == [
        "googlenet.pt", "log.json"]
    googlenet = sorted(cell.id for cell in load_table("table1", "cpu") if cell.model == "googlenet")
    assert len(runs) == 2 and len(googlenet) == 8
    for run in runs:
        assert sorted(run[i + 1] for i, word in enumerate(run) if word == "--cell") == googlenet
        assert run[run.index("--device") + 1] == "cuda" and run[run.index("--scale") + 1] == "cpu"


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("EPOCHS", "-3", "EPOCHS=-3: give a positive number of training epochs"),
    ("SCALE", "smoke", "SCALE=smoke: choose cpu or paper (smoke needs no GPU)"),
])
def test_googlenet_gpu_refuses_bad_settings_in_one_line(tmp_path, variable, value, message):
    env = {**os.environ, "PYTHON": str(tmp_path / "never-run"), **({"SCALE": value} if variable == "SCALE" else {})}
    refused = subprocess.run(["bash", str(GOOGLENET_GPU), *([value] if variable == "EPOCHS" else [])], env=env,
                             capture_output=True, text=True)
    assert refused.returncode == 2 and refused.stderr.strip() == message
