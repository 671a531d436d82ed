"""Image folders in torchvision's ``ImageFolder`` layout: your own images, read into memory.

``load_image_folder(root, image_size)`` reads ``root/train/<class>/*`` and ``root/val/<class>/*`` into the same
in-memory form as CIFAR (``data.ImageData``), every image resized and centre-cropped to ``image_size``², so that
calibration, fine-tuning and evaluation treat it exactly as CIFAR. A folder too large for memory (ImageNet) is
streamed instead: ``streaming.open_stream``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from tqdm import tqdm

from .data import DatasetNotFoundError, ImageData
from .errors import OptionError

IMAGE_FOLDER_SPLITS = (("train",), ("val", "test"))
"""The subfolders of an image-folder root: training images, then the held-out ones (``val`` or ``test``)."""


def load_image_folder(
    root: str | os.PathLike, image_size: int | None = None, progress: bool = True
) -> ImageData:
    """Read an image folder into memory: ``root/train/<class>/*`` and ``root/val/<class>/*`` (or ``test/``).

    The classes are the subfolders of ``train/`` in sorted order (torchvision's ``ImageFolder`` convention);
    ``val/`` may hold a subset of them. Every image is decoded as RGB, its shorter side resized to
    ``image_size`` (bilinear, antialiased) and centre-cropped to ``image_size``² (with ``image_size=None`` the
    images must all be square and of one size already).

    Args:
        root: the folder.
        image_size: side of the square images, or None to keep the files' own (common) size.
        progress: show a tqdm bar while decoding.

    Returns:
        The dataset, ``name="folder"``, its class names in ``classes``.

    Raises:
        DatasetNotFoundError: a missing split, a split without images, a class of ``val/`` absent from
            ``train/``, an image that cannot be decoded, or (``image_size=None``) images of different sizes.
        ValueError: ``image_size`` < 8.
    """
    from PIL import UnidentifiedImageError
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset, pil_loader
    from torchvision.transforms.v2 import functional as TF

    if image_size is not None and image_size < 8:
        raise OptionError(f"{{image_size}} must be >= 8 pixels, got {image_size}")
    root = Path(root)
    splits = []
    for names in IMAGE_FOLDER_SPLITS:
        folder = next((root / name for name in names if (root / name).is_dir()), None)
        if folder is None:
            raise DatasetNotFoundError(
                f"{root} has no {' or '.join(f'{name}/' for name in names)} folder. Fix: pass as root (CLI: "
                "--data-folder) a folder with train/ and val/, each holding one subfolder of images per class "
                "(torchvision's ImageFolder)."
            )
        splits.append(folder)
    try:
        classes, class_to_index = find_classes(str(splits[0]))
    except FileNotFoundError as error:
        raise DatasetNotFoundError(f"{splits[0]}: {error}. Fix: put one subfolder of images per class in it.") from None
    arrays = []
    for folder in splits:
        split_classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
        unknown = sorted(set(split_classes) - set(classes))
        if unknown:
            raise DatasetNotFoundError(
                f"{folder} has classes {unknown[:3]} that {splits[0]} lacks. Fix: give both splits the same classes."
            )
        samples = make_dataset(str(folder), {c: class_to_index[c] for c in split_classes}, IMG_EXTENSIONS,
                               allow_empty=True)
        if not samples:
            raise DatasetNotFoundError(f"{folder} holds no images ({', '.join(IMG_EXTENSIONS)}). Fix: add some.")
        images = []
        for path, _ in tqdm(samples, desc=f"reading {folder.name}/", disable=not progress, leave=False):
            try:
                image = pil_loader(path)
            except (UnidentifiedImageError, OSError) as error:
                raise DatasetNotFoundError(f"{path} is not an image PIL can decode ({error}); remove it") from None
            if image_size is not None:
                image = TF.center_crop(TF.resize(image, image_size), image_size)
            image = TF.pil_to_tensor(image)
            if image.shape[1] != image.shape[2] or (images and image.shape != images[0].shape):
                raise DatasetNotFoundError(
                    f"{path} is {image.shape[2]}×{image.shape[1]} where square images of one size were expected. "
                    "Fix: pass image_size=N (CLI: --image-size N) to resize every image to N×N."
                )
            images.append(image)
        arrays.append((torch.stack(images), torch.tensor([label for _, label in samples], dtype=torch.int64)))
    (x_train, y_train), (x_test, y_test) = arrays
    return ImageData("folder", x_train, y_train, x_test, y_test, str(root), classes=tuple(classes))
