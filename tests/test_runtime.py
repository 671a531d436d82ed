"""keep_freed_memory: large tensors come from the heap, not from fresh mmaps, once it is called."""

import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent(
    """
    import ctypes, sys, torch
    from ibprune_lib.runtime import keep_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    if sys.argv[1] == "on":
        assert keep_freed_memory()
    tensor = torch.empty(64 * 2**20, dtype=torch.uint8)
    print(libc.mallinfo2().hblkhd >= 64 * 2**20)
    """
)


def _mapped_with(setting: str) -> str:
    return subprocess.run([sys.executable, "-c", PROBE, setting], capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_large_blocks_leave_mmap_once_freed_memory_is_kept():
    assert _mapped_with("off").strip() == "True"  # glibc's default: a 64 MiB block is its own mapping
    assert _mapped_with("on").strip() == "False"
