"""Where a result came from (commit, machine, library versions, time) and atomic file writes."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from .paths import REPO_ROOT

RESULT_FOLDERS_EXCLUDED = (":!results", ":!benchmarks/results")
"""Pathspecs that ``git_commit`` leaves out of its dirty check."""


def git_commit() -> str:
    """The repository's HEAD commit, with ``+dirty`` when tracked files outside the result folders
    (``results/``, ``benchmarks/results/``: what runs write, not what they run) have uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *RESULT_FOLDERS_EXCLUDED],
            cwd=REPO_ROOT, capture_output=True, text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hardware() -> dict[str, Any]:
    """The machine a measurement ran on."""
    info = {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def provenance(**extra: Any) -> dict[str, Any]:
    """A provenance record: commit, hardware, versions, UTC time, the machine's 1-, 5- and 15-minute load averages
    then (a wall time measured beside other work shows there), plus ``extra`` (scale, seeds, wall time…)."""
    return {
        "commit": git_commit(),
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware": hardware(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        **extra,
    }


def check_output_file(path: Path, flag: str) -> None:
    """Refuse, before any work, an output path that cannot become a regular file written atomically.

    Raises:
        ValueError: the path is a directory or another non-regular file (a device, a pipe), its folder does
            not exist, or the folder is not writable; the message names ``flag``.
    """
    if path.exists() and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise ValueError(f"{flag} {path} is {kind}; pass a file path (it is written atomically)")
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"{flag} {path}: the folder {folder} does not exist; create it or pass another path")
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        raise ValueError(f"{flag} {path}: cannot write in {folder} ({error.strerror}); pass a writable path") from None


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write a file through a temporary sibling and ``os.replace``, so a crash never leaves half a file.

    Args:
        path: the destination.
        write: called with the temporary path; it must create that file.

    Returns:
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 would make results unreadable to others
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def save_json(path: str | os.PathLike, payload: Any) -> Path:
    """Atomically write ``payload`` as indented JSON."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n"))


def save_torch(path: str | os.PathLike, payload: Any) -> Path:
    """Atomically ``torch.save`` ``payload``."""
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))
