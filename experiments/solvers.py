"""The smoothed solver against the exact one, at the network level: the settings study's sGLP-IB and sTLP-IB cells
at the paper's settings, solved with SPG (the paper's solver) instead of the exact primal-dual method.

sTLP-IB's tree penalty has an exact prox (its groups are nested), which SPG uses by default, so SPG alone would
solve the very problem the exact solver solves (the first sTLP-IB cells here did: their channels matched the exact
ones). Its cells therefore also put the internal tree groups in the smoothed part (``tree_prox="smoothed"``,
formulation §3), so the row compares the paper's smoothed problem with the exact one.

The exact solver's cells are the study's own (``experiments/study.py``); each cell here differs from one of them
in the solver alone, so the two keep comparable channels and top-1 (notebook 18, "Beyond the paper"). SPG's
selection is slow where sGLP-IB's graph is large: seconds a seed on ResNet-56, tens of minutes a seed for sGLP-IB
on VGG-16 and under a minute for sTLP-IB (each committed cell's ``selection_seconds``). So these cells are a table
of their own, run last (after the ablations); none runs at the smoke scale. Each seed's selection is saved as it
ends, so a run stopped half-way loses at most one seed.

    python -m ibprune_lib experiments run solvers --scale cpu
"""

from dataclasses import replace

from ibprune_lib.experiments import Cell, load_table


def cells(scale: str) -> list[Cell]:
    if scale == "smoke":
        return []
    exact = [cell for cell in load_table("study", scale)
             if cell.method in ("sglp", "stlp") and cell == replace(cell, preset="paper", kernel="laplacian",
                                                                   direction="rows", options=())]  # fmt: skip
    smoothed = {"sglp": (("solver", "spg"),), "stlp": (("solver", "spg"), ("tree_prox", "smoothed"))}
    return [replace(cell, options=smoothed[cell.method]) for cell in exact]
