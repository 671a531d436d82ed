"""Pruning a CNN that is not in the zoo, on images from a folder: the API, the command line and their errors."""

import json
import re
import subprocess

import pytest
import torch
import torchvision
from torch import nn
from PIL import Image

from ibprune_lib.cli import main
from ibprune_lib.counting import count
from ibprune_lib.data import DatasetNotFoundError, calibration_batch, mean_std_for, normalise
from ibprune_lib.image_folders import load_image_folder
from ibprune_lib.models import get_model, load_model, save_model
from ibprune_lib.pruning import finetune, prune, survey_layers
from ibprune_lib.train import evaluate

CLASSES = ("cat", "dog", "owl")


def write_folder(root, height=36, width=40, per_class=(12, 4)):
    """An image folder whose class shows in one colour channel, so that a few images carry a signal."""
    generator = torch.Generator().manual_seed(0)
    for split, n in zip(("train", "val"), per_class):
        for label, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = (torch.rand(height, width, 3, generator=generator) * 80).to(torch.uint8)
                image[..., label] += 150
                Image.fromarray(image.numpy()).save(root / split / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("images"))


@pytest.fixture
def run(capsys):
    """The command line in this process (``ibprune_lib.cli.main``): (exit code, stdout, stderr)."""

    def run_cli(*args):
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exit_:  # argparse's errors and --help
            code = exit_.code
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return run_cli


def test_an_image_folder_is_read_resized_and_labelled_in_class_order(folder):
    data = load_image_folder(folder, 32, progress=False)
    assert data.classes == CLASSES and data.num_classes == 3
    assert data.x_train.shape == (36, 3, 32, 32) and data.x_train.dtype == torch.uint8
    assert data.y_train.bincount().tolist() == [12, 12, 12] and data.y_test.bincount().tolist() == [4, 4, 4]
    # the class colour survives the resize: channel `label` is the brightest in every image
    assert torch.equal(data.x_train.float().mean((2, 3)).argmax(1), data.y_train)


def test_a_bad_image_folder_names_the_fix(tmp_path):
    uneven = write_folder(tmp_path / "uneven")
    with pytest.raises(DatasetNotFoundError, match="--image-size"):
        load_image_folder(uneven, None, progress=False)
    (tmp_path / "no-val" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="no val/ or test/ folder.*--data-folder"):
        load_image_folder(tmp_path / "no-val", 32, progress=False)
    (uneven / "val" / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetNotFoundError, match="broken.png is not an image PIL can decode"):
        load_image_folder(uneven, 32, progress=False)


def test_normalisations_by_name_by_values_and_by_model_name():
    assert mean_std_for("cifar")[0] == (0.4914, 0.4822, 0.4465)
    assert mean_std_for("torchvision:resnet18") == mean_std_for("resnet56") == mean_std_for("imagenet")
    assert mean_std_for(((0.5,) * 3, (0.25,) * 3)) == ((0.5,) * 3, (0.25,) * 3)
    with pytest.raises(ValueError, match="unknown normalization"):
        mean_std_for("imagenette")
    with pytest.raises(ValueError, match="std > 0"):
        mean_std_for(((0.5,) * 3, (0.0,) * 3))


@pytest.mark.slow
def test_mobilenet_v2_prunes_fine_tunes_and_reloads_and_says_what_it_kept_whole(folder, tmp_path):
    data = load_image_folder(folder, 32, progress=False)
    model = torchvision.models.mobilenet_v2(num_classes=3).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, _ = calibration_batch(data.x_train, data.y_train, 16, seed=0)
    result = prune(model, images, method="l1", target_flops=0.9, skip_first=0, normalization="cifar",
                   progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the caller's model is untouched
    assert result.report["input_size"] == [3, 32, 32] and result.report["model"] == "MobileNetV2"
    kept_whole = result.report["kept_whole"]
    assert "depthwise" in kept_whole["features.2.conv.1.0"]
    assert kept_whole["features.2.conv.2"] == kept_whole["features.3.conv.2"] == (
        "its channels are coupled by a residual addition: features.2.conv.2, features.3.conv.2")
    # an expanding conv is pruned through the depthwise conv it feeds: 20 candidate layers, not 3
    layers = {layer.name: layer for layer in survey_layers(model, (3, 32, 32), skip_first=0).prunable}
    assert len(layers) == 20 and layers["features.2.conv.0.0"].consumer_name == "features.2.conv.2"
    assert layers["features.2.conv.0.0"].through == ("features.2.conv.1.0", "features.2.conv.1.1")
    pruned = dict(result.model.named_modules())
    kept = next(r["kept"] for r in result.report["layers"] if r["name"] == "features.2.conv.0.0")
    assert pruned["features.2.conv.1.0"].out_channels == pruned["features.2.conv.2"].in_channels == kept < 96
    assert 0.88 < result.report["totals"]["macs_ratio"] < 0.92
    history = finetune(result.model, data, "torchvision:mobilenet_v2", epochs=1, batch_size=12, progress=False,
                       normalization="cifar")
    assert len(history.history) == 1 and 0 <= evaluate(result.model, data.x_test, data.y_test, "cifar") <= 100
    save_model(result.model, tmp_path / "m.pt", "torchvision:mobilenet_v2", size=(3, 32, 32), normalization="cifar")
    loaded, name, size, normalization = load_model(tmp_path / "m.pt")
    assert (name, size, normalization) == ("torchvision:mobilenet_v2", (3, 32, 32), "cifar")
    assert count(loaded, size).macs == count(result.model, size).macs


class DeadLayerNet(nn.Module):
    """Three conv → BN → ReLU blocks, pooling, a linear head; the last BN outputs zero, so the last conv's features
    and the middle conv's response carry no signal."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv3, self.bn3 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 3)
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(torch.relu(self.bn3(self.conv3(x))).mean((2, 3)))


def test_a_layer_without_signal_is_kept_whole_and_reported():
    images = torch.randint(0, 255, (16, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    result = prune(DeadLayerNet().eval(), images, method="stlp", keep_counts=[4, 4, 4], skip_first=0, progress=False)
    assert [layer["kept"] for layer in result.report["layers"]] == [4, 8, 8]
    assert "no signal" in result.report["kept_whole"]["conv2"] and "no signal" in result.report["kept_whole"]["conv3"]
    assert "conv1" not in result.report["kept_whole"]


def test_prune_says_how_to_call_it_when_given_a_name_second():
    with pytest.raises(TypeError, match="model_name="):
        prune(get_model("resnet20"), "resnet20", torch.zeros(2, 3, 32, 32))


@pytest.mark.slow
def test_the_command_line_prunes_a_torchvision_resnet18_on_an_image_folder(folder, tmp_path, run):
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "r18.pt")
    out = tmp_path / "pruned.pt"
    result = run("prune", "--model", "torchvision:resnet18", "--weights", tmp_path / "r18.pt", "--data-folder", folder,
                 "--image-size", 32, "--method", "l1", "--target-flops", 0.6, "--skip-first", 0, "--batch-size", 16,
                 "--recalibrate-bn", 2, "--finetune-epochs", 1, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "test top-1 unpruned" in result.stdout and "layer1.0.conv1" in result.stdout
    # a residual group is one line: its first conv, how many more, and the reason naming them all
    assert re.search(r"\n  conv1 and 2 more +its channels are coupled by a residual addition: conv1, layer1.0.conv2, "
                     r"layer1.1.conv2\n", result.stdout)
    report = json.loads(out.with_name("pruned.pt.json").read_text())
    assert report["settings"]["data"] == f"image folder {folder}" and set(report["stages"]) == {
        "unpruned", "pruned", "recalibrated", "finetuned"}
    evaluated = run("eval", "--weights", out, "--data-folder", folder, "--image-size", 32)
    assert evaluated.returncode == 0 and "on 12 images" in evaluated.stdout, evaluated.stderr
    counted = run("count", "--weights", out)
    macs = report["totals"]["macs_after"]
    assert counted.returncode == 0 and "at 32×32" in counted.stdout and f"{macs:,} MACs" in counted.stdout


@pytest.mark.parametrize(("extra", "message"), [
    (["--model", "torchvision:resnet1800"], "argument --model: torchvision has no model 'resnet1800'"),
    (["--model", "no_such_package.models:build"], "argument --model: cannot import build from no_such_package.models"),
    (["--model", "resnet"], "argument --model: 'resnet': choose one of vgg16"),
    (["--normalization", "imagenette"], "argument --normalization: 'imagenette': choose imagenet, cifar"),
    (["--image-size", "4"], "error: --image-size must be >= 8 pixels, got 4"),
    (["--dataset", "cifar100"], "error: --data-folder replaces CIFAR: drop --dataset"),
])
def test_bad_model_or_data_flags_are_one_line_before_any_work(folder, tmp_path, run, extra, message):
    torch.save({}, tmp_path / "w.pt")
    flags = {"--model": "torchvision:resnet18", "--data-folder": str(folder), "--image-size": "32"}
    flags.update(dict(zip(extra[::2], extra[1::2])))
    result = run("prune", "--weights", tmp_path / "w.pt", "--method", "l1", "--target-flops", 0.5,
                 "--out", tmp_path / "p.pt", *[item for pair in flags.items() for item in pair])
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]


def test_a_missing_image_folder_is_one_line(tmp_path, run):
    result = run("eval", "--model", "torchvision:resnet18", "--weights", tmp_path / "w.pt",
                 "--data-folder", tmp_path / "nowhere")
    assert result.returncode == 2 and "no train/ folder" in result.stderr and "--data-folder" in result.stderr


def test_count_asks_for_the_input_size_of_a_model_it_cannot_know(run):
    result = run("count", "--model", "torch.nn:Identity")
    assert result.returncode == 2 and "pass --input-size N" in result.stderr


@pytest.mark.slow
def test_a_selection_that_fails_names_its_layer():
    images = torch.randint(0, 255, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"^sglp on layer layer1\.2\.conv1 \(3 of 16 kept\): max_solves must be"):
        prune(get_model("resnet20").eval(), images, method="sglp", keep_counts=[3] * 7, skip_first=2, max_solves=1,
              progress=False)


def test_eval_and_prune_refuse_a_model_with_other_outputs_than_the_datasets_classes(folder, shared_weights, run):
    # the shared CIFAR-10 ResNet-20 has 10 outputs, the folder 3 classes: a top-1 would mean nothing
    weights = shared_weights / "resnet20-12fca82f.th"
    result = run("eval", "--model", "resnet20", "--weights", weights, "--data-folder", folder, "--image-size", 32)
    assert result.returncode == 2 and "resnet20 has 10 outputs but" in result.stderr and "3 classes" in result.stderr
    result = run("prune", "--model", "resnet20", "--weights", weights, "--data-folder", folder, "--image-size", 32,
                 "--method", "l1", "--target-flops", 0.6, "--batch-size", 16, "--out", folder.parent / "p.pt")
    assert result.returncode == 2 and "Fix: pass the --dataset (or --data-folder)" in result.stderr
    assert not (folder.parent / "p.pt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["l1", "stlp"])
def test_regnet_y_with_grouped_convs_and_squeeze_and_excitation_prunes_to_its_budget(method):
    images = torch.randint(0, 255, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = torchvision.models.regnet_y_400mf(num_classes=10)
    for module in model.modules():  # BatchNorm statistics of the batch: initial ones shrink deep features to ~0
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None
    with torch.no_grad():
        model.train()(normalise(images, "imagenet"))
    model.eval()
    result = prune(model, images, method=method, target_flops=0.7, skip_first=0, progress=False)
    assert abs(result.report["totals"]["macs_ratio"] - 0.7) <= 0.007 and not any(
        "signal" in reason for reason in result.report["kept_whole"].values())
    grouped = [layer for layer in result.report["layers"] if "groups_of" in layer]
    assert len(grouped) == 16 and any(layer["kept"] < layer["channels"] for layer in grouped)
    block = dict(result.model.named_modules())["trunk_output.block2.block2-0.f"]
    record = next(layer for layer in grouped if layer["name"] == "trunk_output.block2.block2-0.f.a.0")
    assert block.b[0].groups == record["kept"] and block.se.fc1.in_channels == block.c[0].in_channels
    assert block.c[0].in_channels == record["kept"] * record["groups_of"]["channels"]
    assert result.model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.slow
def test_a_structure_torch_pruning_cannot_trace_is_refused_in_one_line():
    images = torch.randint(0, 255, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError) as refused:  # ShuffleNetV2's channel shuffle: a ZeroDivisionError inside
        prune(torchvision.models.shufflenet_v2_x0_5().eval(), images, method="l1", target_flops=0.7, progress=False)
    message = str(refused.value)
    assert message.startswith("Torch-Pruning cannot trace ShuffleNetV2's dependency graph") and "\n" not in message
    assert "ZeroDivisionError" in message and refused.value.__cause__ is None
