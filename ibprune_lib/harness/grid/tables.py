"""The tables: each a file ``experiments/<name>.py`` whose ``cells(scale)`` returns its cells, found by name."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ...paths import experiments_dir
from .cell import Cell
from .protocol import SCALES

TABLES = ("table1", "table8", "table2", "longer", "presets", "study", "ablations", "solvers", "beyond")
"""The tables declared under ``experiments/``, in the order the grid runs them by default."""


def load_table(table: str, scale: str) -> list[Cell]:
    """The cells of ``table`` at ``scale``: a name in :data:`TABLES` or a path to a ``.py`` file with ``cells``.

    Raises:
        ValueError: unknown scale or table, a table with duplicate cells, or an invalid cell.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown --scale {scale!r}: choose one of {', '.join(SCALES)}")
    if table.endswith(".py"):
        path = Path(table)
    elif table in TABLES:
        path = experiments_dir() / f"{table}.py"
    else:
        raise ValueError(f"unknown table {table!r}: choose one of {', '.join(TABLES)} or give a path to a .py file")
    spec = importlib.util.spec_from_file_location(f"ibprune_table_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except FileNotFoundError:
        raise ValueError(f"table file {path} does not exist: give a path to a .py file or one of "
                         f"{', '.join(TABLES)}") from None
    if not hasattr(module, "cells"):
        raise ValueError(f"table file {path} declares no cells(scale) function")
    cells = list(module.cells(scale))
    ids = [cell.id for cell in cells]
    if len(set(ids)) != len(ids):
        raise ValueError(f"table {table!r} declares the same cell twice")
    for cell in cells:
        cell.check()
    return cells
