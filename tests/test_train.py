import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from ibprune_lib.models import get_model
from ibprune_lib.train import TrainConfig, fit, learning_rate, state_fingerprint


def test_schedules():
    cosine = TrainConfig("resnet20", epochs=10, lr=0.1)
    assert learning_rate(0, 100, cosine) == pytest.approx(0.1)
    assert learning_rate(50, 100, cosine) == pytest.approx(0.05)
    step = TrainConfig("resnet20", schedule="step", milestones=(0.5, 0.75), lr=0.1)
    assert [learning_rate(s, 100, step) for s in (49, 50, 75)] == pytest.approx([0.1, 0.01, 0.001])
    onecycle = TrainConfig("resnet20", schedule="onecycle", warmup_fraction=0.2, lr=0.1)
    assert learning_rate(10, 100, onecycle) == pytest.approx(0.05)
    assert learning_rate(20, 100, onecycle) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig("resnet20", schedule="linear")
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        TrainConfig("resnet20", precision="fp8")


def test_bf16_mixed_precision_learns_and_keeps_fp32_weights(cifar10, one_thread):
    def train(precision):
        torch.manual_seed(0)
        model = get_model("resnet20")
        config = TrainConfig("resnet20", epochs=4, batch_size=64, lr=0.05, train_subset=512, precision=precision)
        return model, fit(model, cifar10, config, test_subset=100, progress=False)

    (bf16_model, bf16), (fp32_model, fp32) = train("bf16"), train("fp32")
    losses = [h["loss"] for h in bf16.history]
    assert losses[-1] < 0.8 * losses[0]
    assert losses[-1] == pytest.approx(fp32.history[-1]["loss"], rel=0.15)
    assert all(p.dtype == torch.float32 for p in bf16_model.parameters())
    # The forward really ran in bf16: the two runs part ways.
    assert not torch.equal(bf16_model.conv1.weight, fp32_model.conv1.weight)


def test_state_fingerprint_sees_values_not_memory_format():
    torch.manual_seed(0)
    model = get_model("resnet20")
    fingerprint = state_fingerprint(model)
    assert state_fingerprint(model.to(memory_format=torch.channels_last)) == fingerprint
    with torch.no_grad():
        model.layer3[2].conv2.weight[0, 0, 0, 0] += 1e-6
    assert state_fingerprint(model) != fingerprint
    torch.manual_seed(0)
    assert state_fingerprint(get_model("resnet20")) == fingerprint


def _train(out, *extra):
    command = [sys.executable, "-m", "ibprune_lib", "train", "--model", "resnet20", "--epochs", "3",
               "--batch-size", "64", "--train-subset", "640", "--test-subset", "200", "--lr", "0.05",
               "--out", str(out), *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _checkpoint_epoch(path):
    try:
        return torch.load(path, weights_only=False)["epoch"]
    except (OSError, EOFError, RuntimeError, KeyError):
        return 0


@pytest.mark.needs_data
@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_state(tmp_path):
    straight = _train(tmp_path / "straight")
    killed = _train(tmp_path / "killed")
    checkpoint = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.time() + 300
    while _checkpoint_epoch(checkpoint) < 1 and time.time() < deadline and killed.poll() is None:
        time.sleep(0.2)
    assert killed.poll() is None, "training finished before it could be killed"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert 1 <= _checkpoint_epoch(checkpoint) < 3
    resumed = _train(tmp_path / "killed", "--no-progress")  # the bars are no part of the training's state
    assert resumed.wait() == 0 and straight.wait() == 0, resumed.stdout.read().decode()[-2000:]
    assert "%|" in straight.stdout.read().decode() and "%|" not in resumed.stdout.read().decode()
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    b = torch.load(checkpoint, weights_only=False)
    assert a["epoch"] == b["epoch"] == 3
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


@pytest.mark.needs_data
@pytest.mark.slow
def test_resume_refuses_another_recipe(tmp_path):
    first = _train(tmp_path / "run")
    assert first.wait() == 0
    other = _train(tmp_path / "run", "--seed", "1")
    assert other.wait() == 2
    assert b"another recipe" in other.stdout.read()


def test_batchnorm_recalibration_is_the_plain_average_of_its_batches():
    from torch import nn

    from ibprune_lib.data import normalise
    from ibprune_lib.train import recalibrate_batchnorm

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(2, 3, 8, 8))
    model.eval()
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    assert recalibrate_batchnorm(model, images, "resnet20", batches=4, batch_size=16, seed=3) == 1
    order = torch.randperm(64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        features = model[0](normalise(images[order], "resnet20"))
    batch_means = features.view(4, 16, 4, -1).mean(dim=(1, 3))  # (batches, channels)
    torch.testing.assert_close(model[1].running_mean, batch_means.mean(0))
    assert model[1].momentum == 0.1 and not model.training  # restored
    assert recalibrate_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 3)), images, "resnet20", batches=1) == 0
    with pytest.raises(ValueError, match="batches must be >= 1"):
        recalibrate_batchnorm(model, images, "resnet20", batches=0)
