"""What the grid's tests share: a one-cell table of the real ResNet-56, the CLI, and done cells' records."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ibprune_lib.harness.grid import Grid

TABLE = '''
from ibprune_lib.harness.grid import Cell

def cells(scale):
    return [Cell("resnet56", weights="weights:resnet56-4bfd9763.th", method="l1", target_flops=0.6)]
'''


def write_table(folder: Path, text: str = TABLE, name: str = "tiny") -> Path:
    path = folder / f"{name}.py"
    path.write_text(text)
    return path


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "ibprune_lib", *args], capture_output=True, text=True, **kwargs)


def grid_args(table: Path, root: Path) -> list[str]:
    return [str(table), "--scale", "smoke", "--results", str(root / "results"), "--work", str(root / "runs"),
            "--no-progress"]


def comparable(result: dict) -> dict:
    """What must not change between an interrupted and an uninterrupted run (times and provenance may)."""
    history = [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in result["finetune"]["history"]]
    seeds = [{k: v for k, v in seed.items() if k not in ("seconds", "selection_seconds", "layers")} | {
        "layers": [{k: v for k, v in layer.items() if k != "seconds"} for layer in seed["layers"]]}
        for seed in result["seeds"]]  # fmt: skip
    return {"stages": result["stages"], "counts": result["counts"], "history": history, "seeds": seeds}


def sized(record: dict, macs_kept: float = 0.6) -> dict:
    """``record`` with the counts of a cell that kept ``macs_kept`` of its MACs (0.6: as much as TABLE's cells)."""
    return record | {"counts": {"macs_before": 1000, "macs_after": round(1000 * macs_kept)}}


def done_record(model: str, total: float, finetune: float, epochs: int, solver: str | None = None,
                precision: str = "fp32", old: bool = False, hardware: dict | None = None,
                macs_kept: float = 0.6) -> dict:
    """What timing reads of a done cell's result; ``old``: one from before the selection settings and the
    fine-tuning precision were recorded (its options and its protocol's precision tell them); ``hardware``: the
    machine its provenance names (none when None); ``macs_kept``: the share of its MACs it kept."""
    options = [] if solver is None else [["solver", solver]]
    record = sized({"cell": {"model": model, "options": options, "selection_settings": dict(options)},
                    "protocol": {"finetune": {"precision": "fp32"}}, "seconds": {"total": total, "finetune": finetune},
                    "finetune": {"history": [{}] * epochs, "precision": precision if epochs else None}}, macs_kept)
    if hardware is not None:
        record["provenance"] = {"hardware": hardware}
    if old:
        del record["cell"]["selection_settings"], record["finetune"]["precision"]
    return record


def two_cell_grid(tmp_path: Path) -> Grid:
    """A smoke-scale grid of two ResNet-56 cells of one timing kind: TABLE's L1 cell, then an FPGM one."""
    weights = 'weights="weights:resnet56-4bfd9763.th"'
    text = TABLE.replace('method="l1", target_flops=0.6)]',
                         f'method="l1", target_flops=0.6), Cell("resnet56", {weights}, method="fpgm", target_flops=0.6)]')
    return Grid(str(write_table(tmp_path, text)), "smoke", results=tmp_path / "results", work=tmp_path / "runs")


def write_imagenet_folder(root: Path, classes: int = 10, train: int = 24, val: int = 4, size: int = 64) -> Path:
    """A tiny folder in ImageNet's layout (``train/`` and ``val/``, one ``nXXXXXXXX`` folder per class) of seeded
    JPEG images whose class shows in their mean colour, so that a few steps of training can learn something."""
    import numpy as np
    from PIL import Image

    generator = np.random.default_rng(0)
    for split, n in (("train", train), ("val", val)):
        for label in range(classes):
            folder = root / split / f"n{label:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            tint = generator.integers(0, 255, 3)
            for i in range(n):
                pixels = generator.integers(0, 90, (size, size, 3)) + tint * 0.6
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{split}_{label}_{i}.JPEG")
    return root
