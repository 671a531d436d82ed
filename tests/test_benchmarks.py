"""The benchmarks' shared record (``benchmarks/common.py``): a stopped benchmark goes on only from a run that
measured the same thing, with the same code, on the same machine."""

import importlib.util
import json
from pathlib import Path

import pytest

from ibprune_lib import provenance

COMMIT = "a" * 40


@pytest.fixture
def common(monkeypatch, tmp_path):
    """``benchmarks/common.py``, writing into ``tmp_path``, at a clean commit COMMIT."""
    path = Path(__file__).parent.parent / "benchmarks" / "common.py"
    spec = importlib.util.spec_from_file_location("bench_common", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS", tmp_path)
    for owner in (module, provenance):
        monkeypatch.setattr(owner, "git_commit", lambda: COMMIT)
    return module


def test_a_stopped_benchmark_goes_on_only_from_a_run_of_this_commit_machine_and_settings(common, monkeypatch, tmp_path):
    settings = {"model": "resnet50", "batch_size": 128}
    assert common.earlier_record("bench", settings) == {}
    common.record("bench", {**settings, "methods": {"l1": {"selection_seconds": 0.01}}})
    assert common.earlier_record("bench", settings)["methods"] == {"l1": {"selection_seconds": 0.01}}
    assert common.earlier_record("bench", {**settings, "batch_size": 64}) == {}

    record_file = tmp_path / "bench.json"
    other_machine = json.loads(record_file.read_text())
    other_machine["hardware"]["torch_threads"] += 1
    record_file.write_text(json.dumps(other_machine))
    assert common.earlier_record("bench", settings) == {}

    common.record("bench", {**settings, "methods": {}})
    assert common.earlier_record("bench", settings)["commit"] == COMMIT
    monkeypatch.setattr(common, "git_commit", lambda: "b" * 40)
    assert common.earlier_record("bench", settings) == {}, "another commit measures other code"
    monkeypatch.setattr(common, "git_commit", lambda: COMMIT + "+dirty")
    assert common.earlier_record("bench", settings) == {}, "uncommitted code may differ from the earlier run's"
