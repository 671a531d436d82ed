"""The README's Python example runs as written."""

import re

from ibprune_lib.paths import REPO_ROOT


def test_the_readme_python_example_runs(shared_weights, capsys):
    readme = (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(blocks) == 1, "the README has one Python example, and this test runs it"
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    lines = capsys.readouterr().out.splitlines()
    assert abs(float(lines[0]) - 0.6) < 0.02 and 0 <= float(lines[-1]) <= 100
    assert namespace["result"].report["kept_whole"] and namespace["model"] is not namespace["result"].model
