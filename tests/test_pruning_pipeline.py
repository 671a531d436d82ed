import json
import subprocess
import sys

import pytest
import torch

from ibprune_lib.cli import main
from ibprune_lib.counting import count
from ibprune_lib.data import ImageData, calibration_batch
from ibprune_lib.models import get_model, load_model, load_weights
from ibprune_lib.pruning import finetune, prune
from ibprune_lib.errors import OptionError
from ibprune_lib.settings import PRESETS


@pytest.fixture(scope="module")
def resnet20(shared_weights):
    return load_weights(get_model("resnet20"), shared_weights / "resnet20-12fca82f.th").eval()


@pytest.fixture(scope="module")
def images(cifar10):
    return calibration_batch(cifar10.x_train, cifar10.y_train, 32, seed=0)[0]


@pytest.mark.parametrize(("method", "widths"), [("stlp", "uniform"), ("l1", "itpruner")])
def test_prune_meets_the_budget_and_reports_every_layer(method, widths, resnet20, images):
    state = {k: v.clone() for k, v in resnet20.state_dict().items()}
    result = prune(resnet20, images, method=method, target_flops=0.7, skip_first=2, widths=widths,
                   min_width=0.25, progress=False, max_solves=12)
    assert all(torch.equal(state[k], v) for k, v in resnet20.state_dict().items())
    report = result.report
    assert abs(report["totals"]["macs_ratio"] - 0.7) <= 0.007
    assert report["totals"]["macs_after"] == count(result.model).macs
    assert [layer["name"] for layer in report["layers"]] == [f"layer{s}.{b}.conv1" for s in (1, 2, 3) for b in range(3)][2:]
    assert all(1 <= layer["kept"] == len(layer["kept_indices"]) <= layer["channels"] for layer in report["layers"])
    if method == "stlp":
        assert all(layer["lam"] > 0 and layer["n_solves"] >= 1 for layer in report["layers"])
        # a basic block's conv2 answers with as many channels as conv1 has: a full tree over them has 2q - 1 groups
        assert all(layer["n_groups"] == 2 * layer["channels"] - 1 and layer["n_edges"] is None
                   for layer in report["layers"])  # fmt: skip
    else:
        assert "itpruner" in report["settings"]
        assert all(layer["n_groups"] is None and layer["n_edges"] is None for layer in report["layers"])
    json.dumps(report)  # JSON-ready
    assert result.model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_columns_direction_and_explicit_counts(resnet20, images):
    keep = [8, 8, 16, 16, 16, 32, 32]
    result = prune(resnet20, images, method="lasso", keep_counts=keep, skip_first=2, direction="columns",
                   progress=False, max_solves=12)
    assert [layer["kept"] for layer in result.report["layers"]] == keep


def test_a_preset_names_settings_that_explicit_ones_override(resnet20, images):
    def prune_with(**options):
        result = prune(resnet20, images, method="stlp", target_flops=0.7, skip_first=6, progress=False,
                       max_solves=12, **options)
        return result.report["settings"], [layer["kept_indices"] for layer in result.report["layers"]]

    tuned, kept_tuned = prune_with(preset="tuned")
    assert (tuned["preset"], tuned["kernel"]) == ("tuned", PRESETS["tuned"]["stlp"].kernel)
    assert tuned["kernel"] != "laplacian"
    assert tuned["selection_settings"] == PRESETS["tuned"]["stlp"].replace(max_solves=12).record()
    assert kept_tuned == prune_with(**PRESETS["tuned"]["stlp"].changes())[1]
    assert kept_tuned == prune_with(settings=PRESETS["tuned"]["stlp"])[1]
    paper, kept_paper = prune_with(preset="tuned", kernel="laplacian", normalise=True)
    assert paper["kernel"] == "laplacian" and kept_paper == prune_with()[1] != kept_tuned


@pytest.mark.parametrize(("options", "message"), [
    ({"target_flops": 1.2}, "target_flops must be a keep ratio in \\(0, 1\\]"),
    ({"target_flops": 0.5, "target_params": 0.5}, "exactly one of"),
    ({}, "exactly one of"),
    ({"target_flops": 0.5, "method": "magnitude"}, "unknown method"),
    ({"target_flops": 0.5, "kernel": "rbf"}, "unknown kernel"),
    ({"target_flops": 0.5, "preset": "best"}, "unknown preset 'best': choose one of paper, tuned"),
    ({"target_flops": 0.5, "widths": "greedy"}, "unknown widths"),
    ({"keep_counts": [1, 2]}, "one count per prunable layer"),
])
def test_bad_options_are_clear_errors(options, message, resnet20, images):
    with pytest.raises(ValueError, match=message):
        prune(resnet20, images, progress=False, **options)


def test_finetune_trains_in_the_precision_it_is_given(resnet20, images, cifar10, tmp_path, one_thread):
    result = prune(resnet20, images, method="l1", target_flops=0.7, progress=False)
    tiny = ImageData("cifar10", cifar10.x_train[:128], cifar10.y_train[:128], cifar10.x_test[:64],
                     cifar10.y_test[:64], cifar10.source)
    before = result.model.conv1.weight.detach().clone()
    history = finetune(result.model, tiny, "resnet20", epochs=1, lr=0.001, checkpoint=tmp_path / "ft.pt",
                       progress=False, precision="bf16")
    saved = torch.load(tmp_path / "ft.pt", weights_only=False)
    assert saved["config"]["precision"] == "bf16" and saved["config"]["schedule"] == "cosine"
    assert len(history.history) == 1 and torch.isfinite(torch.tensor(history.history[0]["loss"]))
    assert history.history[0]["threads"] == 1  # the one_thread fixture's: a resume with other threads shows
    assert result.model.conv1.weight.dtype == torch.float32 and not torch.equal(result.model.conv1.weight, before)


def test_finetune_resumes_only_the_pruning_it_started_from(resnet20, images, cifar10, tmp_path, one_thread):
    tiny = ImageData("cifar10", cifar10.x_train[:128], cifar10.y_train[:128], cifar10.x_test[:64],
                     cifar10.y_test[:64], cifar10.source)
    checkpoint = tmp_path / "ft.pt"

    def pruned(method):
        return prune(resnet20, images, method=method, target_flops=0.7, progress=False).model

    first = pruned("l1")
    finetune(first, tiny, "resnet20", epochs=1, lr=0.001, checkpoint=checkpoint, progress=False)
    # The same pruning again resumes (nothing left to train) and ends in the checkpoint's weights.
    again = pruned("l1")
    assert finetune(again, tiny, "resnet20", epochs=1, lr=0.001, checkpoint=checkpoint, progress=False).history
    assert torch.equal(again.conv1.weight, first.conv1.weight)
    # Another criterion gives a network of the same shapes but other weights: it must not resume.
    other = pruned("fpgm")
    assert [p.shape for p in other.parameters()] == [p.shape for p in first.parameters()]
    with pytest.raises(ValueError, match="started from other weights"):
        finetune(other, tiny, "resnet20", epochs=1, lr=0.001, checkpoint=checkpoint, progress=False)


def test_cli_prune_resumes_its_finetuning_checkpoint_and_removes_it_when_done(
    shared_weights, tmp_path, monkeypatch, capsys
):
    import ibprune_lib.pruning as pruning
    from ibprune_lib.train import TrainResult

    seen = {}

    def fake_finetune(model, data, name, epochs, checkpoint=None, **options):
        seen["checkpoint"] = checkpoint
        checkpoint.write_bytes(b"an epoch")
        return TrainResult(history=[{"epoch": 1}], test_top1=0.0)

    monkeypatch.setattr(pruning, "finetune", fake_finetune)
    out = tmp_path / "pruned.pt"
    (tmp_path / "pruned.pt.finetune-checkpoint.pt").write_bytes(b"a killed run's epochs")
    assert main(["prune", "--model", "resnet20", "--weights", str(shared_weights / "resnet20-12fca82f.th"),
                 "--method", "l1", "--target-flops", "0.7", "--batch-size", "16", "--test-subset", "0",
                 "--finetune-epochs", "1", "--out", str(out)]) == 0
    assert seen["checkpoint"] == tmp_path / "pruned.pt.finetune-checkpoint.pt"
    assert f"resuming the fine-tuning from {seen['checkpoint']}" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pruned.pt", "pruned.pt.json"]


def run(*args):
    return subprocess.run([sys.executable, "-m", "ibprune_lib", *args], capture_output=True, text=True)


def test_cli_prune_writes_a_model_that_eval_and_count_accept(shared_weights, tmp_path, capsys):
    out = tmp_path / "pruned.pt"
    result = run("prune", "--model", "resnet20", "--weights", str(shared_weights / "resnet20-12fca82f.th"),
                 "--method", "fpgm", "--target-params", "0.6", "--batch-size", "16", "--test-subset", "200",
                 "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "layer3.2.conv1" in result.stdout and "test top-1" in result.stdout
    report = json.loads((tmp_path / "pruned.pt.json").read_text())
    assert abs(report["totals"]["params_ratio"] - 0.6) <= 0.006 and report["settings"]["method"] == "fpgm"
    model, name, _, _ = load_model(out)
    assert name == "resnet20" and count(model).params == report["totals"]["params_after"]
    assert main(["eval", "--weights", str(out), "--test-subset", "100"]) == 0
    assert main(["count", "--weights", str(out)]) == 0
    assert f"{report['totals']['params_after']:,} params" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--target-flops", "0"], "error: --target-flops must be a keep ratio in (0, 1], got 0.0"),
    (["--target-flops", "0.5", "--weights", "missing.th"], "error: no weights at missing.th"),
    (["--target-flops", "0.5", "--target-params", "0.5"], "error: prune needs exactly one of"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(args, message, shared_weights, tmp_path, capsys):
    out = tmp_path / "pruned.pt"
    weights = [] if "--weights" in args else ["--weights", str(shared_weights / "resnet20-12fca82f.th")]
    assert main(["prune", "--model", "resnet20", *weights, *args, "--out", str(out)]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith(message) and stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_prune_reports_top1_before_and_after_batchnorm_recalibration(shared_weights, tmp_path):
    out = tmp_path / "pruned.pt"
    result = run("prune", "--model", "resnet20", "--weights", str(shared_weights / "resnet20-12fca82f.th"),
                 "--method", "l1", "--target-flops", "0.5", "--skip-first", "2", "--batch-size", "16",
                 "--recalibrate-bn", "3", "--test-subset", "300", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "right after pruning" in result.stdout and "after BatchNorm recalibration (3 batches)" in result.stdout
    report = json.loads((tmp_path / "pruned.pt.json").read_text())
    stages = report["stages"]
    assert list(stages) == ["unpruned", "pruned", "recalibrated"] and report["test_top1"] == stages["recalibrated"]
    assert stages["recalibrated"] != stages["pruned"]  # the statistics changed, so the predictions did
    assert report["settings"]["recalibrate_bn_batches"] == 3


def test_cli_prune_refuses_a_recalibration_of_no_batches(shared_weights, tmp_path):
    result = run("prune", "--model", "resnet20", "--weights", str(shared_weights / "resnet20-12fca82f.th"),
                 "--target-flops", "0.5", "--recalibrate-bn", "0", "--out", str(tmp_path / "p.pt"))
    assert result.returncode == 2 and result.stderr.startswith("error: --recalibrate-bn must be >= 1 batch")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_layer_with_dead_channels_is_completed_and_the_report_says_how():
    torch.manual_seed(0)
    model = get_model("resnet20").eval()
    with torch.no_grad():
        model.layer1[0].conv1.weight[:12] = 0  # 12 of its 16 outputs are zero on every image
    images = torch.randint(0, 255, (32, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    result = prune(model, images, method="stlp", keep_counts=[14] + [16] * 8, skip_first=0, progress=False,
                   normalization="cifar")
    first, second = result.report["layers"][:2]
    assert first["kept"] == 14 and first["completed"] >= 10 and set(range(12, 16)) <= set(first["kept_indices"])
    assert first["completed_by"].startswith(f"{first['completed']} of 14 kept by their correlation")
    assert second["completed"] == 0 and "completed_by" not in second


@pytest.mark.parametrize(("round_to", "widths"), [(8, "uniform"), (16, "uniform"), (8, "itpruner")])
def test_round_to_keeps_multiples_of_n_channels_and_still_meets_the_budget(resnet20, images, round_to, widths):
    result = prune(resnet20, images, method="l1", target_flops=0.6, skip_first=2, widths=widths, round_to=round_to,
                   progress=False)
    kept = [layer["kept"] for layer in result.report["layers"]]
    assert all(k % round_to == 0 or k == layer["channels"] for k, layer in zip(kept, result.report["layers"]))
    assert abs(result.report["totals"]["macs_ratio"] - 0.6) <= 0.006 and result.report["settings"]["round_to"] == round_to
    plain = prune(resnet20, images, method="l1", target_flops=0.6, skip_first=2, widths=widths, progress=False)
    assert [layer["kept"] for layer in plain.report["layers"]] != kept  # 1 keeps widths no multiple of 8 here
    with pytest.raises(OptionError, match="round_to must be an int >= 1"):
        prune(resnet20, images, method="l1", target_flops=0.6, round_to=0, progress=False)
