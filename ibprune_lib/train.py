"""Training, fine-tuning and evaluation, in memory (CIFAR) or streamed (an image folder), alone or under torchrun,
checkpointed every epoch and resumable.

Determinism is by construction: epoch ``e``'s permutation, crops and flips come from a generator seeded
with ``(seed, e)``, and the learning rate is a pure function of the global step. A run killed at any point
and resumed from its last checkpoint therefore ends in exactly the state of an uninterrupted run. A checkpoint
records the recipe and a fingerprint of the weights the run started from, and resumes only a run that matches
both: a different pruned network of the same shapes never picks up another's fine-tuning.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from . import distributed
from .data import ImageData, augment, normalise
from .errors import OptionError
from .provenance import provenance, save_torch
from .streaming import FolderStream, evaluation_batches, recalibration_images, training_batches

SCHEDULES = ("cosine", "step", "onecycle")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """A training recipe. Saved inside every checkpoint and log, so a result names how it was made.

    Attributes:
        model: model name (selects the input normalisation).
        epochs: passes over the training set.
        batch_size: images per step.
        lr: peak learning rate.
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        weight_decay: L2 on every parameter.
        schedule: ``"cosine"`` (to 0), ``"step"`` (×``gamma`` at each fraction in ``milestones``), or
            ``"onecycle"`` (linear warm-up over ``warmup_fraction`` of the steps, then cosine to 0).
        milestones: fractions of training where the step schedule decays.
        gamma: the step schedule's factor.
        warmup_fraction: the one-cycle warm-up share.
        label_smoothing: cross-entropy smoothing.
        seed: seeds initial order, crops and flips.
        train_subset: use only this many (seeded) training images; None for all.
        channels_last: run convolutions in NHWC (faster on CPU).
        precision: ``"fp32"``; ``"bf16"`` for mixed precision (bf16 autocast of the forward pass; weights,
            gradients and optimizer state stay fp32), fast on CUDA and on a CPU with AVX512-BF16 or AMX
            (``benchmarks/bench_train_precision.py`` measures by how much); or ``"fp16"`` on CUDA (fp16 autocast
            with a gradient scaler, for GPUs without bf16). Evaluation always runs in fp32.
    """

    model: str
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    warmup_fraction: float = 0.15
    label_smoothing: float = 0.0
    seed: int = 0
    train_subset: int | None = None
    channels_last: bool = True
    precision: str = "fp32"

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}: choose one of {SCHEDULES}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}: choose one of {PRECISIONS}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"epochs, batch_size and lr must be positive: {self.epochs}, {self.batch_size}, {self.lr}")


def learning_rate(step: int, total_steps: int, config: TrainConfig) -> float:
    """The learning rate at a global step (0-based) of ``total_steps``."""
    progress = step / max(total_steps, 1)
    if config.schedule == "step":
        return config.lr * config.gamma ** sum(progress >= m for m in config.milestones)
    if config.schedule == "onecycle":
        if progress < config.warmup_fraction:
            return config.lr * max(progress / config.warmup_fraction, 1e-3)
        progress = (progress - config.warmup_fraction) / (1 - config.warmup_fraction)
    return 0.5 * config.lr * (1 + math.cos(math.pi * progress))


@dataclass
class TrainResult:
    """What a training run returns: per-epoch history and the final test accuracy."""

    history: list[dict] = field(default_factory=list)
    test_top1: float | None = None
    wall_seconds: float = 0.0


def state_fingerprint(model: nn.Module) -> str:
    """SHA-256 of a model's state: every entry's name, dtype, shape and values (memory format ignored).

    Args:
        model: the network.

    Returns:
        64 hex digits; equal for two models exactly when their state dicts are equal.
    """
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        values = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{values.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(values.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter (its inputs go there)."""
    return next(model.parameters()).device


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` as a device, checked before any work.

    Raises:
        ValueError: not a device name, or a CUDA device this machine does not have.
    """
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise OptionError(f"{{device}} {name!r} is not a device ({error}); use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise OptionError(f"{{device}} {name!r}: use cpu, cuda or cuda:N")
    if device.type == "cuda":
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= available:
            raise OptionError(f"{{device}} {name}: this machine has {available} CUDA device(s); use {{device}} cpu")
    return device


def has_fast_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 in hardware: CUDA, or a CPU with AVX512-BF16 or AMX.

    Elsewhere bf16 is emulated: a training step took about 10 times as long as in fp32 on a CPU with AVX2 only,
    against 1.6 (AMD EPYC) and 1.9-2.2 (Xeon with AMX) times faster with them
    (``benchmarks/results/train_precision*.json``).
    """
    if device.type == "cuda":
        return True
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    images: torch.Tensor | FolderStream,
    normalization: str | tuple,
    batches: int = 40,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = False,
) -> int:
    """Recompute the running statistics of every BatchNorm layer of ``model`` in place.

    The statistics are reset and re-estimated as a cumulative (equal-weight) average over ``batches`` seeded
    batches of un-augmented images; the rest of the model stays in eval mode (dropout off) and no weight
    changes. Call it on the model you own (a pruned copy), never on a network you want to keep as it is.

    Args:
        model: the network, modified in place.
        images: (N, 3, h, w) uint8 pool, usually the training set, or a streamed folder (its training images,
            centre-cropped).
        normalization: the input normalisation (a model name stands for its own, see ``data.mean_std_for``).
        batches: how many batches (≥ 1); 40 batches of 128 settle ResNet and VGG statistics.
        batch_size: images per batch (≥ 2: BatchNorm needs a batch statistic).
        seed: the draw of the images.
        progress: show a tqdm bar.

    Returns:
        The number of BatchNorm layers recalibrated (0: the model has none and nothing was done).

    Raises:
        ValueError: ``batches`` < 1 or ``batch_size`` < 2.
    """
    if batches < 1:
        raise OptionError(f"{{batches}} must be >= 1 batch, got {batches}; leave the recalibration out to skip it")
    if batch_size < 2:
        raise ValueError(f"recalibration batch size must be >= 2, got {batch_size}")
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    device = model_device(model)
    was_training = model.training
    momenta = [norm.momentum for norm in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average: every batch weighs the same
        norm.train()
    if isinstance(images, FolderStream):
        pool = (batch for batch, _ in recalibration_images(images, batches, batch_size, seed))
    else:
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
        pool = (images[order[(b * batch_size) % len(images):][:batch_size]] for b in range(batches))
    try:
        for batch in tqdm(pool, total=batches, desc="BN recalibration", disable=not progress, leave=False):
            model(normalise(batch.to(device), normalization).contiguous(memory_format=torch.channels_last))
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.train(was_training)
    return len(norms)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _train_indices(data: ImageData, config: TrainConfig) -> torch.Tensor:
    if config.train_subset is None:
        return torch.arange(len(data.x_train))
    return torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(config.seed))[: config.train_subset]


def _steps_per_epoch(data: ImageData | FolderStream, config: TrainConfig) -> int:
    if isinstance(data, FolderStream):
        return len(data.train) // config.batch_size  # the stream drops the last incomplete batch
    return math.ceil(len(_train_indices(data, config)) / config.batch_size)


def _epoch_batches(data: ImageData | FolderStream, config: TrainConfig, epoch: int, device: torch.device):
    """This rank's augmented uint8 training batches of one epoch, ``(images, labels)`` on ``device``.

    In memory, each global batch of the seeded order is split over the ranks (rank r takes every world-th image),
    so one process and several read the same images in the same steps."""
    if isinstance(data, FolderStream):
        for images, labels in training_batches(data, config.batch_size, config.seed, epoch, device):
            yield images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        return
    generator = _epoch_generator(config.seed, epoch)
    indices = _train_indices(data, config)
    order = indices[torch.randperm(len(indices), generator=generator)]
    for step in range(_steps_per_epoch(data, config)):
        batch = order[step * config.batch_size : (step + 1) * config.batch_size]
        images = augment(data.x_train[batch].to(device), generator)  # the whole batch: the same draws on every rank
        share = slice(distributed.rank(), None, distributed.world_size())
        yield images[share], data.y_train[batch][share].to(device)


def _autocast(device: torch.device, precision: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def fit(
    model: nn.Module,
    data: ImageData | FolderStream,
    config: TrainConfig,
    checkpoint: str | Path | None = None,
    test_subset: int | None = None,
    progress: bool = True,
    normalization: str | tuple | None = None,
) -> TrainResult:
    """Train ``model`` in place with SGD, checkpointing after every epoch and resuming from ``checkpoint``.

    Under ``torchrun`` (``distributed.setup`` called first) every rank runs ``fit`` on its own copy of the same
    weights: the model is wrapped in ``DistributedDataParallel``, each global batch is split over the ranks, rank 0
    alone writes the checkpoint, and a resumed run restores every rank from it.

    Args:
        model: the network; trained in place (a pruned model is fine-tuned the same way).
        data: in-memory images (CIFAR or an image folder), or a streamed folder (``streaming.open_stream``).
        config: the recipe.
        checkpoint: file for the per-epoch checkpoint; when it exists, training resumes from it (it must
            have been written with the same config, by a run that started from the same weights as ``model``).
        test_subset: evaluate on the first N test images after each epoch (None: all).
        progress: show tqdm bars (rank 0 only).
        normalization: the input normalisation (default: ``config.model``'s, see ``data.mean_std_for``).

    Returns:
        The history (loss, train accuracy, test top-1, lr, seconds and torch threads per epoch) and the final
        test top-1.

    Raises:
        ValueError: the checkpoint was written with another config or started from other weights; fp16 off CUDA.
    """
    started_from = state_fingerprint(model)
    normalization = config.model if normalization is None else normalization
    device = model_device(model)
    if config.precision == "fp16" and device.type != "cuda":
        raise OptionError("{precision} fp16 needs CUDA (it scales the loss for a GPU's half precision): use fp32, "
                          "or bf16 on a CPU with AVX512-BF16 or AMX")
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
    result, start_epoch = TrainResult(), 0
    if checkpoint is not None and Path(checkpoint).is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state["config"] != asdict(config):
            raise ValueError(
                f"{checkpoint} was written by another recipe; delete it or pass the same arguments.\n"
                f"saved: {state['config']}\nasked: {asdict(config)}"
            )
        if state.get("started_from", started_from) != started_from:
            raise ValueError(
                f"{checkpoint} belongs to a run that started from other weights (e.g. another pruning of the same "
                "network); delete it to start afresh, or pass the model that run started from"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        result.history, start_epoch, result.wall_seconds = state["history"], state["epoch"], state["wall_seconds"]

    trained = model
    if distributed.active():
        trained = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    steps_per_epoch = _steps_per_epoch(data, config)
    total_steps = steps_per_epoch * config.epochs
    show = progress and distributed.is_main()
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(_epoch_batches(data, config, epoch, device), total=steps_per_epoch,
                   desc=f"epoch {epoch + 1}/{config.epochs}", disable=not show, leave=False)
        for step, (images, labels) in enumerate(bar):
            lr = learning_rate(epoch * steps_per_epoch + step, total_steps, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with _autocast(device, config.precision):
                logits = trained(normalise(images, normalization).contiguous(memory_format=memory_format))
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.item() * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(labels)
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.4f}")
        distributed.share_buffers(model)
        loss_sum, correct, seen = distributed.sum_over_ranks([loss_sum, correct, seen], device)
        test_top1 = top1(model, data, normalization, limit=test_subset)
        seconds = time.perf_counter() - started
        result.wall_seconds += seconds
        result.history.append({
            "epoch": epoch + 1, "loss": loss_sum / seen, "train_top1": 100 * correct / seen,
            "test_top1": test_top1, "lr": lr, "seconds": seconds, "threads": torch.get_num_threads(),
            **({"processes": distributed.world_size()} if distributed.active() else {}),
        })  # threads per epoch: a run resumed with another thread count is valid but not bitwise the same
        if checkpoint is not None and distributed.is_main():
            save_torch(checkpoint, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                "history": result.history, "wall_seconds": result.wall_seconds, "config": asdict(config),
                "started_from": started_from, "provenance": provenance(),
                **({"scaler": scaler.state_dict()} if scaler.is_enabled() else {}),
            })
        distributed.broadcast(None)  # no rank starts the next epoch before the checkpoint is written
    model.to(memory_format=torch.contiguous_format)
    result.test_top1 = result.history[-1]["test_top1"] if result.history else None
    return result


def top1(model: nn.Module, data: ImageData | FolderStream, normalization: str | tuple, limit: int | None = None,
         progress: bool = False) -> float:
    """Top-1 in percent on the first ``limit`` test (or, streamed, validation) images of ``data`` (None: all).

    A streamed folder is split over the ranks under ``torchrun`` and the ranks' counts summed; ``progress`` shows a
    tqdm bar (rank 0's)."""
    if not isinstance(data, FolderStream):
        return evaluate(model, data.x_test[:limit], data.y_test[:limit], normalization, progress=progress)
    device = model_device(model)
    was_training = model.training
    model.eval()
    hits = total = 0
    try:
        with torch.inference_mode():
            batches = evaluation_batches(data, device, limit)
            for images, labels in tqdm(batches, desc="eval", disable=not (progress and distributed.is_main()),
                                       leave=False):
                x = normalise(images.to(device), normalization).contiguous(memory_format=torch.channels_last)
                hits += (model(x).argmax(1) == labels.to(device)).sum().item()
                total += len(labels)
    finally:
        model.train(was_training)
    hits, total = distributed.sum_over_ranks([hits, total], device)
    return 100.0 * hits / total


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    normalization: str | tuple,
    batch_size: int = 500,
    topk: tuple[int, ...] = (1,),
    progress: bool = True,
) -> float | dict[int, float]:
    """Top-k accuracy in percent on uint8 images, in eval mode (the model's mode is restored).

    Args:
        model: the network.
        images: (n, 3, h, w) uint8.
        labels: (n,) int64.
        normalization: the input normalisation (a model name stands for its own, see ``data.mean_std_for``).
        batch_size: images per forward.
        topk: which accuracies; a single ``(1,)`` returns a float, several return ``{k: accuracy}``.
        progress: show a tqdm bar.
    """
    if len(images) == 0:
        raise ValueError("evaluate needs at least one image")
    device = model_device(model)
    was_training = model.training
    model.eval()
    hits = dict.fromkeys(topk, 0)
    try:
        for start in tqdm(range(0, len(images), batch_size), desc="eval", disable=not progress, leave=False):
            x = normalise(images[start : start + batch_size].to(device), normalization)
            ranked = model(x.contiguous(memory_format=torch.channels_last)).topk(max(topk), dim=1).indices
            truth = labels[start : start + batch_size].to(device).view(-1, 1)
            for k in topk:
                hits[k] += (ranked[:, :k] == truth).any(1).sum().item()
    finally:
        model.train(was_training)
    accuracy = {k: 100.0 * hits[k] / len(images) for k in topk}
    return accuracy[topk[0]] if len(topk) == 1 else accuracy
