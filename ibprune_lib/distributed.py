"""Several processes, one run: PyTorch's distributed data parallel as ``torchrun`` launches it.

``python -m torch.distributed.run --nproc_per_node N -m ibprune_lib …`` starts N copies of the command with
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in their environment. :func:`setup` joins them into one process group
(NCCL on CUDA, one device per process; gloo on CPU). A single process — no ``WORLD_SIZE``, or 1 — needs no group
and every helper here is then a no-op, so the same code runs alone or under ``torchrun``.

Who does what: rank 0 alone writes files (checkpoints, results, logs) and runs what is not worth sharing
(selection, BatchNorm recalibration); the others wait for it (:func:`run_on_main`). Training splits every batch
over the ranks (DDP averages the gradients); evaluation splits the images and sums the ranks' counts.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist

from .errors import OptionError

T = TypeVar("T")
_alone = False  # True while rank 0 works for every rank (run_on_main): it then reads everything itself


def world_size() -> int:
    """The processes of this run: ``$WORLD_SIZE`` (set by ``torchrun``), 1 alone."""
    return 1 if _alone else int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank, 0 alone."""
    return 0 if _alone else int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Whether this process writes files: rank 0, or the only process."""
    return rank() == 0


def active() -> bool:
    """Whether a process group of more than one process is up."""
    return not _alone and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def setup(device: torch.device, timeout_minutes: float = 30.0) -> torch.device:
    """Join the processes ``torchrun`` started, once; the device this process runs on.

    Args:
        device: the device the command asked for (``cuda`` means one CUDA device per process, ``cuda:$LOCAL_RANK``).
        timeout_minutes: how long a collective waits for a rank that does not come (a failed rank ends the run
            instead of hanging it forever).

    Returns:
        ``device`` alone; under ``torchrun`` on CUDA, this process's own device.

    Raises:
        OptionError: more processes on this node than CUDA devices (NCCL needs one each), named as
            ``--nproc_per_node``.
    """
    if world_size() == 1 or active():
        return device if device.type != "cuda" or not active() else torch.device("cuda", torch.cuda.current_device())
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", world_size()))
    if device.type == "cuda":
        devices = torch.cuda.device_count()
        if local_size > devices:
            raise OptionError(f"{{nproc_per_node}} {local_size} is more than this node's {devices} CUDA device(s): "
                              f"pass --nproc_per_node {devices} or fewer")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(minutes=timeout_minutes))
    return device


def broadcast(value: T) -> T:
    """Rank 0's ``value`` on every rank (any picklable object); ``value`` itself alone."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def run_on_main(work: Callable[[], T]) -> T:
    """Run ``work`` on rank 0 alone and hand its return value to every rank; the others wait for it.

    Inside ``work`` rank 0 acts as a single process (``world_size()`` is 1, no collective runs), so a helper that
    splits work over the ranks does it all there. An exception on rank 0 is raised on every rank (as a RuntimeError
    naming it on the others), so that no rank waits for a partner that has failed.
    """
    global _alone
    outcome: tuple[bool, Any] = (True, None)
    if is_main():
        grouped, _alone = active(), True
        try:
            outcome = (True, work())
        except Exception as error:
            _alone = False
            if not grouped:
                raise
            broadcast((False, f"{type(error).__name__}: {error}"))
            raise
        finally:
            _alone = False
    ok, value = broadcast(outcome)
    if not ok:
        raise RuntimeError(f"rank 0 failed: {value}")
    return value


def sum_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over the ranks (float64); ``values`` alone."""
    if not active():
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def share_buffers(model: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank: each rank's own statistics follow its
    share of the last batches, so after training every rank holds rank 0's, the ones rank 0 saves."""
    if active():
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)
