"""The book's configuration per scale: Jupyter Book's execution cache keyed by ``IBPRUNE_SCALE`` too."""

from __future__ import annotations

import os
from pathlib import Path

from ..grid.protocol import SCALES



def write_book_config(scale: str, build_dir: str | os.PathLike = "_build", source: str | os.PathLike = "_config.yml"):
    """Write ``<build_dir>/config-<scale>.yml``: ``source`` with the execution cache set to one per scale.

    Jupyter Book's execution cache keys on the notebooks' code, not on ``IBPRUNE_SCALE``, so a smoke build
    and a cpu build need separate caches. Sphinx's doctrees do not know the scale either: when the scale
    differs from the last build's (``<build_dir>/.scale``), the doctrees and HTML are removed so that every
    page is read again (execution still comes from the scale's own cache).

    Args:
        scale: one of ``SCALES``.
        build_dir: the book's build folder.
        source: the book's ``_config.yml``.

    Returns:
        The path of the written configuration.
    """
    import shutil

    import yaml

    if scale not in SCALES:
        raise ValueError(f"--scale must be one of {', '.join(SCALES)}, got {scale!r}")
    build = Path(build_dir)
    build.mkdir(parents=True, exist_ok=True)
    marker = build / ".scale"
    if marker.is_file() and marker.read_text().strip() != scale:
        for stale in (".doctrees", "html", "jupyter_execute"):
            shutil.rmtree(build / stale, ignore_errors=True)
    config = yaml.safe_load(Path(source).read_text())
    config.setdefault("execute", {})["cache"] = str((build / ".jupyter_cache" / scale).resolve())
    out = build / f"config-{scale}.yml"
    out.write_text(f"# generated from {source} for IBPRUNE_SCALE={scale}; do not edit\n" + yaml.safe_dump(config, sort_keys=False))
    marker.write_text(scale + "\n")
    return out
