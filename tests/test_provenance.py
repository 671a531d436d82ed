"""git_commit: +dirty when code changed, not when a run wrote its results; the load beside a record."""

import subprocess

from ibprune_lib import provenance


def test_results_written_by_a_run_do_not_make_the_commit_dirty(tmp_path, monkeypatch):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    for path in ("code.py", "results/cpu/cell.json", "benchmarks/results/bench.json"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("0\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path)
    clean = provenance.git_commit()
    assert len(clean) == 40
    (tmp_path / "results/cpu/cell.json").write_text("1\n")
    (tmp_path / "benchmarks/results/bench.json").write_text("1\n")
    assert provenance.git_commit() == clean
    (tmp_path / "code.py").write_text("1\n")
    assert provenance.git_commit() == clean + "+dirty"


def test_a_record_says_how_busy_the_machine_was(monkeypatch):
    monkeypatch.setattr(provenance.os, "getloadavg", lambda: (1.234, 0.5, 2.0))
    assert provenance.provenance(scale="cpu")["load_average"] == [1.23, 0.5, 2.0]
