"""The grid's shell recipes: recipes/grid_cpu.sh, recipes/googlenet_gpu.sh and recipes/slurm-array.sh."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ibprune_lib.cli import parse_until
from ibprune_lib.harness.grid import load_table
from ibprune_lib.paths import REPO_ROOT



GRID_CPU = REPO_ROOT / "recipes" / "grid_cpu.sh"
GRID_CPU_THREADS = max(len(os.sched_getaffinity(0)) // 2, 1)  # a runner's, two runners on the cores nproc counts


@pytest.mark.slow
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


@pytest.mark.slow
def test_grid_cpu_resolves_until_once_so_every_table_reads_the_same_moment(tmp_path):
    two_hours_ago = (datetime.now() - timedelta(hours=2)).strftime("%H:%M")  # next shown in 22 hours
    started, calls = _start_grid_cpu(tmp_path, two_hours_ago)
    assert started.returncode == 0, started.stderr
    moment = parse_until(two_hours_ago).isoformat(timespec="minutes")
    assert sorted(calls) == sorted(
        [f"{GRID_CPU_THREADS} -m ibprune_lib experiments run {table} --scale cpu --no-progress --until {moment}"
         for table in ("table1", "presets")] * 2)  # fmt: skip


@pytest.mark.slow
def test_grid_cpu_starts_no_table_once_until_is_past(tmp_path):
    started, calls = _start_grid_cpu(tmp_path, "03:25", resolved_as="2026-01-01T00:00")
    assert started.returncode == 0, started.stderr
    assert calls == []


@pytest.mark.slow
def test_grid_cpu_refuses_a_bad_until_in_one_line_before_starting_a_runner(tmp_path):
    started, calls = _start_grid_cpu(tmp_path, "25:99")
    assert started.returncode == 2
    assert started.stderr.strip().startswith("UNTIL '25:99' is not a time: give HH:MM")
    assert len(started.stderr.strip().splitlines()) == 1 and calls == []
    assert not (tmp_path / "grid.log").exists()


GOOGLENET_GPU = REPO_ROOT / "recipes" / "googlenet_gpu.sh"


@pytest.mark.slow
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


SLURM_ARRAY = REPO_ROOT / "recipes" / "slurm-array.sh"


@pytest.mark.parametrize("gpus, launcher", [("2", " -m torch.distributed.run --standalone --nproc_per_node 2 -m "),
                                            ("1", f"{sys.executable} -m ibprune_lib ")])
def test_slurm_array_runs_its_task_s_cell_on_the_node_s_gpus_under_torchrun(gpus, launcher):
    environment = {**os.environ, "DRY_RUN": "1", "GPUS": gpus, "SLURM_ARRAY_TASK_ID": "1", "PYTHON": sys.executable}
    run = subprocess.run(["bash", str(SLURM_ARRAY), "table2", "paper"], env=environment, capture_output=True,
                         text=True, timeout=120)
    second = load_table("table2", "paper")[1].id
    assert run.returncode == 0, run.stderr
    assert (launcher in run.stdout) and (("torch.distributed.run" in run.stdout) == (gpus == "2"))
    assert f"experiments run table2 --scale paper --cell {second} --device cuda" in run.stdout
    outside = subprocess.run(["bash", str(SLURM_ARRAY), "table2", "paper"], capture_output=True, text=True,
                             env={**environment, "SLURM_ARRAY_TASK_ID": "99"}, timeout=120)
    assert outside.returncode == 2 and "no cell on line 99 of 'table2'" in outside.stderr
