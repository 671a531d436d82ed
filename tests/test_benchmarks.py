"""The benchmarks' shared record (``benchmarks/common.py``): a stopped benchmark goes on only from a record
measured on the same machine, with the same threads and settings; the zoo benchmark's outcomes; the latency
benchmark's rounded widths."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from ibprune_lib import provenance


@pytest.fixture
def common(monkeypatch, tmp_path):
    """``benchmarks/common.py``, writing into ``tmp_path``."""
    path = Path(__file__).parent.parent / "benchmarks" / "common.py"
    spec = importlib.util.spec_from_file_location("bench_common", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS", tmp_path)
    monkeypatch.setattr(provenance, "git_commit", lambda: "a" * 40)
    return module


def test_a_stopped_benchmark_goes_on_only_from_a_record_of_this_machine_threads_and_settings(common, tmp_path):
    settings = {"model": "resnet50", "batch_size": 128}
    assert common.earlier_record("bench", settings) == {}, "no record yet: nothing to keep"
    busy_later = (common.LOAD_AT_START[0] + 7.0, 7.0, 7.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(common.os, "getloadavg", lambda: busy_later)  # the machine got busy while it ran
        common.record("bench", {**settings, "methods": {"l1": {"selection_seconds": 0.01}}})
    assert common.earlier_record("bench", settings)["methods"] == {"l1": {"selection_seconds": 0.01}}
    recorded = json.loads((tmp_path / "bench.json").read_text())
    assert recorded["load_average_at_start"] == [round(x, 2) for x in common.LOAD_AT_START] != list(busy_later)
    assert recorded["load_average"][0] == round(busy_later[0], 2)  # and how busy it was when it ended
    assert common.earlier_record("bench", {**settings, "batch_size": 64}) is None

    record_file = tmp_path / "bench.json"
    other_threads = json.loads(record_file.read_text())
    other_threads["hardware"]["torch_threads"] += 1
    record_file.write_text(json.dumps(other_threads))
    assert common.earlier_record("bench", settings) is None


def benchmark_script(name: str, common, monkeypatch):
    """The module ``benchmarks/<name>.py``, importing the ``common`` above."""
    monkeypatch.setitem(sys.modules, "common", common)
    path = Path(__file__).parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def zoo(common, monkeypatch):
    """``benchmarks/bench_torchvision_zoo.py``."""
    return benchmark_script("bench_torchvision_zoo", common, monkeypatch)


def test_the_latency_benchmark_times_widths_rounded_to_multiples_of_n_at_the_same_budget(common, monkeypatch, tmp_path):
    bench = benchmark_script("bench_latency", common, monkeypatch)
    monkeypatch.setattr(bench, "BATCHES", {1: dict(repeats=2, warmup=1)})
    monkeypatch.setattr(sys, "argv", ["bench_latency.py", "--models", "resnet56", "--round-to", "8", "16",
                                      "--threads", "1"])  # fmt: skip
    bench.main()
    network = json.loads((tmp_path / "latency.json").read_text())["networks"]["resnet56"]
    unpruned_macs = network["unpruned"]["macs"]
    assert "multiples of 16 reaches keep ratios" in network["rounded"]["16"]["unreachable"]  # its 16-wide stage
    rounded = network["rounded"]["8"]
    assert rounded["kept"] != network["kept"] and all(k % 8 == 0 for k in rounded["kept"])
    assert abs(rounded["macs"] / unpruned_macs - network["pruned"]["macs"] / unpruned_macs) < 0.01
    assert {t["runtime"] for t in rounded["timings"]} == {t["runtime"] for t in network["pruned"]["timings"]}


def test_the_zoo_benchmark_tells_pruned_from_refused_for_us_and_for_torch_pruning(zoo):
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    model = zoo.initial_model("mobilenet_v3_small", images)
    assert zoo.natural_size("mobilenet_v3_small") == 224 and zoo.natural_size("inception_v3") == 299
    pruned = zoo.ours(model, images, "l1")
    assert pruned["outcome"] == "pruned" and abs(pruned["macs_ratio"] - zoo.TARGET_MACS) < 0.01
    assert 0 < zoo.smallest_ratio(model, 32) < zoo.TARGET_MACS
    assert zoo.torch_pruning(model, 32)["macs_ratio"] <= zoo.TARGET_MACS * 1.01
    shuffle = zoo.initial_model("shufflenet_v2_x0_5", images)
    refused = zoo.ours(shuffle, images, "l1")  # Torch-Pruning cannot trace its channel shuffle: one line
    assert refused["outcome"] == "refused" and "\n" not in refused["reason"]
    assert "ZeroDivisionError" in refused["reason"]
    assert zoo.torch_pruning(shuffle, 32)["outcome"] == "failed"
