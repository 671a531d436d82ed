"""Fetch a missing file once, verified by its sha256: the public pretrained CIFAR ResNets and ImageNet ResNet-50.

    path = pretrained_weights("resnet56-4bfd9763.th")   # $IBPRUNE_WEIGHTS/resnet56-4bfd9763.th, fetched if missing

A download goes to a temporary sibling with a progress bar, is checked against its sha256 and only then renamed
into place; a mismatch deletes it and says so. Without a network the error names the file and where to put it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .paths import weights_dir

_AKAMASTER = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
PRETRAINED = {
    "resnet20-12fca82f.th": (_AKAMASTER + "resnet20-12fca82f.th",
                             "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8"),
    "resnet56-4bfd9763.th": (_AKAMASTER + "resnet56-4bfd9763.th",
                             "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367"),
    "resnet50-0676ba61.pth": ("https://download.pytorch.org/models/resnet50-0676ba61.pth", "0676ba61"),
}
"""File name → (URL, sha256) of the pretrained weights the library can fetch: akamaster's CIFAR ResNets (BSD-2-Clause,
full sha256) and torchvision's ImageNet ResNet-50 (``IMAGENET1K_V1``, BSD-3-Clause), for which torchvision publishes
only the sha256's first 8 hex digits, in the file name, and checks those (``torch.hub``'s ``check_hash``): a
prefix is checked as a prefix."""


def sha256_of(path: str | os.PathLike) -> str:
    """The sha256 of a file, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, destination: str | os.PathLike, sha256: str, timeout: float = 30.0, progress: bool = True) -> Path:
    """Download ``url`` to ``destination`` unless it is there, and verify its sha256.

    Args:
        url: where the file is.
        destination: where it goes (its folder is created).
        sha256: the expected digest, or its first hex digits where only those are published.
        timeout: seconds to wait for the server.
        progress: show a tqdm bar.

    Returns:
        ``destination``.

    Raises:
        FileNotFoundError: the server could not be reached or refused the file (nothing is written).
        ValueError: the downloaded file's sha256 differs from ``sha256`` (the download is deleted).
    """
    destination = Path(destination)
    if destination.is_file():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            size = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc=destination.name, disable=not progress) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
        got = sha256_of(temporary)
        if not got.startswith(sha256):
            raise ValueError(f"{url}: sha256 {got} differs from the expected {sha256}; the download was deleted")
        os.replace(temporary, destination)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise FileNotFoundError(
            f"{destination.name} is missing and could not be fetched from {url} ({reason}). Fix: download it by hand "
            f"into {destination.parent} (or point IBPRUNE_WEIGHTS at a folder holding it)"
        ) from None
    finally:
        Path(temporary).unlink(missing_ok=True)
    return destination


def pretrained_weights(name: str, progress: bool = True) -> Path:
    """``$IBPRUNE_WEIGHTS/<name>``, fetched and verified the first time it is asked for.

    Raises:
        ValueError: ``name`` is not one of :data:`PRETRAINED`, or the download's sha256 is wrong.
        FileNotFoundError: the file is missing and cannot be fetched.
    """
    if name not in PRETRAINED:
        raise ValueError(f"no pretrained weights named {name!r}: choose one of {', '.join(PRETRAINED)}")
    url, sha256 = PRETRAINED[name]
    return fetch(url, weights_dir() / name, sha256, progress=progress)
