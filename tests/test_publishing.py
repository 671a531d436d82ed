"""The publishing route and the interactive one: the workflow builds with the README's command, `make lab` exists."""

import re
import subprocess

import yaml

from ibprune_lib.paths import REPO_ROOT


def test_the_pages_workflow_builds_with_the_readmes_command_and_deploys_the_html():
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "book.yml").read_text())
    build = workflow["jobs"]["build"]["steps"]
    commands = [step["run"] for step in build if "run" in step]
    readme = (REPO_ROOT / "README.md").read_text()
    quick_start = re.search(r"## Quick start\n\n```bash\n(.*?)```", readme, flags=re.S).group(1)
    assert "make book" in quick_start and "make book" in commands
    uploads = [step for step in build if step.get("uses", "").startswith("actions/upload-pages-artifact")]
    assert [step["with"]["path"] for step in uploads] == ["_build/html"]
    deploy = workflow["jobs"]["deploy"]
    deploys = [step for step in deploy["steps"] if step.get("uses", "").startswith("actions/deploy-pages")]
    assert deploys and deploy["needs"] == "build"


def test_make_lab_opens_the_notebooks_with_the_projects_environment_at_the_scale_asked():
    dry = subprocess.run(["make", "-n", "lab", "IBPRUNE_SCALE=cpu"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert ".venv/bin/jupyter lab" in dry.stdout and "notebooks" in dry.stdout
    assert "make lab" in (REPO_ROOT / "README.md").read_text()
