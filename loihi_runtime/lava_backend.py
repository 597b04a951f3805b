"""The Lava backends: a `.net` graph run image by image on Lava's CPU simulator (lava-sim)
or on Loihi 2 (loihi2), under the supervision of `supervision`.

A run is guarded: an exception inside one of Lava's processes surfaces with its real
cause; a process that dies, a `timeout` that passes and SIGINT/SIGTERM stop the runtime and
reap every process it forked before the error propagates; a SIGKILL of this process takes
Lava's processes with it.
"""
from __future__ import annotations

import multiprocessing
import signal
import time

import numpy as np
import torch

from neurovae.errors import NeurovaeError
from neurovae.hw.net import DeployNet

from .supervision import Guard, Stop, children_die_with_parent, force_stop, stop_runtime


class LavaRunError(NeurovaeError):
    """A Lava process failed during a run."""


class LavaTimeout(LavaRunError):
    """A Lava run took longer than its timeout and was stopped."""


class LavaInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived during a Lava run; the runtime was stopped."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    def __str__(self) -> str:
        return (f"{signal.Signals(self.signum).name}: the Lava run was stopped and its "
                f"processes ended; nothing was written")


def import_lava_runtime() -> None:
    """Import Lava's multiprocessing layer, which calls multiprocessing.set_start_method(
    'fork') when imported: that raises 'context has already been set' once anything in
    the process has used multiprocessing (a tqdm bar is enough). Forced here; Lava needs
    fork either way."""
    import importlib
    import sys
    name = "lava.magma.runtime.message_infrastructure.multiprocessing"
    if name in sys.modules:
        return
    real = multiprocessing.set_start_method

    def set_start_method(method, force=False):
        real(method, force=True)
    multiprocessing.set_start_method = set_start_method
    try:
        importlib.import_module(name)
    finally:
        multiprocessing.set_start_method = real


# Done on import (this module is imported with the package) so that any later import of
# Lava (this package's processes, graph) works whatever used multiprocessing before; ~0.2 s.
import_lava_runtime()


def loihi2_available() -> bool:
    """Whether Intel's Loihi extension for Lava is installed (the loihi2 backend needs it)."""
    try:
        from lava.utils import loihi
        return bool(loihi.is_installed())
    except Exception:
        return False


def run_lava(net: DeployNet, x_bytes, n, seed, record=False, hardware=False, progress=False,
             timeout: float | None = None, first_image: int = 0, on_image=None):
    """Run the Lava graph of `net` (stock processes, `graph.LavaGraph`) on its images back
    to back, reading each image's readout voltage at its last step; see `backends.run`.

    `timeout` (seconds, compile included) stops the run with LavaTimeout; SIGINT/SIGTERM
    raise LavaInterrupted; a failure inside a Lava process raises LavaRunError naming the
    process and its exception. In every case the runtime is stopped and its processes
    reaped before the exception leaves. `on_image(i)` is called after image i (1-based).
    """
    import_lava_runtime()
    from lava.magma.core.run_conditions import RunSteps
    from tqdm import tqdm

    from neurovae.hw.readout import readout_image

    from .graph import LavaGraph, run_config

    n = n if x_bytes is None else len(x_bytes)
    x = None if x_bytes is None else np.asarray(torch.as_tensor(x_bytes))
    graph = LavaGraph(net, n, seed, x, record=record, first_image=first_image)
    frames = np.zeros((n, net.readout.n_out), np.int64)
    if n == 0:
        return readout_image(torch.as_tensor(frames), net.readout.out_shape), {}
    cfg = run_config(hardware)
    root = graph.readout
    where = "loihi2" if hardware else "lava-sim"
    done, t0 = 0, time.monotonic()
    bar = tqdm(total=n, desc=f"lava {'loihi2' if hardware else 'sim'}", unit="image",
               disable=not progress, dynamic_ncols=True)
    with children_die_with_parent(), Guard(timeout) as guard:
        try:
            executable = root.compile(cfg)
            with guard.deferred():       # forks Lava's processes: not interruptible
                root.create_runtime(executable=executable)
            guard.runtime = root.runtime
            guard.check()
            # each chunk ends at an image's readout step: read its voltages there
            for steps in graph.chunks():
                root.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
                frames[done] = graph.read_readout()
                done += 1
                bar.update()
                if on_image is not None:
                    on_image(done)
                guard.check()
            records = graph.read_records() if record else {}
            guard.check()
        except BaseException as exc:
            with guard.deferred(act_after=False):
                guard.disarm()
                bar.close()
                errors = force_stop(root.runtime)
            raise _translate(exc, guard, errors, where, done, n,
                             time.monotonic() - t0) from None
        with guard.deferred(act_after=False):
            guard.disarm()
            bar.close()
            stop_runtime(root.runtime)
        if guard.cause is not None and guard.cause[0] == "signal":   # came while stopping
            raise LavaInterrupted(guard.cause[1])
    images = readout_image(torch.as_tensor(frames), net.readout.out_shape)
    return images, records


def _translate(exc: BaseException, guard: Guard, errors: list[str], where: str, done: int,
               n: int, seconds: float) -> BaseException:
    """The exception a failed run raises, once its runtime is stopped."""
    cause = guard.cause
    at = f"{done} of {n} images done"
    if cause and cause[0] == "signal":
        return LavaInterrupted(cause[1])
    if cause and cause[0] == "timeout":
        return LavaTimeout(f"the {where} run exceeded --timeout {guard.timeout:g} s and was "
                           f"stopped ({at}, {seconds:.1f} s); raise --timeout or use fewer "
                           f"images")
    if errors:
        return LavaRunError(f"the {where} run failed ({at}): {'; '.join(errors)}")
    if isinstance(exc, KeyboardInterrupt):
        return exc
    if cause and cause[0] == "died":
        return LavaRunError(f"the {where} run failed ({at}): a Lava process ended "
                            f"unexpectedly")
    if isinstance(exc, (RuntimeError, Stop)):
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "no detail"
        return LavaRunError(f"the {where} run failed ({at}): {first}")
    return exc
