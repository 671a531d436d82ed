import json
from pathlib import Path

import pytest
import torch

from ibprune_lib.counting import count, latency
from ibprune_lib.data import load_cifar
from ibprune_lib.models import MODEL_NAMES, get_model, input_size, load_model, load_weights, save_model
from ibprune_lib.train import evaluate

# The papers' baselines (thop convention): (MACs, params, relative tolerance).
PAPER_COUNTS = {
    "vgg16": (314.57e6, 14.98e6, 1e-3),
    "resnet56": (127.62e6, 0.85e6, 1e-3),
    "googlenet": (1531.98e6, 6.17e6, 5e-3),
    "resnet50": (4133.74e6, 25.56e6, 5e-3),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER_COUNTS)
def test_counts_match_the_papers(name):
    macs, params, tolerance = PAPER_COUNTS[name]
    counts = count(get_model(name, 1000 if name == "resnet50" else 10), input_size(name))
    assert counts.macs == pytest.approx(macs, rel=tolerance)
    # The tables print params to two decimals in millions: compare at that precision too.
    assert counts.params == pytest.approx(params, rel=max(tolerance, 0.006e6 / params))


def test_resnet110_counts():
    counts = count(get_model("resnet110"))
    assert 256e6 <= counts.macs <= 257.5e6 and round(counts.params / 1e6, 2) == 1.73


@pytest.mark.slow
def test_the_papers_two_parameter_conventions():
    # The paper's VGG-16 row (14.98M) leaves batch norm's 2 x 4224 affine parameters out; its ResNet-110 row
    # (1.73M) keeps them in. Both counts are exact integers here.
    vgg, resnet110 = count(get_model("vgg16")), count(get_model("resnet110"))
    assert (vgg.params, vgg.norm_params, vgg.params_without_norm) == (14_990_922, 8_448, 14_982_474)
    assert (round(vgg.params / 1e6, 2), round(vgg.params_without_norm / 1e6, 2)) == (14.99, 14.98)
    assert (round(resnet110.params / 1e6, 2), round(resnet110.params_without_norm / 1e6, 2)) == (1.73, 1.72)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n != "resnet50"])
def test_every_cifar_model_maps_images_to_logits(name):
    assert get_model(name, 100)(torch.zeros(2, 3, 32, 32)).shape == (2, 100)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'vgg19'"):
        get_model("vgg19")


@pytest.mark.parametrize(("name", "file", "top1"), [("resnet56", "resnet56-4bfd9763.th", 93.39),
                                                     ("resnet20", "resnet20-12fca82f.th", 91.73)])
def test_shared_weights_reach_their_published_accuracy(name, file, top1, cifar10, shared_weights):
    model = load_weights(get_model(name), shared_weights / file)
    assert evaluate(model, cifar10.x_test, cifar10.y_test, name, progress=False) == pytest.approx(top1, abs=0.05)


BASELINES = Path(__file__).resolve().parents[1] / "results" / "cpu" / "baselines"


@pytest.mark.parametrize("folder", sorted(p.parent for p in BASELINES.glob("*/log.json")), ids=lambda p: p.name)
def test_committed_baselines_reach_their_recorded_accuracy(folder, cifar10):
    log = json.loads((folder / "log.json").read_text())
    name = log["config"]["model"]  # folder: the model, or model-dataset (vgg16-cifar100)
    data = load_cifar("cifar100") if folder.name.endswith("-cifar100") else cifar10
    model, name, _, _ = load_model(folder / f"{name}.pt", name, num_classes=data.num_classes)
    assert log["test_images"] == len(data.x_test) and log["provenance"]["command"]
    top1 = evaluate(model, data.x_test, data.y_test, name, progress=False)
    assert top1 == pytest.approx(log["test_top1_fp16_file"], abs=0.05)


def test_weights_for_another_model_are_refused(shared_weights):
    with pytest.raises(ValueError, match="does not fit"):
        load_weights(get_model("resnet20"), shared_weights / "resnet56-4bfd9763.th")


@pytest.mark.slow
def test_saved_whole_model_reloads_without_its_builder(tmp_path):
    model = get_model("resnet20").eval()
    save_model(model, tmp_path / "m.pt", "resnet20", note="x")
    loaded, name, _, _ = load_model(tmp_path / "m.pt")
    x = torch.randn(2, 3, 32, 32)
    assert name == "resnet20" and torch.equal(loaded(x), model(x))


def test_latency_reports_the_conditions():
    timing = latency(get_model("resnet20"), batch_size=2, repeats=3, warmup=1, threads=1)
    assert timing.median_ms > 0 and timing.threads == 1 and timing.batch_size == 2 and timing.runtime == "eager"
    assert timing.q1_ms <= timing.median_ms <= timing.q3_ms


@pytest.mark.slow
def test_onnx_runtime_latency_runs_the_exported_graph_and_leaves_the_model_alone():
    model = get_model("resnet20").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    timing = latency(model, batch_size=3, repeats=2, warmup=1, threads=1, runtime="onnxruntime")
    assert timing.runtime == "onnxruntime" and timing.batch_size == 3 and timing.median_ms > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="unknown runtime 'tvm': choose one of eager, onnxruntime"):
        latency(model, runtime="tvm")
