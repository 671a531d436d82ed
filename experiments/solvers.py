"""The smoothed solver against the exact one, at the network level: the settings study's sGLP-IB and sTLP-IB cells
at the paper's settings, solved with SPG (the paper's solver) instead of the exact primal-dual method.

sTLP-IB's tree penalty has an exact prox (its groups are nested), which SPG uses by default, so SPG alone would
solve the very problem the exact solver solves (the first sTLP-IB cells here did: their channels matched the exact
ones). Its cells therefore also put the internal tree groups in the smoothed part (``tree_prox="smoothed"``,
formulation §3), so the row compares the paper's smoothed problem with the exact one.

Each SPG cell stands beside the exact solver's cell of the same network and method (the settings study's
paper-settings cells as first run, before the study held out a validation split: this table chooses nothing), so
the two keep comparable channels and top-1 (notebook 18, "Beyond the paper"). SPG's
selection is slow where sGLP-IB's graph is large: seconds a seed on ResNet-56, tens of minutes a seed for sGLP-IB
on VGG-16 and under a minute for sTLP-IB (each committed cell's ``selection_seconds``). So these cells are a table
of their own, run last (after the ablations); none runs at the smoke scale. Each seed's selection is saved as it
ends, so a run stopped half-way loses at most one seed.

    python -m ibprune_lib experiments run solvers --scale cpu
"""

from ibprune_lib.harness.grid import Cell

NETWORKS = {
    "resnet56": dict(weights="weights:resnet56-4bfd9763.th", target_flops=0.5),
    "vgg16": dict(weights="results/cpu/baselines/vgg16/vgg16.pt", target_params=0.15),
}
SMOOTHED = {"sglp": (("solver", "spg"),), "stlp": (("solver", "spg"), ("tree_prox", "smoothed"))}


def cells(scale: str) -> list[Cell]:
    if scale == "smoke":
        return []
    table = []
    for network, budget in NETWORKS.items():
        for method, smoothed in SMOOTHED.items():
            exact = Cell(network, method=method, finetune_epochs=0, **budget)
            table += [exact, Cell(network, method=method, finetune_epochs=0, options=smoothed, **budget)]
    return table
