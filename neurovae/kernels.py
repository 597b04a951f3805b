"""Switch training onto neurovae's neuron kernels: same spikes as lava-dl, a third of the time.

Installing them patches lava-dl's CUBA neuron and leaky integrator, so it is an explicit
call made by training (and the benchmarks and tests that train), never an import's effect.
CPU tensors run the fused numba kernels, all others the pure-torch ones (`torch_cuba`),
which need no CUDA toolkit; both give the same spikes.
"""
from __future__ import annotations


def enable_kernels() -> None:
    """Route lava-dl's CUBA neuron and leaky integrator through neurovae's kernels, numba on
    the CPU and torch ops elsewhere (idempotent), and keep freed memory in the process for
    SLAYER's loops."""
    from . import cuba_kernel, li_dynamics
    from ._memory import keep_freed_memory
    li_dynamics.install()
    cuba_kernel.install()
    keep_freed_memory()
