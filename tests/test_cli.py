import os
import subprocess
import sys
from pathlib import Path

import pytest

from ibprune_lib.cli import PYTHON_NAMES_AS_FLAGS
from ibprune_lib.errors import OptionError
from ibprune_lib.pruning.budget import target_range


def run(*args):
    return subprocess.run([sys.executable, "-m", "ibprune_lib", *args], capture_output=True, text=True)


@pytest.mark.slow
def test_count_prints_the_papers_vgg16_counts():
    result = run("count", "--model", "vgg16")
    assert result.returncode == 0
    assert "314.57M MACs, 14.99M params (14.98M without batch norm)" in result.stdout


def test_eval_prints_top1(shared_weights):
    result = run("eval", "--model", "resnet20", "--weights", str(shared_weights / "resnet20-12fca82f.th"),
                 "--test-subset", "500")
    assert result.returncode == 0 and "test top-1" in result.stdout


@pytest.mark.needs_data
@pytest.mark.slow
def test_bad_input_is_one_clear_line(tmp_path):
    result = run("eval", "--model", "resnet20", "--weights", str(tmp_path / "missing.pt"))
    assert result.returncode == 2 and result.stderr.startswith("error: no weights at")
    result = run("eval", "--model", "resnet20", "--weights", str(tmp_path / "missing.pt"), "--data", str(tmp_path))
    assert result.returncode == 2 and "cifar10 not found" in result.stderr


@pytest.mark.slow
def test_every_command_has_help():
    top = run("--help")
    commands = top.stdout.split("{", 1)[1].split("}", 1)[0].split(",")
    assert top.returncode == 0 and commands == ["train", "eval", "count", "prune", "experiments"]
    for command in commands:
        shown = run(command, "--help")
        assert shown.returncode == 0 and shown.stdout.startswith(f"usage: ibprune {command}")


def prune_args(weights, out, *extra):
    return ["prune", "--model", "resnet20", "--weights", str(weights), "--target-flops", "0.5", "--out", str(out),
            *extra]


@pytest.mark.parametrize(("extra", "message"), [
    (["--test-subset", "-5"], "error: --test-subset must be >= 0, got -5"),
    (["--batch-size", "1"], "error: --batch-size must be >= 2, got 1"),
    (["--finetune-epochs", "-1"], "error: --finetune-epochs must be >= 0, got -1"),
    (["--method", "l1", "--kernel", "gaussian"], "error: --kernel applies to the information-bottleneck methods"),
    (["--method", "l1", "--preset", "tuned"], "error: --preset applies to the information-bottleneck methods"),
    (["--target-params", "0.5"], "error: prune needs exactly one of --target-params and --target-flops"),
    (["--recalibrate-bn", "0"], "error: --recalibrate-bn must be >= 1 batch"),
])
def test_prune_refuses_bad_numbers_before_any_work(shared_weights, tmp_path, extra, message):
    result = run(*prune_args(shared_weights / "resnet20-12fca82f.th", tmp_path / "p.pt", *extra))
    assert result.returncode == 2 and result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("choice", [["--method", "obd"], ["--kernel", "rbf"], ["--direction", "up"],
                                    ["--widths", "wide"], ["--preset", "best"]])
def test_prune_choices_are_listed_and_enforced(shared_weights, tmp_path, choice):
    result = run(*prune_args(shared_weights / "resnet20-12fca82f.th", tmp_path / "p.pt", *choice))
    assert result.returncode == 2 and f"argument {choice[0]}: invalid choice" in result.stderr
    assert choice[0] in run("prune", "--help").stdout


def test_prune_refuses_an_output_that_cannot_be_a_regular_file(shared_weights, tmp_path):
    weights = shared_weights / "resnet20-12fca82f.th"
    for out, message in ((tmp_path, "is a directory"), (Path("/dev/full"), "is not a regular file"),
                         (tmp_path / "missing" / "p.pt", "does not exist")):
        result = run(*prune_args(weights, out))
        assert result.returncode == 2 and f"error: --out {out}" in result.stderr and message in result.stderr
    assert Path("/dev/full").is_char_device() and list(tmp_path.iterdir()) == []
    if os.geteuid() != 0:  # root writes anywhere: the read-only case needs an ordinary user
        tmp_path.chmod(0o555)
        result = run(*prune_args(weights, tmp_path / "p.pt"))
        assert result.returncode == 2 and "cannot write in" in result.stderr


@pytest.mark.needs_data
@pytest.mark.slow
@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated"])
def test_a_corrupt_or_empty_weights_file_is_one_line(tmp_path, content):
    (tmp_path / "bad.pt").write_bytes(content)
    result = run("eval", "--model", "resnet20", "--weights", str(tmp_path / "bad.pt"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "is not a checkpoint torch can read" in result.stderr


def test_unreachable_target_names_the_range_and_skip_first(shared_weights, tmp_path):
    result = run("prune", "--model", "resnet20", "--weights", str(shared_weights / "resnet20-12fca82f.th"),
                 "--method", "l1", "--target-flops", "0.2", "--out", str(tmp_path / "p.pt"), "--test-subset", "0")
    assert result.returncode == 2 and "reaches keep ratios in [" in result.stderr and "--skip-first" in result.stderr


def test_eval_refuses_a_model_name_that_contradicts_a_saved_model(shared_weights, tmp_path):
    out = tmp_path / "p.pt"
    assert run(*prune_args(shared_weights / "resnet20-12fca82f.th", out, "--method", "l1", "--skip-first", "2",
                           "--test-subset", "0")).returncode == 0
    result = run("eval", "--model", "resnet56", "--weights", str(out))
    assert result.returncode == 2 and "holds a saved resnet20, not a resnet56" in result.stderr


@pytest.mark.parametrize("quiet", [False, True])
def test_no_progress_silences_every_bar_of_prune_and_eval(shared_weights, tmp_path, quiet):
    flag = ["--no-progress"] if quiet else []
    out = tmp_path / "p.pt"
    pruned = run(*prune_args(shared_weights / "resnet20-12fca82f.th", out, "--method", "l1", "--batch-size", "16",
                             "--recalibrate-bn", "2", "--test-subset", "100", *flag))
    evaluated = run("eval", "--weights", str(out), "--test-subset", "100", *flag)
    assert pruned.returncode == 0 and evaluated.returncode == 0, pruned.stderr + evaluated.stderr
    bars = [name for name, result in (("prune", pruned), ("eval", evaluated)) if "%|" in result.stderr]
    assert bars == ([] if quiet else ["prune", "eval"])


@pytest.mark.slow
def test_an_option_error_names_python_parameters_in_the_library_and_flags_on_the_command_line(tmp_path):
    with pytest.raises(OptionError, match=r"^target_flops must be a keep ratio in \(0, 1\], got 1.5$") as caught:
        target_range(1.5, "target_flops")
    assert caught.value.worded(PYTHON_NAMES_AS_FLAGS) == "--target-flops must be a keep ratio in (0, 1], got 1.5"
    assert OptionError("{{literal}} {skip_first} {other}").worded({"skip_first": "--skip-first"}) == (
        "{literal} --skip-first other")  # an option the caller does not name stays as it is
    result = run("prune", "--model", "resnet20", "--weights", str(tmp_path / "none.pt"), "--target-flops", "1.5",
                 "--out", str(tmp_path / "p.pt"))  # refused before the weights are looked for
    assert result.returncode == 2 and result.stderr.startswith("error: --target-flops must be a keep ratio")
