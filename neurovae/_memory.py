"""Allocator tuning: keep freed memory in the process instead of returning it to the OS.

SLAYER's neuron loops allocate and free large tensors every step; with glibc's defaults
each allocation above the mmap threshold is a fresh mapping whose pages fault in again,
which tripled the CPU time of a training step here.
"""
import ctypes
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 31)
    except (OSError, AttributeError):
        pass
