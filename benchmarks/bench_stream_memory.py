"""Peak memory of the streamed image-folder path against the folder's size: does it stay flat as the folder grows?

Generates folders in ImageNet's layout (100 classes of seeded 64×64 JPEG noise, a tenth as many validation images)
of 2,000 and 20,000 training images, and for each, in a fresh process: lists the folder (``streaming.open_stream``),
draws a class-balanced calibration batch of 128, reads one whole training epoch through the ``DataLoader`` (2
workers, batches of 128, random-resized crops of 56) and every validation image as evaluation reads them. No
network runs: what is measured is the data path, whose peak resident memory (``getrusage``'s ``ru_maxrss``, of the
process and of its workers) is recorded per folder, after importing torch and torchvision and after each step.
The in-memory path would grow with the folder (3 × 56 × 56 bytes an image). Writes
``results/stream_memory.json``.

    python benchmarks/bench_stream_memory.py --sizes 2000 20000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import record

CLASSES = 100
CROP = 56


def write_folder(root: Path, train: int) -> None:
    """``train`` training and ``train // 10`` validation images of 64×64 seeded noise, spread over ``CLASSES``."""
    import numpy as np
    from PIL import Image

    generator = np.random.default_rng(0)
    for split, n in (("train", train), ("val", train // 10)):
        for i in range(n):
            folder = root / split / f"n{i % CLASSES:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(generator.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / f"{i}.JPEG")


def peak_mib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def measure(root: str) -> dict:
    """Run in a fresh process: list, calibrate, read an epoch and the validation images; the peak memory after
    each step and the seconds."""
    import torch
    import torchvision.datasets.folder  # noqa: F401  (imported before the first reading, like torch)

    from ibprune_lib import streaming

    started, peaks = time.perf_counter(), {"imports": peak_mib()}
    stream = streaming.open_stream(root, image_size=CROP, workers=2)
    peaks["listed"] = peak_mib()
    images, _ = streaming.calibration_batch(stream, 128, seed=0)
    peaks["calibrated"] = peak_mib()
    seen = sum(len(labels) for _, labels in streaming.training_batches(stream, 128, 0, 0, torch.device("cpu")))
    peaks["epoch_read"] = peak_mib()
    evaluated = sum(len(labels) for _, labels in streaming.evaluation_batches(stream, torch.device("cpu")))
    peaks["validation_read"] = peak_mib()
    return {"train_images": len(stream.train), "val_images": len(stream.val), "images_read_in_epoch": seen,
            "images_read_in_validation": evaluated, "calibration_images": len(images), "peak_rss_mib": peak_mib(),
            "peak_rss_mib_after": peaks, "peak_rss_worker_mib": peak_mib(resource.RUSAGE_CHILDREN),
            "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000], help="training images per folder")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child process: measure this folder
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    runs = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as root:
            write_folder(Path(root), size)
            child = subprocess.run([sys.executable, __file__, "--measure", root], capture_output=True, text=True,
                                   check=True)
            runs.append(json.loads(child.stdout.splitlines()[-1]))
            print(f"{size} images: peak {runs[-1]['peak_rss_mib']:.0f} MiB "
                  f"(workers {runs[-1]['peak_rss_worker_mib']:.0f} MiB)", flush=True)
    smallest, largest = runs[0], runs[-1]
    record("stream_memory", {
        "folder": f"{CLASSES} classes of 64x64 seeded-noise JPEGs, validation a tenth of training",
        "crop": CROP, "workers": 2, "batch_size": 128, "runs": runs,
        "peak_rss_growth": largest["peak_rss_mib"] / smallest["peak_rss_mib"] - 1,
        "peak_rss_worker_growth": largest["peak_rss_worker_mib"] / smallest["peak_rss_worker_mib"] - 1,
    })


if __name__ == "__main__":
    main()
