"""Experiments as a grid of cells: one configuration each, resumable, one JSON result per cell.

A table is a Python file ``experiments/<table>.py`` whose ``cells(scale)`` returns a list of :class:`Cell`;
every cell follows its scale's :class:`Protocol`. By concern: :mod:`.cell` (declaration and id), :mod:`.protocol`
(what a scale does), :mod:`.tables` (finding a table by name), :mod:`.runner` (locks, resume, one cell's run),
:mod:`.estimates` (seconds left, from the seconds done cells saved), :mod:`.status` (what ``status`` prints).

    python -m ibprune_lib experiments status table1 --scale cpu
    python -m ibprune_lib experiments run table1 --scale cpu [--cell ID] [--device cuda]
"""

from .cell import LATER_FIELDS, RAW_MAP_METHODS, UNTRAINED, Cell
from .estimates import NOT_RUN_HERE, compute_left, expected_macs_kept, expected_seconds, timing_kind
from .protocol import PROTOCOLS, SCALES, Protocol
from .runner import LAYER_KEYS, Grid, mean_spread, run_cell
from .status import distinguishing_settings, status_line
from .tables import TABLES, load_table

__all__ = [
    "LATER_FIELDS", "LAYER_KEYS", "NOT_RUN_HERE", "PROTOCOLS", "RAW_MAP_METHODS", "SCALES", "TABLES", "UNTRAINED",
    "Cell", "Grid", "Protocol", "compute_left", "distinguishing_settings", "expected_macs_kept", "expected_seconds",
    "load_table", "mean_spread", "run_cell", "status_line", "timing_kind",
]
