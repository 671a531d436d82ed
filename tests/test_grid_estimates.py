"""How long cells still need: timed by the done cells of their kind, and --until."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path

import pytest
import torch

from ibprune_lib.cli import parse_until
from ibprune_lib.harness.grid import Grid, compute_left, expected_macs_kept, expected_seconds, status_line
from ibprune_lib.harness.grid.runner import _try_lock
from ibprune_lib.paths import REPO_ROOT
from ibprune_lib.provenance import cpu_model

from grid_helpers import TABLE, done_record, grid_args, run_cli, sized, two_cell_grid, write_table


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
    assert expected_seconds(grid, same_kind) == 3600.0 and expected_seconds(grid, shorter) is None  # another network
    states = {done.id: {"state": "done"}, **{cell.id: grid.state(cell) for cell in (same_kind, shorter)}}
    assert states[same_kind.id]["detail"] == "not started; about 60 min to go"
    assert states[shorter.id]["detail"] == "not started"  # nothing has timed it
    assert compute_left(grid, states) == (3600.0, 1)
    held = [_try_lock(grid._lock_path(cell)) for cell in (same_kind, shorter)]  # so that nothing actually runs
    try:
        soon = grid.run([same_kind, shorter], torch.device("cpu"), progress=False, until=time.time() + 60)
        assert soon == [(same_kind, "skipped (would end after --until)"),
                        (shorter, "skipped (not timed yet: run it without --until)")]  # --until cannot hold for it
        later = grid.run([same_kind], torch.device("cpu"), progress=False, until=time.time() + 7200)
        assert later == [(same_kind, "skipped (running)")]  # it fits: the runner goes on to take its lock
        assert grid.run([shorter], torch.device("cpu"), progress=False) == [(shorter, "skipped (running)")]
        running = {**states, **{cell.id: {**states[cell.id], "state": "running"} for cell in (same_kind, shorter)}}
        assert status_line(grid, running).endswith(  # two cells held: two runners share what is left
            "1 done, 2 running, 0 failed, 0 to do; about 1.0 h of compute left at the measured rate (about 0.5 h of "
            "wall time with the 2 runners on it now), plus 1 cell(s) not timed yet (nothing done at this scale has "
            "timed their network, solver and precision)")
    finally:
        for fd in held:
            os.close(fd)


def test_a_tables_first_cells_are_timed_by_the_other_tables_cells_of_their_kind(tmp_path):
    weights = 'weights="weights:resnet56-4bfd9763.th"'
    more = [f'Cell("resnet56", {weights}, method="fpgm", target_flops=0.6, finetune_epochs=0)',
            f'Cell("resnet56", {weights}, method="sglp", target_flops=0.6, finetune_epochs=0, '
            'options=(("solver", "spg"),))',
            f'Cell("resnet56", {weights}, method="random", target_flops=0.6, finetune_precision="bf16")']
    text = TABLE.replace('method="l1", target_flops=0.6)]', f'method="l1", target_flops=0.6), {", ".join(more)}]')
    grid = Grid(str(write_table(tmp_path, text)), "smoke", results=tmp_path / "results", work=tmp_path / "runs")
    finetuned, not_finetuned, smoothed, in_bf16 = grid.cells
    assert all(expected_seconds(grid, cell) is None for cell in grid.cells)
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
    assert expected_seconds(grid, finetuned) == before_finetuning + epochs * 200.0  # fp32 epochs: 200 s
    assert expected_seconds(grid, in_bf16) == before_finetuning + epochs * 100.0  # bf16 epochs: 100 s
    assert expected_seconds(grid, not_finetuned) == before_finetuning
    assert expected_seconds(grid, smoothed) == 5000.0  # SPG's selection, timed by SPG's cells alone
    grid.result_path(not_finetuned).parent.mkdir(parents=True)  # its own table's done cells count among them
    grid.result_path(not_finetuned).write_text(json.dumps(done_record("resnet56", 60.0, 0.0, 0)))
    assert expected_seconds(grid, finetuned) == (200.0 + 150.0 + 100.0 + 60.0) / 4 + epochs * 200.0
    (other_table / "resnet56-sglp-00000000.json").unlink()
    assert expected_seconds(grid, finetuned) is None  # no fp32 fine-tuned cell of its network times its epochs
    assert expected_seconds(grid, in_bf16) is not None
    (other_table / "resnet56-stlp-11111111.json").unlink()
    assert expected_seconds(grid, smoothed) is None  # the exact solver's cells do not time SPG's


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
    assert expected_seconds(grid, cell) == 200.0 + epochs * 200.0  # this CPU, these threads
    (other_table / "resnet56-l1-00000000.json").unlink()
    assert expected_seconds(grid, cell) == 600.0 + epochs * 600.0  # this CPU, other threads
    (other_table / "resnet56-l1-11111111.json").unlink()
    assert expected_seconds(grid, cell) == 1000.0 + epochs * 2000.0  # another CPU: all there is
    grid.result_path(done).parent.mkdir(parents=True)  # a done cell of its own grid and kind comes first
    grid.result_path(done).write_text(json.dumps(done_record("resnet56", 4000.0, 3000.0, epochs, hardware=here)))
    assert expected_seconds(grid, cell) == 4000.0


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
    assert expected_seconds(grid, at_90) == pytest.approx(400.0 + 600.0 * 0.9 / 0.6)  # the 60% cell alone
    assert expected_seconds(grid, at_35) == pytest.approx(300.0 + 200.0 * 0.35 / 0.3)  # the 30% cell alone
    other_table = tmp_path / "results" / "smoke" / "table1"  # the same cells done by another table time them alike
    other_table.mkdir()
    for cell in (at_60, at_30):
        grid.result_path(cell).rename(other_table / grid.result_path(cell).name)
    assert expected_seconds(grid, at_90) == pytest.approx(400.0 + 600.0 * 0.9 / 0.6)
    assert expected_seconds(grid, at_35) == pytest.approx(300.0 + 200.0 * 0.35 / 0.3)


@pytest.mark.slow
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
    assert expected_seconds(grid, half_run) is None
    grid.result_path(done).parent.mkdir(parents=True)
    grid.result_path(done).write_text(json.dumps(sized({"seconds": {"total": 3600.0, "finetune": 3000.0}})))
    work = grid.work_dir(half_run)
    work.mkdir(parents=True)
    (work / "stages.json").write_text(json.dumps({"seconds": {"unpruned_eval": 100.0}, "seeds": [{"seconds": 200.0}]}))
    assert expected_seconds(grid, half_run) == 300.0 + 3000.0  # the stages before fine-tuning less what they took
    epochs = grid.protocol.finetune_epochs(half_run)
    torch.save({"epoch": 1, "wall_seconds": 50.0}, work / "finetune.pt")
    assert expected_seconds(grid, half_run) == (epochs - 1) * 50.0  # its own epochs, whatever the done cells took
    (work / "stages.json").unlink()
    grid.result_path(done).unlink()
    assert expected_seconds(grid, half_run) == (epochs - 1) * 50.0  # a kind not measured yet, timed by itself


@pytest.mark.slow
def test_a_parameters_target_keeps_the_macs_the_committed_cells_kept():
    grid = Grid("ablations", "cpu")
    done = [(cell, result) for cell in grid.cells
            if cell.target_params is not None and cell.widths == "uniform" and (result := grid.read(cell))]
    assert len({cell.target_params for cell, _ in done}) >= 3  # the ratio sweep's cells, 10% to 60% kept at least
    for cell, result in done:
        counts = result["counts"]
        kept = counts["macs_after"] / counts["macs_before"]
        assert expected_macs_kept(cell, REPO_ROOT / "results" / "cpu") == pytest.approx(kept, abs=1e-9)
    (cell, _), *_ = done
    assert expected_macs_kept(cell, Path("no-results-here")) == cell.target_params  # nothing done: the target
