"""Every committed result says what ran; the migration that made them so rebuilds old records from their fields."""

import copy
import json

import pytest

from ibprune_lib.harness.grid import PROTOCOLS
from ibprune_lib.harness.records import as_run, cell_of, cell_results
from ibprune_lib.paths import REPO_ROOT

COMMITTED = cell_results(REPO_ROOT / "results")


def test_the_committed_results_are_found():
    tables = {path.parent.name for path in COMMITTED}
    assert len(COMMITTED) >= 159 and {"table1", "table8", "ablations", "study", "solvers", "presets"} <= tables


@pytest.mark.parametrize("path", COMMITTED, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_every_committed_results_protocol_is_the_one_that_ran(path):
    result = json.loads(path.read_text())
    cell, protocol, finetune = cell_of(result), result["protocol"], result["finetune"]
    assert cell.id == result["cell"]["id"] == path.stem  # read by today's code, filed under the same id
    assert as_run(result) == result  # migrated: rewriting it changes nothing
    assert protocol["calibration_seeds"] == [record["seed"] for record in result["seeds"]]
    assert protocol["threads"] == result["provenance"]["hardware"]["torch_threads"]
    epochs = protocol["finetune"]["epochs"]
    assert epochs == finetune["epochs"] == len(finetune["history"])
    assert (epochs == 0) == (result["stages"]["finetuned"] is None)
    assert None not in finetune.values()
    if epochs:
        seed = result["seeds"][0]["seed"] if cell.finetune_seed is None else cell.finetune_seed
        assert finetune["seed"] == protocol["finetune"]["seed"] == seed
        assert finetune["precision"] == protocol["finetune"]["precision"] == (cell.finetune_precision or "fp32")
        threads = {epoch.get("threads") for epoch in finetune["history"]} - {None}
        assert threads <= {protocol["threads"]}


def _old_ablation_result() -> dict:
    """An ablation cell's result as written before the protocol was recorded per cell: the scale's recipe."""
    (path,) = [p for p in COMMITTED if p.parent.name == "ablations"][:1]
    result = json.loads(path.read_text())
    old = copy.deepcopy(result)
    recipe = PROTOCOLS["cpu"]
    old["protocol"] = {"scale": "cpu", "test_images": None, "calibration_seeds": None, "recalibration_batches": 40,
                       "recalibration_batch_size": 128, "monitor_images": 2000, "note": recipe.note,
                       "finetune": {"epochs": 8, **{k: v for k, v in json.loads(json.dumps(
                           recipe.finetune.__dict__)).items() if k not in ("model", "epochs")}}}
    old["finetune"] = {k: v for k, v in old["finetune"].items() if k in ("history", "wall_seconds")}
    return result, old


def test_the_migration_rebuilds_an_old_record_from_its_own_fields():
    migrated, old = _old_ablation_result()
    assert old["protocol"]["finetune"]["epochs"] == 8 and old["protocol"]["finetune"]["precision"] == "fp32"
    assert as_run(old) == migrated  # 3 bf16 epochs, as the cell declared and its history shows
    assert migrated["protocol"]["finetune"]["epochs"] == 3 and migrated["protocol"]["finetune"]["precision"] == "bf16"
    assert "8 epochs" not in migrated["protocol"]["note"]
    old["finetune"]["history"] = old["finetune"]["history"][:2]
    with pytest.raises(ValueError, match="2 epochs in its history, 3 declared"):
        as_run(old)
