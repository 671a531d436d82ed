"""Streamed image folders (ImageNet's layout) and the paper-scale path: one process and two under torchrun."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from grid_helpers import write_imagenet_folder
from ibprune_lib import streaming
from ibprune_lib.data import DatasetNotFoundError
from ibprune_lib.models import get_model
from ibprune_lib.train import TrainConfig, fit, top1

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_imagenet_folder(tmp_path_factory.mktemp("imagenet"))


def test_a_bad_folder_is_refused_in_one_line_naming_the_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"nothing/train does not exist\. Fix: pass the folder that holds"):
        streaming.open_stream(tmp_path / "nothing")
    with pytest.raises(DatasetNotFoundError, match=r"a/val/n00000000 holds no images"):
        streaming.open_stream(write_imagenet_folder(tmp_path / "a", classes=2, train=1, val=0))
    root = write_imagenet_folder(tmp_path / "b", classes=3, train=2, val=1)
    (root / "val" / "n00000002" / "val_2_0.JPEG").unlink()
    (root / "val" / "n00000002").rmdir()
    with pytest.raises(DatasetNotFoundError, match="val lacks class 'n00000002': train/ and val/ must hold the same"):
        streaming.open_stream(root)


def test_calibration_reads_only_the_class_balanced_draw(folder, monkeypatch):
    import torchvision.datasets.folder as tv_folder

    stream = streaming.open_stream(folder, image_size=32, workers=0)
    read = []
    loader = tv_folder.pil_loader
    monkeypatch.setattr(tv_folder, "pil_loader", lambda path: read.append(path) or loader(path))
    images, labels = streaming.calibration_batch(stream, 40, seed=3)
    assert images.shape == (40, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [4] * 10 and len(read) == 40 == len(set(read))
    again, _ = streaming.calibration_batch(stream, 40, seed=3)
    other, _ = streaming.calibration_batch(stream, 40, seed=4)
    assert torch.equal(images, again) and not torch.equal(images, other)


def test_two_ranks_share_an_epoch_in_the_order_one_seed_gives(folder, monkeypatch):
    stream = streaming.open_stream(folder, image_size=32, workers=0)

    def labels(rank: int, world: int, seed: int, epoch: int) -> list[int]:
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(world))
        batches = streaming.training_batches(stream, 40, seed, epoch, torch.device("cpu"))
        return [label for _, batch in batches for label in batch.tolist()]

    ranks = [labels(r, 2, seed=0, epoch=1) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 120  # 240 images, batches of 20 a rank, none dropped
    assert ranks[0] == labels(0, 2, seed=0, epoch=1) and ranks[0] != labels(0, 2, seed=0, epoch=2)
    assert sorted(ranks[0] + ranks[1]) == sorted(stream.y_train.tolist())  # together: every image once
    with pytest.raises(ValueError, match="does not split over 2 processes"):
        streaming.training_batches(stream, 41, 0, 0, torch.device("cpu"))


def test_fine_tuning_on_a_stream_learns_and_a_run_resumed_after_epoch_1_ends_in_the_same_state(folder, tmp_path,
                                                                                           monkeypatch):
    import ibprune_lib.train as train

    stream = streaming.open_stream(folder, image_size=32, workers=0)
    config = TrainConfig(model="resnet20", epochs=2, batch_size=48, lr=0.05, schedule="cosine")
    saved = []
    monkeypatch.setattr(train, "save_torch", lambda path, payload: saved.append(copy.deepcopy(payload)))
    torch.manual_seed(0)
    model = get_model("resnet20", num_classes=10)
    result = fit(model, stream, config, checkpoint=tmp_path / "unused.pt", progress=False)
    assert [h["epoch"] for h in result.history] == [1, 2] and result.history[-1]["train_top1"] > 10
    assert result.test_top1 == top1(model, stream, "resnet20") and len(saved) == 2
    monkeypatch.undo()
    torch.save(saved[0], tmp_path / "after_epoch_1.pt")  # as if killed during epoch 2
    torch.manual_seed(0)
    resumed = get_model("resnet20", num_classes=10)
    again = fit(resumed, stream, config, checkpoint=tmp_path / "after_epoch_1.pt", progress=False)
    assert again.history[0] == result.history[0] and again.test_top1 == result.test_top1
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), resumed.state_dict().values()))


def test_table2_declares_the_paper_s_rows_which_a_cpu_runner_leaves_to_a_gpu_cluster(monkeypatch, tmp_path):
    from ibprune_lib.download import PRETRAINED
    from ibprune_lib.harness.grid import load_table

    cells = load_table("table2", "paper")
    assert [cell.method for cell in cells] == ["stlp", "sglp", "l1", "fpgm", "apib", "hrank", "random"]
    assert {(cell.model, cell.dataset, cell.target_flops, cell.finetune_epochs, cell.weights) for cell in cells} == {
        ("resnet50", "imagenet", 0.43, 150, "weights:resnet50-0676ba61.pth")}
    assert PRETRAINED["resnet50-0676ba61.pth"][1] == "0676ba61"  # torchvision publishes (and checks) this prefix
    cpu = torch.device("cpu")
    assert cells[0].missing_on(cpu) == "needs ImageNet and GPUs (--device cuda, $IBPRUNE_IMAGENET)"
    monkeypatch.setenv("IBPRUNE_IMAGENET", str(tmp_path / "absent"))
    assert load_table("table2", "smoke")[0].missing_on(cpu).startswith("needs ImageNet's train/ and val/ at")


def _experiments(args: list[str], env: dict, processes: int = 1, **options) -> subprocess.Popen:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                 "--master_port", str(29500 + os.getpid() % 1000)] if processes > 1 else [sys.executable])
    return subprocess.Popen([*launcher, "-m", "ibprune_lib", "experiments", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **options)


def _environment(folder: Path) -> dict:
    return {**os.environ, "IBPRUNE_IMAGENET": str(folder), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _kill_with_its_children(run: subprocess.Popen) -> None:
    """SIGKILL a launcher and the processes it started, and wait until they are gone. torchrun starts each rank in
    a session of its own, so killing the launcher's process group would leave the ranks running (and holding the
    cell's lock)."""
    children = [int(pid) for path in Path(f"/proc/{run.pid}/task").glob("*/children")
                for pid in path.read_text().split()]
    assert children, "the launcher has started no rank"
    for pid in [run.pid, *children]:
        os.kill(pid, 9)
    run.wait()
    deadline = time.time() + 60
    while any(_alive(pid) for pid in children):
        assert time.time() < deadline, f"ranks {children} still alive 60 s after SIGKILL"
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has exited and released its locks)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _result(results: Path) -> dict:
    [path] = (results / "smoke" / "table2").glob("*.json")
    return json.loads(path.read_text())


@pytest.mark.slow
def test_table2s_smoke_cell_runs_alone_and_as_two_gloo_processes_with_the_same_selection(folder, tmp_path):
    runs = {}
    for processes in (1, 2):
        results, work = tmp_path / f"results{processes}", tmp_path / f"work{processes}"
        run = _experiments(["run", "table2", "--scale", "smoke", "--results", str(results), "--work", str(work),
                            "--no-progress"], _environment(folder), processes)
        output, _ = run.communicate(timeout=600)
        assert run.returncode == 0, output
        assert output.count("table2 (smoke): 1 done") == 1  # rank 0 alone reports
        runs[processes] = _result(results)
    alone, pair = runs[1], runs[2]
    assert alone["provenance"].get("processes") is None and pair["provenance"]["processes"] == 2
    assert pair["finetune"]["history"][0]["processes"] == 2 and pair["test_images"] == 40
    kept = [[layer["kept_indices"] for layer in run["seeds"][0]["layers"]] for run in (alone, pair)]
    assert kept[0] == kept[1]  # rank 0 selects from the same calibration batch
    assert pair["stages"]["pruned"] == alone["stages"]["pruned"]  # rank 0 evaluates the whole folder alone
    assert pair["counts"] == alone["counts"] and "streamed, 64 px crops" in pair["dataset"]


@pytest.mark.slow
def test_a_two_process_run_killed_mid_fine_tuning_resumes_every_rank_from_rank_0s_checkpoint(folder, tmp_path):
    table = tmp_path / "table2_long.py"
    table.write_text((ROOT / "experiments" / "table2.py").read_text().replace("finetune_epochs=1)", "finetune_epochs=3)"))
    results, work = tmp_path / "results", tmp_path / "work"
    args = ["run", str(table), "--scale", "smoke", "--results", str(results), "--work", str(work), "--no-progress"]
    run = _experiments(args, _environment(folder), 2)
    checkpoint = None
    deadline = time.time() + 540
    while checkpoint is None and time.time() < deadline and run.poll() is None:
        time.sleep(0.5)
        checkpoint = next(work.glob("smoke/table2_long/*/finetune.pt"), None)
    assert checkpoint is not None, run.communicate()[0]
    _kill_with_its_children(run)  # the launcher and both ranks, during epoch 2 or 3
    killed_at = torch.load(checkpoint, weights_only=False)["history"]
    assert not list((results / "smoke" / "table2_long").glob("*.json"))
    resumed = _experiments(args, _environment(folder), 2)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0 and "table2_long (smoke): 1 done" in output, output
    [path] = (results / "smoke" / "table2_long").glob("*.json")
    history = json.loads(path.read_text())["finetune"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[: len(killed_at)] == killed_at  # restored from the checkpoint, not trained again


def test_eval_streams_a_data_folder_and_stream_without_one_is_refused_in_one_line(folder, tmp_path):
    from ibprune_lib.models import save_model

    weights = tmp_path / "resnet20.pt"
    torch.manual_seed(0)
    save_model(get_model("resnet20", num_classes=10), weights, "resnet20")
    command = [sys.executable, "-m", "ibprune_lib", "eval", "--weights", str(weights), "--no-progress"]
    run = subprocess.run([*command, "--data-folder", str(folder), "--stream", "--image-size", "32"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "(streamed, 32 px crops) test top-1" in run.stdout and "on 40 images" in run.stdout
    refused = subprocess.run([*command, "--stream"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "CIFAR is held in memory: drop --stream" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
