import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "ibprune_lib", *args], capture_output=True, text=True)


def test_count_prints_the_papers_vgg16_counts():
    result = run("count", "--model", "vgg16")
    assert result.returncode == 0
    assert "314.57M MACs, 14.99M params (14.98M without batch norm)" in result.stdout


def test_eval_prints_top1(shared_weights):
    result = run("eval", "--model", "resnet20", "--weights", str(shared_weights / "resnet20-12fca82f.th"),
                 "--test-subset", "500")
    assert result.returncode == 0 and "test top-1" in result.stdout


def test_bad_input_is_one_clear_line(tmp_path):
    result = run("eval", "--model", "resnet20", "--weights", str(tmp_path / "missing.pt"))
    assert result.returncode == 2 and result.stderr.startswith("error: no weights at")
    result = run("eval", "--model", "resnet20", "--weights", str(tmp_path / "missing.pt"), "--data", str(tmp_path))
    assert result.returncode == 2 and "cifar10 not found" in result.stderr


def test_every_command_has_help():
    for command in ("train", "eval", "count"):
        assert run(command, "--help").returncode == 0
