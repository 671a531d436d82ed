"""The method's layer stands apart from the reproduction harness: importing it runs nothing and reads no checkout.

The third-party libraries are imported before the audit starts: torch runs ``ldconfig`` when it loads.
"""

import subprocess
import sys

import pytest

from ibprune_lib.paths import REPO_ROOT

AUDIT = r"""
import sys
import numpy, scipy.cluster.hierarchy, torch, torch_pruning, torchvision, tqdm  # torch itself runs ldconfig
seen = []
def hook(event, args):
    if event == "subprocess.Popen" or event == "os.system" or event == "os.posix_spawn":
        seen.append(f"{event} {args[:2]}")
    elif event == "open" and isinstance(args[0], str) and args[0].startswith(ROOT):
        path = args[0]
        if not (path.endswith((".py", ".pyc")) or "/__pycache__/" in path or "/.venv/" in path):
            seen.append(f"open {path}")
sys.addaudithook(hook)
import ibprune_lib.pruning, ibprune_lib.selection, ibprune_lib.settings, ibprune_lib.train, ibprune_lib.data
assert not any(name.startswith("ibprune_lib.harness") for name in sys.modules), "the harness was imported"
print("\n".join(seen))
"""


@pytest.mark.slow
def test_importing_the_method_spawns_no_process_reads_no_checkout_file_and_leaves_the_harness_out():
    script = AUDIT.replace("ROOT", repr(str(REPO_ROOT)))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


@pytest.mark.slow
def test_the_audit_sees_a_process_and_a_checkout_file():
    """The check above could fail: the same hook reports git and a read of the README."""
    script = AUDIT.replace("ROOT", repr(str(REPO_ROOT))).replace(
        'print("\\n".join(seen))',
        'import subprocess; subprocess.run(["true"]); open(' + repr(str(REPO_ROOT / "README.md")) + ').close()\n'
        'print("\\n".join(seen))')
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/")
    assert "subprocess.Popen" in done.stdout and "README.md" in done.stdout
