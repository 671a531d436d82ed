"""Large image folders read as they are used: ImageNet (ILSVRC2012) and anything else in its layout.

``open_stream(root)`` lists ``root/train/<class>/*`` and ``root/val/<class>/*`` — file names only, no image is
read — and checks the layout in one line. Batches are then decoded by ``DataLoader`` workers with the standard
ImageNet transforms (training: random-resized crop + horizontal flip; evaluation: resize to 256/224 of the crop,
centre crop), as **uint8** tensors, like the in-memory datasets: the device normalises them
(``data.normalise``), so the rest of the library treats a stream and CIFAR alike. Memory stays flat as the
folder grows: ``benchmarks/results/stream_memory.json`` measures it.

Under ``torchrun`` each rank reads its own share: a ``DistributedSampler`` seeded with the recipe's seed for
training (the same order for a given seed and epoch, whatever the number of ranks' shares), every
``world_size``-th image for evaluation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from . import distributed
from .data import DatasetNotFoundError

EVAL_RESIZE = 256 / 224
"""Evaluation resizes the shorter side to this multiple of the crop, then centre-crops (the ImageNet convention)."""


@dataclass(frozen=True)
class FolderStream:
    """An image folder read on demand.

    Attributes:
        root: the folder holding ``train/`` and ``val/``.
        image_size: the side of the square crops.
        classes: class names, in label order (the sorted subfolders of ``train/``).
        train: (path, label) of every training image.
        val: (path, label) of every evaluation image.
        workers: ``DataLoader`` worker processes per rank (0: decode in the calling process).
    """

    root: str
    image_size: int
    classes: tuple[str, ...]
    train: tuple[tuple[str, int], ...]
    val: tuple[tuple[str, int], ...]
    workers: int = 4

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def label(self) -> str:
        return f"image folder {self.root} (streamed, {self.image_size} px crops)"

    @property
    def y_train(self) -> torch.Tensor:
        """(N,) int64 labels of the training images (no image read)."""
        return torch.tensor([label for _, label in self.train], dtype=torch.int64)


def open_stream(root: str | os.PathLike, image_size: int = 224, workers: int | None = None) -> FolderStream:
    """List an image folder's files and check its layout; no image is decoded.

    Args:
        root: a folder with ``train/`` and ``val/``, one subfolder per class in each (ILSVRC2012's layout).
        image_size: crop side (224 for ImageNet).
        workers: ``DataLoader`` workers per rank (default: 4, or the cores this process may use if fewer).

    Raises:
        DatasetNotFoundError: no ``train/`` or ``val/``, a class of one split that the other lacks, or a class
            folder without images; one line, naming the folder and the fix.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    root = Path(root)
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise DatasetNotFoundError(f"{root / split} does not exist. Fix: pass the folder that holds train/ and "
                                       "val/ with one subfolder per class (ILSVRC2012's layout)")
    classes, to_label = find_classes(str(root / "train"))
    val_classes, _ = find_classes(str(root / "val"))
    for split, missing in (("val", sorted(set(classes) - set(val_classes))),
                           ("train", sorted(set(val_classes) - set(classes)))):
        if missing:
            raise DatasetNotFoundError(f"{root / split} lacks class {missing[0]!r}"
                                       f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}: train/ and "
                                       "val/ must hold the same class folders")
    splits = {split: tuple(make_dataset(str(root / split), to_label, IMG_EXTENSIONS, allow_empty=True))
              for split in ("train", "val")}
    for split, samples in splits.items():
        empty = sorted(set(range(len(classes))) - {label for _, label in samples})
        if empty:
            raise DatasetNotFoundError(f"{root / split / classes[empty[0]]} holds no images "
                                       f"({', '.join(IMG_EXTENSIONS[:4])}, ...): every class needs some in both splits")
    workers = min(4, len(os.sched_getaffinity(0))) if workers is None else workers
    return FolderStream(str(root), image_size, tuple(classes), splits["train"], splits["val"], workers)


class _Images(Dataset):
    """(path, label) pairs decoded as uint8 (3, s, s) crops; random ones (``seed`` given) drawn from a generator
    seeded with ``(seed, index)``, so an image's crop does not depend on which worker or rank reads it."""

    def __init__(self, samples, image_size: int, seed: int | None = None):
        from torchvision.transforms import v2

        self.samples, self.seed = samples, seed
        steps = ([v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()] if seed is not None
                 else [v2.Resize(round(image_size * EVAL_RESIZE), antialias=True), v2.CenterCrop(image_size)])
        self.transform = v2.Compose([v2.PILToTensor(), *steps])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from torchvision.datasets.folder import pil_loader

        path, label = self.samples[index]
        if self.seed is None:
            return self.transform(pil_loader(path)), label
        with torch.random.fork_rng(devices=[]):  # torchvision's random transforms draw from the global generator
            torch.manual_seed(self.seed * 1_000_003 + index)
            return self.transform(pil_loader(path)), label


def _loader(stream: FolderStream, dataset: Dataset, batch_size: int, device: torch.device, **options) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, num_workers=stream.workers, pin_memory=device.type == "cuda",
                      persistent_workers=False, **options)


def training_batches(stream: FolderStream, batch_size: int, seed: int, epoch: int, device: torch.device) -> DataLoader:
    """One epoch of augmented training batches for this rank.

    The order is a ``DistributedSampler``'s for ``(seed, epoch)``; an image's crop and flip come from
    ``(seed, epoch, index)``, so a run resumed at an epoch reads what the uninterrupted run read, with any number of
    workers.

    Args:
        stream: the folder.
        batch_size: the global batch; each of the ``world_size`` ranks gets ``batch_size / world_size`` of it.
        seed: the recipe's seed.
        epoch: 0-based epoch.
        device: where the batches go (pinned memory on CUDA).

    Returns:
        A loader of ``(uint8 (b, 3, s, s), int64 (b,))``; the last incomplete batch is dropped.

    Raises:
        ValueError: ``batch_size`` is not a multiple of the ranks.
    """
    ranks = distributed.world_size()
    if batch_size % ranks:
        raise ValueError(f"the batch of {batch_size} images does not split over {ranks} processes: use a multiple of {ranks}")
    images = _Images(stream.train, stream.image_size, seed=seed * 1_000_003 + epoch)
    sampler = DistributedSampler(images, num_replicas=ranks, rank=distributed.rank(), shuffle=True, seed=seed,
                                 drop_last=True)
    sampler.set_epoch(epoch)
    return _loader(stream, images, batch_size // ranks, device, sampler=sampler, drop_last=True)


def evaluation_batches(stream: FolderStream, device: torch.device, limit: int | None = None,
                       batch_size: int = 100) -> DataLoader:
    """This rank's share (every ``world_size``-th image) of the first ``limit`` validation images, centre-cropped."""
    samples = stream.val[:limit]
    share = list(range(distributed.rank(), len(samples), distributed.world_size()))
    return _loader(stream, Subset(_Images(samples, stream.image_size), share), batch_size, device)


def calibration_batch(stream: FolderStream, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded, class-balanced draw of ``batch_size`` training images, centre-cropped; only they are read.

    ``batch_size // classes`` from each class, the remainder from the first classes (``data.calibration_batch``'s
    rule with ``class_balanced=True``), drawn from the file list.

    Returns:
        ``(uint8 (batch_size, 3, s, s), int64 (batch_size,))`` in the training list's order.

    Raises:
        ValueError: a class with fewer images than its share.
    """
    from .data import calibration_batch as draw

    labels = stream.y_train
    chosen, _ = draw(torch.arange(len(labels)), labels, batch_size, seed, class_balanced=True)
    dataset = _Images(stream.train, stream.image_size)
    images = torch.stack([dataset[i][0] for i in chosen.tolist()])
    return images, labels[chosen]


def recalibration_images(stream: FolderStream, batches: int, batch_size: int, seed: int) -> DataLoader:
    """``batches`` seeded batches of centre-cropped training images for BatchNorm recalibration."""
    order = torch.randperm(len(stream.train), generator=torch.Generator().manual_seed(seed))
    picked = [order[(b * batch_size + i) % len(order)].item() for b in range(batches) for i in range(batch_size)]
    return _loader(stream, Subset(_Images(stream.train, stream.image_size), picked), batch_size,
                   torch.device("cpu"))


def test_size(data) -> int:
    """The images top-1 is measured on: an in-memory dataset's test images, a stream's validation images."""
    return len(data.val) if isinstance(data, FolderStream) else len(data.x_test)


def training_size(data) -> int:
    """The training images of an in-memory dataset or a stream."""
    return len(data.train) if isinstance(data, FolderStream) else len(data.x_train)


def draw_calibration(data, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded calibration batch from either kind of dataset: ``data.calibration_batch``'s uniform draw in memory,
    a class-balanced one from a stream (:func:`calibration_batch`), which reads only the images drawn."""
    from .data import calibration_batch as draw

    if isinstance(data, FolderStream):
        return calibration_batch(data, batch_size, seed)
    return draw(data.x_train, data.y_train, batch_size, seed)


def recalibration_pool(data):
    """What ``train.recalibrate_batchnorm`` draws from: an in-memory dataset's training images, or the stream."""
    return data if isinstance(data, FolderStream) else data.x_train
