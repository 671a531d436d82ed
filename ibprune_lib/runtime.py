"""Process-wide settings: PyTorch faster on a CPU without changing any result, and results that do not change
with the thread count.

glibc's malloc hands every block above its mmap threshold (128 KiB, rising to at most 32 MiB) back to the
kernel when it is freed, so the next tensor of that size is mapped afresh and page-faults on first touch. On
the virtual machines this project runs on a page fault is expensive: measured on the 2-core AMD EPYC, one
33 MB elementwise product took 26 ms with the default and 5 ms with freed memory kept, and a ResNet-56
training step (batch 128, 2 threads) 1.85 s against 1.46 s. ``keep_freed_memory`` raises both thresholds, so
freed blocks stay in the process and are reused; the price is a resident size that stays at its peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator
from contextlib import contextmanager

import torch

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter numbers (malloc.h)."""

MMAP_THRESHOLD_BYTES = 1 << 30
TRIM_THRESHOLD_BYTES = 1 << 31


def keep_freed_memory() -> bool:
    """Keep freed blocks below 1 GiB in the process instead of returning them to the kernel.

    Returns:
        True if glibc accepted both settings; False where there is no glibc (macOS, Windows, musl), and
        nothing changes.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


@contextmanager
def one_thread_on(device: torch.device | str) -> Iterator[None]:
    """Run the block with one intra-op thread on a CPU (nothing changes on another device), then restore the count.

    A matrix product split over more threads sums in another order, so its float32 result differs in the last
    bits; a lasso solve of thousands of iterations carries that into which rows reach zero. On VGG-16's
    ``features.27`` sGLP-IB kept other channels at 2 threads than at 1 (Jaccard 0.989). One thread gives every
    process the bits a single-thread run gives, whatever ``OMP_NUM_THREADS`` says (``tests/test_selection.py``).
    """
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
