"""The model zoo: ``get_model(name, num_classes)`` and one checkpoint loader for every model.

A model name is one of the zoo's (``MODEL_NAMES``), ``torchvision:NAME`` (torchvision's builder, untrained:
load weights separately) or ``package.module:factory`` (any importable callable returning an ``nn.Module``,
called with ``num_classes=``).
"""

from __future__ import annotations

import importlib
import os
import pickle
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from .googlenet import GoogLeNet
from .resnet_cifar import CifarResNet
from .vgg import VGG, vgg16

CIFAR_RESNET_DEPTHS = {"resnet20": 20, "resnet32": 32, "resnet44": 44, "resnet56": 56, "resnet110": 110}
MODEL_NAMES = ("vgg16", *CIFAR_RESNET_DEPTHS, "googlenet", "resnet50")


TORCHVISION_PREFIX = "torchvision:"


def is_model_name(name: str) -> bool:
    """Whether ``name`` has the form of a model name (a zoo name or ``prefix:name``); not whether it builds."""
    return name in MODEL_NAMES or (":" in name and all(name.partition(":")[::2]))


def input_size(name: str) -> tuple[int, int, int] | None:
    """(c, h, w) of one input image: 224² for ResNet-50 and torchvision's models (ImageNet), 32² for the CIFAR
    models, None for a factory's (the caller must say)."""
    if name == "resnet50" or name.startswith(TORCHVISION_PREFIX):
        return (3, 224, 224)
    return (3, 32, 32) if name in MODEL_NAMES else None


def model_factory(name: str):
    """The callable behind ``torchvision:NAME`` or ``package.module:factory``, called as ``factory(num_classes=n)``.

    Raises:
        ValueError: torchvision has no such model, or the module or its attribute cannot be imported.
    """
    prefix, _, attribute = name.partition(":")
    if prefix == TORCHVISION_PREFIX[:-1]:
        from functools import partial

        from torchvision import models

        if attribute not in models.list_models():
            raise ValueError(f"torchvision has no model {attribute!r}: see torchvision.models.list_models()")
        return partial(models.get_model, attribute, weights=None)
    try:
        return getattr(importlib.import_module(prefix), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(
            f"cannot import {attribute} from {prefix} ({error}). Fix: pass package.module:factory of an importable "
            "module (is it on PYTHONPATH?)"
        ) from None


def _from_factory(name: str, num_classes: int) -> nn.Module:
    model = model_factory(name)(num_classes=num_classes)
    if not isinstance(model, nn.Module):
        raise ValueError(f"--model {name} returned a {type(model).__name__}, not an nn.Module")
    return model


def get_model(name: str, num_classes: int = 10) -> nn.Module:
    """Build an untrained model by name.

    Args:
        name: one of ``MODEL_NAMES``, ``torchvision:NAME`` or ``package.module:factory`` (see the module
            docstring).
        num_classes: output units (10 for CIFAR-10, 100 for CIFAR-100, 1000 for ImageNet).

    Raises:
        ValueError: unknown name, a factory that cannot be imported, or a non-positive class count.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if ":" in name and is_model_name(name):
        return _from_factory(name, num_classes)
    if name == "vgg16":
        return vgg16(num_classes)
    if name in CIFAR_RESNET_DEPTHS:
        return CifarResNet(CIFAR_RESNET_DEPTHS[name], num_classes)
    if name == "googlenet":
        return GoogLeNet(num_classes)
    if name == "resnet50":
        from torchvision.models import resnet50

        return resnet50(weights=None, num_classes=num_classes)
    raise ValueError(
        f"unknown model {name!r}: choose one of {', '.join(MODEL_NAMES)}, torchvision:NAME or package.module:factory"
    )


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint file into a dict with a ``state_dict`` (``module.`` prefixes stripped, fp32).

    Accepts a bare state dict, ``{"state_dict": ...}`` (akamaster's format), ``{"model": ...}`` (this
    project's training checkpoints) and this project's pruned models (``{"architecture": ...}``).

    Raises:
        FileNotFoundError: no file at ``path``, with the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no weights at {path}. Fix: pass a file that exists; the shared CIFAR ResNet weights live in "
            "$IBPRUNE_WEIGHTS (see README), or train your own with `python -m ibprune_lib train`."
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, AttributeError, ModuleNotFoundError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(
            f"{path} is not a checkpoint torch can read ({reason}). Fix: pass the weights file itself "
            "(a .pt/.th written by torch.save), not an empty, truncated or other file"
        ) from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path} holds a {type(payload).__name__}, not a checkpoint dict")
    for key in ("state_dict", "model"):
        if key in payload and isinstance(payload[key], dict):
            payload = {**payload, "state_dict": payload[key]}
            break
    else:
        payload = {"state_dict": payload}
    payload["state_dict"] = {
        key.removeprefix("module."): value.float() if value.is_floating_point() else value
        for key, value in payload["state_dict"].items()
    }
    return payload


def load_weights(model: nn.Module, path: str | os.PathLike, state: dict | None = None) -> nn.Module:
    """Load a checkpoint into ``model`` in place, strictly (BN counters may be absent) and return it.

    Args:
        model: the architecture the weights belong to.
        path: the checkpoint file.
        state: its state dict when already read (``path`` then only names it in errors).

    Raises:
        ValueError: the checkpoint does not fit the model, naming the first mismatching keys.
    """
    state = read_checkpoint(path)["state_dict"] if state is None else state
    result = model.load_state_dict(state, strict=False)
    missing = [key for key in result.missing_keys if not key.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{path} does not fit {type(model).__name__}: missing {missing[:5]}, unexpected "
            f"{result.unexpected_keys[:5]}. Fix: pass the --model the weights were trained for."
        )
    return model


def save_model(
    model: nn.Module,
    path: str | os.PathLike,
    model_name: str,
    size: tuple[int, int, int] | None = None,
    normalization: str | tuple = "imagenet",
    **metadata,
) -> Path:
    """Save a whole model (architecture and weights) so that it reloads without rebuilding it.

    A pruned model's layer widths differ from any ``get_model`` architecture; the file therefore holds
    the pickled module itself, next to its fp32 state dict, the input it takes and ``metadata`` (a report…).

    Args:
        model: the model to save (not modified).
        path: destination, written atomically.
        model_name: the model name it derives from.
        size: (c, h, w) of one input image (default: the name's, see :func:`input_size`).
        normalization: the input normalisation it was trained with (see ``data.mean_std_for``).
        **metadata: anything JSON-like to keep beside it.
    """
    from ..provenance import save_torch

    size = tuple(size) if size is not None else input_size(model_name)
    return save_torch(path, {"module": model, "model_name": model_name, "input_size": size,
                             "normalization": normalization, "state_dict": model.state_dict(), **metadata})


class LoadedModel(NamedTuple):
    """What :func:`load_model` returns."""

    module: nn.Module
    """The model, fp32, in eval mode."""
    name: str
    """Its model name."""
    input_size: tuple[int, int, int] | None
    """(c, h, w) of one input image, when the file or the name says it."""
    normalization: str | tuple
    """Its input normalisation (``"imagenet"`` unless the file says otherwise)."""


def load_model(path: str | os.PathLike, name: str | None = None, num_classes: int = 10) -> LoadedModel:
    """Load a model from a file: a whole saved model (:func:`save_model`), or weights for ``name``.

    Args:
        path: the file.
        name: the model name, needed when the file holds weights only.
        num_classes: output units for a weights-only file (a checkpoint whose classifier says otherwise wins).

    Returns:
        The model, its name, input size and normalisation.

    Raises:
        ValueError: a weights-only file without ``name``, or a saved model of another name than ``name``.
    """
    payload = read_checkpoint(path)
    if isinstance(payload.get("module"), nn.Module):
        saved_name = payload.get("model_name", name)
        if name is not None and saved_name is not None and name != saved_name:
            raise ValueError(
                f"{path} holds a saved {saved_name}, not a {name} (--model {name}). Fix: drop --model, or pass "
                f"--model {saved_name}"
            )
        size = payload.get("input_size") or input_size(saved_name)
        return LoadedModel(payload["module"].float().eval(), saved_name, size and tuple(size),
                           payload.get("normalization", "imagenet"))
    if name is None:
        raise ValueError(f"{path} holds weights only: pass the model name (CLI: --model)")
    model = get_model(name, num_classes)
    head = [value for key, value in payload["state_dict"].items() if key.endswith("weight") and value.dim() == 2]
    if head and head[-1].shape[0] != num_classes:
        model = get_model(name, head[-1].shape[0])
    return LoadedModel(load_weights(model, path, payload["state_dict"]).eval(), name, input_size(name), "imagenet")


def check_outputs(model: nn.Module, name: str, num_classes: int, dataset: str) -> None:
    """Refuse a model whose classifier (its last ``nn.Linear``) has another number of outputs than the dataset
    has classes: its top-1 would mean nothing (a 10-class network scores about 10% on CIFAR-100 by chance).

    Raises:
        ValueError: one line naming both numbers and the fix.
    """
    heads = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if heads and heads[-1].out_features != num_classes:
        raise ValueError(
            f"{name} has {heads[-1].out_features} outputs but {dataset} has {num_classes} classes. Fix: pass the "
            f"--dataset (or --data-folder) its weights were trained on, or weights trained on {dataset}"
        )


__all__ = [
    "MODEL_NAMES",
    "VGG",
    "CifarResNet",
    "GoogLeNet",
    "LoadedModel",
    "check_outputs",
    "get_model",
    "is_model_name",
    "model_factory",
    "input_size",
    "load_model",
    "load_weights",
    "save_model",
    "read_checkpoint",
]
