"""Peak memory of the streamed image-folder path against the folder's size: does it stay flat as the folder grows?

Generates folders in ImageNet's layout (100 classes of seeded 64×64 JPEG noise, a tenth as many validation images)
of 2,000 and 20,000 training images, and for each, in a fresh process: lists the folder (``streaming.open_stream``),
draws a class-balanced calibration batch of 128, reads one whole training epoch through the ``DataLoader`` (2
workers, batches of 128, random-resized crops of 56) and evaluates an untrained ResNet-20 on every validation
image. The peak resident memory of the process and of its workers (``getrusage``'s ``ru_maxrss``) is recorded
per folder; the in-memory path would grow with the folder (3 × 56 × 56 bytes an image). Writes
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


def measure(root: str) -> dict:
    """Run in a fresh process: list, calibrate, read an epoch and evaluate; the peak memory and the seconds."""
    import torch

    from ibprune_lib import streaming
    from ibprune_lib.models import get_model
    from ibprune_lib.train import top1

    started = time.perf_counter()
    stream = streaming.open_stream(root, image_size=CROP, workers=2)
    images, _ = streaming.calibration_batch(stream, 128, seed=0)
    seen = sum(len(labels) for _, labels in streaming.training_batches(stream, 128, 0, 0, torch.device("cpu")))
    accuracy = top1(get_model("resnet20", num_classes=CLASSES).eval(), stream, "resnet20")
    own, workers = (resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {"train_images": len(stream.train), "val_images": len(stream.val), "images_read_in_epoch": seen,
            "calibration_images": len(images), "top1_untrained": accuracy, "peak_rss_mib": own / 1024,
            "peak_rss_worker_mib": workers / 1024, "seconds": time.perf_counter() - started}


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
            print(f"{size} images: peak {runs[-1]['peak_rss_mib']:.0f} MiB (workers {runs[-1]['peak_rss_worker_mib']:.0f} MiB)",
                  flush=True)
    smallest, largest = runs[0], runs[-1]
    record("stream_memory", {
        "folder": f"{CLASSES} classes of 64x64 seeded-noise JPEGs, validation a tenth of training",
        "crop": CROP, "workers": 2, "batch_size": 128, "runs": runs,
        "peak_rss_growth": largest["peak_rss_mib"] / smallest["peak_rss_mib"] - 1,
        "peak_rss_worker_growth": largest["peak_rss_worker_mib"] / smallest["peak_rss_worker_mib"] - 1,
    })


if __name__ == "__main__":
    main()
