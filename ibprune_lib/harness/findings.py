"""The findings page's claims that are not Table 1's or Table 8's: the Gram form's speed-up, latency, t-SNE.

Each is read from a committed measurement (``benchmarks/results/*.json``, ``results/cpu/tsne.json``) and set beside
the paper's number with a verdict in the book's three words. A timing or a picture measured once decides nothing
about a size; where the direction of a claim is all one measurement can show, the verdict says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..paths import REPO_ROOT
from .paper import GRAM_SPEEDUP, MODEL_LABELS, TABLE10
from .verdicts import FAILS, HOLDS, INCONCLUSIVE

BENCHMARKS = REPO_ROOT / "benchmarks" / "results"
TSNE = REPO_ROOT / "results" / "cpu" / "tsne.json"
COLUMNS = ["claim", "paper", "ours", "verdict", "measured"]


def gram_speedup(benchmarks: Path = BENCHMARKS) -> dict | None:
    """sGLP-IB's whole VGG-16 selection with raw maps against Gram matrices (``sglp_raw_maps.json``).

    Returns:
        ``{"gram_seconds", "raw_seconds", "speedup", "commit"}``, or None when the benchmark has not run.
    """
    path = benchmarks / "sglp_raw_maps.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    gram, raw = (record["forms"][form]["selection_seconds"] for form in ("gram", "raw"))
    return {"gram_seconds": gram, "raw_seconds": raw, "speedup": raw / gram, "commit": record["commit"]}


def latency_speedups(benchmarks: Path = BENCHMARKS, runtime: str = "eager",
                     batch_size: int = 1) -> dict[str, tuple[float, str]]:
    """Per network, unpruned over pruned median latency at Table 1's budget (``latency.json``) and a verdict on
    "the pruned network runs faster": holds where the pruned network's upper quartile lies below the unpruned one's
    lower quartile, fails where its lower quartile lies above the unpruned one's upper quartile, else
    inconclusive. ``{}`` when the benchmark has not run."""
    path = benchmarks / "latency.json"
    if not path.is_file():
        return {}

    def timing(timings: list[dict]) -> dict:
        return next(t for t in timings if t["runtime"] == runtime and t["batch_size"] == batch_size)

    out = {}
    for name, forms in json.loads(path.read_text())["networks"].items():
        if "pruned" not in forms:
            continue
        before, after = timing(forms["unpruned"]["timings"]), timing(forms["pruned"]["timings"])
        verdict = (HOLDS if after["q3_ms"] < before["q1_ms"] else FAILS if after["q1_ms"] > before["q3_ms"]
                   else INCONCLUSIVE)
        out[name] = (before["median_ms"] / after["median_ms"], verdict)
    return out


def tsne_separation(path: Path = TSNE) -> dict[str, float]:
    """k-NN accuracy (%) in the t-SNE map of each panel (``experiments/tsne.py``), ``{}`` when it has not run."""
    if not path.is_file():
        return {}
    return {name: panel["separation"]["knn_accuracy"] for name, panel in json.loads(path.read_text())["panels"].items()}


def other_claims(benchmarks: Path = BENCHMARKS, tsne: Path = TSNE) -> pd.DataFrame:
    """The paper's claims about cost and representations beside ours, one row each.

    Returns:
        Columns claim, paper, ours, verdict, measured ("one timing", "one map per kernel", …).
    """
    rows = []
    speed = gram_speedup(benchmarks)
    if speed is None:
        rows.append(["Gram matrices make sGLP-IB's selection faster than raw maps", f"{GRAM_SPEEDUP}×",
                     "not run yet", INCONCLUSIVE, "—"])
    else:
        verdict = (f"{HOLDS} in direction; the size is not reproduced" if speed["speedup"] > 1 else FAILS)
        rows.append(["Gram matrices make sGLP-IB's selection faster than raw maps", f"{GRAM_SPEEDUP}×",
                     f"{speed['speedup']:.1f}× ({speed['raw_seconds']:.0f} s against {speed['gram_seconds']:.0f} s, "
                     "VGG-16)", verdict, "one timing of each form"])
    speedups = latency_speedups(benchmarks)
    for name, (original, _, stlp) in TABLE10.items():
        claim = f"{MODEL_LABELS[name]} pruned runs faster (latency, batch 1)"
        if name not in speedups:
            rows.append([claim, f"{original / stlp:.1f}×", "not run yet", INCONCLUSIVE, "—"])
            continue
        ours, verdict = speedups[name]
        rows.append([claim, f"{original / stlp:.1f}× (Raspberry Pi 4B)", f"{ours:.2f}× (2-core CPU, PyTorch eager)",
                     verdict, "200 timings a network (quartiles apart or not), one pruned network"])
    separation = tsne_separation(tsne)
    kernels = {name.split("-")[1]: value for name, value in separation.items() if name.startswith("stlp-")}
    if kernels:
        best = max(kernels, key=kernels.get)
        rows.append(["The Laplacian kernel separates the classes best (t-SNE, Fig. 2)", "Laplacian",
                     f"{best} ({kernels[best]:.1f}% k-NN accuracy in the map; Laplacian {kernels['laplacian']:.1f}%)",
                     INCONCLUSIVE, "one map per kernel, sTLP-IB on VGG-16"])
    return pd.DataFrame(rows, columns=COLUMNS)
