"""CIFAR-10/100 held as uint8 tensors, normalisation, batched tensor augmentation, validation and calibration draws.

The CIFAR sets live in memory as ``(N, 3, 32, 32)`` uint8 tensors (150 MB for CIFAR-10), so an epoch is a
permutation plus a few tensor ops per batch: no worker processes, no PIL. A dataset root holds either
``cifar10.npz`` / ``cifar100.npz`` (arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``, images HWC) or
torchvision's own extracted folders; ``download=True`` asks torchvision to fetch them. For CIFAR-100 a root
may instead hold ``cifar100-jpg.tar.gz``, a lossy copy (every image re-encoded as JPEG, quality 75) laid out as
``train/<fine label name>/<file>.jpg`` and ``test/...``: it is decoded once into an npz cache, and the data
says ``lossy=True`` so that every table built on it can say "CIFAR-100 (JPEG copy)".

Your own images in torchvision's ``ImageFolder`` layout: :mod:`ibprune_lib.image_folders`.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import urllib.error
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .download import sha256_of
from .errors import OptionError
from .models import is_model_name
from .paths import data_dir
from .provenance import atomic_write

NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}

IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CIFAR_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
NORMALIZATIONS = {"imagenet": IMAGENET_MEAN_STD, "cifar": CIFAR_MEAN_STD}
"""Named input normalisations. Every model of the zoo, CIFAR ones included, takes ImageNet's statistics (the shared
akamaster ResNet weights were trained with them, and the models trained here follow suit), as do torchvision's."""

_TORCHVISION_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}

JPEG_ARCHIVES = {"cifar100": "cifar100-jpg.tar.gz"}
"""Lossy JPEG copies a data root may hold instead of the original (see the module docstring)."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is missing or malformed; the message names the path tried and the fix."""


@dataclass(frozen=True)
class ImageData:
    """An image-classification dataset in memory: CIFAR, or an image folder.

    Attributes:
        name: ``"cifar10"``, ``"cifar100"`` or ``"folder"``.
        x_train: (N, 3, h, w) uint8 images (50000 × 3 × 32 × 32 for CIFAR).
        y_train: (N,) int64 labels.
        x_test: (M, 3, h, w) uint8 images.
        y_test: (M,) int64 labels.
        source: the file or folder the arrays came from.
        lossy: the images were re-encoded lossily (the JPEG copy of CIFAR-100), so accuracies on them are not
            comparable to the literature's to the decimal.
        classes: the class names of an image folder, in label order (empty for CIFAR).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    source: str
    lossy: bool = False
    classes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The dataset's name for tables: "CIFAR-10", "CIFAR-100", "CIFAR-100 (JPEG copy)" or the folder."""
        if self.classes:
            return f"image folder {self.source}"
        return self.name.upper().replace("CIFAR", "CIFAR-") + (" (JPEG copy)" if self.lossy else "")

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else NUM_CLASSES[self.name]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The dataset root: ``root`` if given, else ``$IBPRUNE_DATA``, else the repository's ``data/``."""
    if root is not None:
        return Path(root)
    return data_dir()


def load_cifar(name: str = "cifar10", root: str | os.PathLike | None = None, download: bool = False) -> ImageData:
    """Load CIFAR-10 or CIFAR-100 into memory.

    Looks for ``<root>/<name>.npz`` first, then torchvision's extracted folder under ``root``, then (CIFAR-100)
    the lossy ``cifar100-jpg.tar.gz``, decoded once into a cache (``jpeg_cache_path``); with
    ``download=True`` torchvision fetches the original when none exists.

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        root: dataset folder; defaults to ``$IBPRUNE_DATA`` or ``data/``.
        download: let torchvision download the dataset when it is not found.

    Returns:
        The dataset as uint8 NCHW tensors.

    Raises:
        ValueError: unknown dataset name.
        DatasetNotFoundError: nothing usable under ``root``, or a malformed file.
    """
    if name not in _TORCHVISION_FOLDERS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {sorted(_TORCHVISION_FOLDERS)}")
    folder = data_root(root)
    npz_path = folder / f"{name}.npz"
    if npz_path.is_file():
        return _from_npz(name, npz_path)
    if (folder / _TORCHVISION_FOLDERS[name]).is_dir():
        return _from_torchvision(name, folder, download)
    if name in JPEG_ARCHIVES and (folder / JPEG_ARCHIVES[name]).is_file():
        return _from_jpeg_archive(name, folder / JPEG_ARCHIVES[name])
    if download:
        return _from_torchvision(name, folder, download)
    raise DatasetNotFoundError(
        f"{name} not found: tried {npz_path} and {folder / _TORCHVISION_FOLDERS[name]}. "
        f"Fix: set IBPRUNE_DATA to a folder holding {name}.npz (arrays x_train, y_train, x_test, y_test), "
        f"or pass download=True (CLI: --download) to let torchvision fetch it into {folder}."
    )


def _from_npz(name: str, path: Path) -> ImageData:
    try:
        with np.load(path) as arrays:
            parts = {key: arrays[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except (KeyError, ValueError, OSError) as error:
        raise DatasetNotFoundError(
            f"{path} is malformed ({error}); it must be an .npz with arrays x_train (N, 32, 32, 3) uint8, "
            "y_train (N,), x_test, y_test. Fix: replace the file, or remove it to use torchvision's folder."
        ) from error
    return _validated(name, str(path), **parts)


def _from_torchvision(name: str, folder: Path, download: bool) -> ImageData:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        train = cls(str(folder), train=True, download=download)
        test = cls(str(folder), train=False, download=download)
    except (urllib.error.URLError, OSError) as error:
        raise DatasetNotFoundError(
            f"{name} is not under {folder} and torchvision could not download it ({error}). Fix: connect to the "
            f"internet, or set IBPRUNE_DATA to a folder holding {name}.npz"
        ) from None
    except RuntimeError as error:
        raise DatasetNotFoundError(
            f"torchvision could not read {name} under {folder} ({error}). Fix: delete the folder "
            f"{folder / _TORCHVISION_FOLDERS[name]} and pass download=True, or provide {name}.npz."
        ) from error
    return _validated(
        name,
        str(folder / _TORCHVISION_FOLDERS[name]),
        x_train=np.asarray(train.data),
        y_train=np.asarray(train.targets),
        x_test=np.asarray(test.data),
        y_test=np.asarray(test.targets),
    )


def jpeg_cache_path(archive: Path) -> Path:
    """Where the decoded arrays of a JPEG archive are cached: beside it (``<archive stem>.npz``) when that
    folder is writable, else under ``$XDG_CACHE_HOME/ibprune`` (default ``~/.cache/ibprune``).

    A folder without write bits counts as read-only even for root, who could write into it: it is somebody's
    read-only copy (a shared data folder), not a place for a 185 MB cache."""
    name = archive.name.removesuffix(".tar.gz") + ".npz"
    write_bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    if os.access(archive.parent, os.W_OK) and archive.parent.stat().st_mode & write_bits:
        return archive.parent / name
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ibprune" / name


def _decode_jpeg_archive(archive: Path) -> dict[str, np.ndarray]:
    """Decode ``train/<label name>/*.jpg`` and ``test/...`` of a tar.gz into HWC uint8 arrays.

    Labels are the indices of the label names sorted alphabetically (CIFAR-100's fine-label order); images
    are ordered by label, then file name.
    """
    from PIL import Image

    images: dict[str, list[tuple[str, str, np.ndarray]]] = {"train": [], "test": []}
    with tarfile.open(archive, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.lower().endswith(".jpg")]
        # a bar on a terminal only: in a notebook (the book's strict build) stderr output fails the page
        for member in tqdm(members, desc=f"decoding {archive.name}", unit="image", leave=False, disable=None):
            parts = Path(member.name).parts
            if len(parts) < 3 or parts[-3] not in images:
                continue
            with Image.open(io.BytesIO(tar.extractfile(member).read())) as image:
                images[parts[-3]].append((parts[-2], parts[-1], np.asarray(image.convert("RGB"))))
    names = sorted({label for split in images.values() for label, _, _ in split})
    index = {label: i for i, label in enumerate(names)}
    arrays = {}
    for split, entries in images.items():
        entries.sort(key=lambda entry: (index[entry[0]], entry[1]))
        shapes = {entry[2].shape for entry in entries}
        if len(shapes) > 1:
            raise ValueError(f"images of several sizes in {split}/: {sorted(shapes)[:3]}")
        arrays[f"x_{split}"] = np.stack([entry[2] for entry in entries]) if entries else np.zeros((0, 32, 32, 3), np.uint8)
        arrays[f"y_{split}"] = np.array([index[entry[0]] for entry in entries], dtype=np.int64)
    arrays["label_names"] = np.array(names)
    return arrays


def _from_jpeg_archive(name: str, archive: Path) -> ImageData:
    """The JPEG copy of ``name``: from its cache if the cache was made from this very archive (same sha256),
    else decoded (about half a minute) and cached atomically. A damaged archive raises, never half a set."""
    cache, sha256 = jpeg_cache_path(archive), sha256_of(archive)
    if cache.is_file():
        try:
            with np.load(cache) as arrays:
                if str(arrays["archive_sha256"]) == sha256:
                    parts = {key: arrays[key] for key in ("x_train", "y_train", "x_test", "y_test")}
                    return _validated(name, str(archive), lossy=True, expected=_CIFAR_SIZES[name], **parts)
        except (KeyError, ValueError, OSError, zlib.error):
            pass  # a stale or broken cache is rebuilt below
    try:
        arrays = _decode_jpeg_archive(archive)
    except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError) as error:
        raise DatasetNotFoundError(
            f"{archive} is damaged ({type(error).__name__}: {error}). Fix: replace it with an intact copy, or "
            f"put {name}.npz or torchvision's folder beside it."
        ) from error
    data = _validated(name, str(archive), lossy=True, expected=_CIFAR_SIZES[name],
                      **{key: arrays[key] for key in ("x_train", "y_train", "x_test", "y_test")})  # fmt: skip
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:
            np.savez(file, archive_sha256=np.array(sha256), **arrays)

    atomic_write(cache, write)
    return data


_CIFAR_SIZES = {"cifar10": (50000, 10000), "cifar100": (50000, 10000)}
"""(train, test) image counts of the real datasets; a JPEG copy must have them all."""


def _validated(
    name: str, source: str, x_train, y_train, x_test, y_test, lossy: bool = False, expected: tuple[int, int] | None = None
) -> ImageData:
    num_classes = NUM_CLASSES[name]
    if expected is not None and (len(x_train), len(x_test)) != expected:
        raise DatasetNotFoundError(
            f"{source} holds {len(x_train)} training and {len(x_test)} test images where {name} has "
            f"{expected[0]} and {expected[1]}. Fix: replace it with a complete copy."
        )
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
            raise DatasetNotFoundError(
                f"{source}: x_{split} must be uint8 (N, 32, 32, 3), got {x.dtype} {x.shape}. Fix: re-export "
                "the dataset as HWC uint8 images."
            )
        if y.shape != (len(x),) or y.min() < 0 or y.max() >= num_classes:
            raise DatasetNotFoundError(
                f"{source}: y_{split} must be ({len(x)},) labels in [0, {num_classes}), got shape {y.shape}, "
                f"range [{y.min()}, {y.max()}]. Fix: check that the file holds {name}."
            )
    to_nchw = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # noqa: E731
    to_labels = lambda y: torch.from_numpy(np.asarray(y, dtype=np.int64))  # noqa: E731
    return ImageData(name, to_nchw(x_train), to_labels(y_train), to_nchw(x_test), to_labels(y_test), source, lossy)


def mean_std_for(normalization: str | tuple) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel (mean, std) of a normalisation.

    Args:
        normalization: a name of ``NORMALIZATIONS`` (``"imagenet"``, ``"cifar"``), an explicit
            ``(mean, std)`` pair of three floats each, or a model name (``get_model``'s: the zoo,
            ``torchvision:NAME``, ``module:factory``), which stands for ``"imagenet"``.

    Returns:
        (mean, std), three floats each.

    Raises:
        ValueError: an unknown name, or a pair that is not three means and three positive stds.
    """
    if isinstance(normalization, str):
        if normalization in NORMALIZATIONS:
            return NORMALIZATIONS[normalization]
        if is_model_name(normalization):
            return IMAGENET_MEAN_STD
        raise ValueError(
            f"unknown normalization {normalization!r}: choose one of {', '.join(NORMALIZATIONS)} or give "
            "(mean, std), three floats each"
        )
    try:
        mean, std = (tuple(float(v) for v in part) for part in normalization)
    except (TypeError, ValueError):
        mean = std = ()
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"normalization must be (mean, std) with three floats each and std > 0, got {normalization!r}")
    return mean, std


def normalise(images: torch.Tensor, normalization: str | tuple = "imagenet") -> torch.Tensor:
    """uint8 images to the float input a model expects.

    Args:
        images: (n, 3, h, w) uint8.
        normalization: the mean/std (see :func:`mean_std_for`).

    Returns:
        (n, 3, h, w) float32, ``(x / 255 - mean) / std``.
    """
    mean, std = (torch.tensor(v, device=images.device).view(1, 3, 1, 1) for v in mean_std_for(normalization))
    return (images.float() / 255.0 - mean) / std


def augment(images: torch.Tensor, generator: torch.Generator | None = None, padding: int = 4) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, batched, on uint8 or float tensors.

    Args:
        images: (n, c, h, w).
        generator: seeds the crops and flips.
        padding: pixels of zero padding on each side before the crop.

    Returns:
        (n, c, h, w), same dtype and device.
    """
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (dy.view(n, 1) + torch.arange(h)).to(images.device)  # (n, h)
    cols = (dx.view(n, 1) + torch.arange(w)).to(images.device)  # (n, w)
    batch = torch.arange(n, device=images.device).view(n, 1, 1, 1)
    channel = torch.arange(images.shape[1], device=images.device).view(1, -1, 1, 1)
    cropped = padded[batch, channel, rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]
    flip = (torch.rand(n, generator=generator) < 0.5).to(images.device)
    return torch.where(flip.view(n, 1, 1, 1), cropped.flip(3), cropped)


VALIDATION_SEED = 0
"""The seed of the held-out validation split (:func:`hold_out_validation`): one split for every cell."""


def hold_out_validation(data: ImageData, n: int, seed: int = VALIDATION_SEED) -> tuple[ImageData, torch.Tensor, torch.Tensor]:
    """Split ``n`` training images off as a validation set, class-balanced and seeded.

    Whatever is chosen on the validation images (a setting, a variant) is then reported on the test set, which
    chose nothing; the calibration, the BatchNorm recalibration and the fine-tuning draw from the rest.

    Args:
        data: the dataset.
        n: validation images, a multiple of the number of classes (``n / classes`` from each class).
        seed: the split's seed.

    Returns:
        ``(data without them, x_validation (n, 3, h, w) uint8, y_validation (n,))``, each part in its original order.

    Raises:
        ValueError: ``n`` not a positive multiple of the classes, or more than half a class.
    """
    classes = torch.unique(data.y_train)
    per_class, remainder = divmod(n, len(classes)) if n > 0 else (0, 1)
    smallest = min(int((data.y_train == c).sum()) for c in classes)
    if remainder or not 1 <= per_class <= smallest // 2:
        raise ValueError(f"validation must be a positive multiple of the {len(classes)} classes, at most "
                         f"{len(classes) * (smallest // 2)} (half the smallest class), got {n}")
    generator = torch.Generator().manual_seed(seed)
    held = torch.zeros(len(data.y_train), dtype=torch.bool)
    for c in classes:
        members = torch.nonzero(data.y_train == c).flatten()
        held[members[torch.randperm(len(members), generator=generator)[:per_class]]] = True
    rest = replace(data, x_train=data.x_train[~held], y_train=data.y_train[~held])
    return rest, data.x_train[held], data.y_train[held]


def calibration_batch(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 128,
    seed: int = 0,
    class_balanced: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded sample of images for feature capture.

    Args:
        images: (N, ...) the pool, usually the training set.
        labels: (N,) int64 labels.
        batch_size: how many images to draw.
        seed: the draw's seed.
        class_balanced: draw ``batch_size // classes`` per class (the remainder from the first classes).

    Returns:
        ``(images[idx], labels[idx])`` with ``idx`` (batch_size,) sorted.

    Raises:
        ValueError: batch size not in [1, N], or a class too small for a balanced draw.
    """
    if not 1 <= batch_size <= len(images):
        raise OptionError(f"{{batch_size}} must be in [1, {len(images)}], got {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    if not class_balanced:
        idx = torch.randperm(len(images), generator=generator)[:batch_size]
    else:
        classes = torch.unique(labels)
        per_class = [batch_size // len(classes) + (i < batch_size % len(classes)) for i in range(len(classes))]
        chosen = []
        for cls, count in zip(classes.tolist(), per_class):
            members = torch.nonzero(labels == cls).flatten()
            if count > len(members):
                raise ValueError(f"class {cls} has {len(members)} images, fewer than the {count} asked for")
            chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
        idx = torch.cat(chosen)
    idx = idx.sort().values
    return images[idx], labels[idx]
