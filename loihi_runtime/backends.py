"""Run a `.net` model on a backend: Lava's CPU simulator, Loihi 2, or the torch emulator.

All backends take the same inputs (image bytes or a count to generate, a seed) and return
the same things: images in [-1, 1] computed from the integer readout voltage, and when
asked, every population's spikes (n_images, neurons, S) for verification.

A Lava run is guarded (see `_Guard`): an exception inside one of Lava's processes surfaces
with its real cause, a process that dies, a `timeout` that passes and SIGINT/SIGTERM all
stop the runtime and reap every process it forked before the error propagates.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time

import numpy as np
import torch

from neurovae.deploy import DeployNet
from neurovae.errors import NeurovaeError

# neurovae.emulator (and through it lava-dl, ~2 s) is imported where it is used, so that the
# CLI can read BACKENDS for its --backend choices without that cost.

BACKENDS = ("lava-sim", "loihi2", "emulator", "torch")


class BackendUnavailable(NeurovaeError):
    """The chosen backend cannot run on this machine."""


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


def loihi2_available() -> bool:
    try:
        from lava.utils import loihi
        return bool(loihi.is_installed())
    except Exception:
        return False


def drive_series(net: DeployNet, x_bytes: torch.Tensor) -> np.ndarray:
    """The input RingBuffer's data: each image's integer drive held for its S steps."""
    from neurovae.emulator import input_drive
    d = input_drive(net.encoder[0], x_bytes).numpy()          # (N, n_in)
    return np.repeat(d.T[:, :, None], net.n_steps, axis=2).reshape(d.shape[1], -1)


def run_torch(net, x_bytes, n, seed, record=False, first_image=0, layerwise=False):
    """The tensor backends: `torch` steps the graph like Lava does; `emulator` (layerwise)
    computes one layer over all steps at a time. Both are spike-exact with Lava."""
    from neurovae.emulator import Emulator
    from neurovae.layerwise import LayerwiseEmulator
    emu = LayerwiseEmulator(net) if layerwise else Emulator(net)
    images, rec = emu.run(x_bytes, n, seed, first_image=first_image, record=record)
    return images, {k: v.numpy() for k, v in rec.items() if k != "readout_v"}


class _Stop(Exception):
    """Raised in the main thread by `_Guard` when the run must end (cause in `_Guard`)."""


class _Guard:
    """Watchdog and signal handling around one Lava run.

    A watchdog thread checks every 0.2 s whether the deadline passed or one of the
    runtime's processes died (a crash or a kill leaves Lava waiting forever); it then
    interrupts the main thread with SIGUSR1. SIGINT and SIGTERM are caught the same way.
    While `deferred()` is active (compiling, stopping) a signal is only recorded and acts
    when it ends, so the runtime is never left half built or half stopped. Lava forks its
    processes with these handlers installed; in a child they do nothing (the parent stops
    the children), so Ctrl-C in a terminal, which signals the whole process group, reaches
    only the parent.

    Interruption needs the main thread; elsewhere the deadline is checked between images.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)

    def __init__(self, timeout: float | None):
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.cause: tuple | None = None         # ("timeout",) ("died", actor) ("signal", n)
        self.runtime = None
        self._pid = os.getpid()
        self._defer = 0
        self._pending = False
        self._main = threading.current_thread() is threading.main_thread()
        self._old: dict = {}
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self):
        if self._main:
            self._old = {s: signal.signal(s, self._on_signal) for s in self.SIGNALS}
            self._thread = threading.Thread(target=self._watch, name="lava-watchdog",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self.disarm()
        for s, h in self._old.items():
            signal.signal(s, h)
        return False

    def disarm(self):
        """Stop watching (the processes are about to end normally, or are being ended)."""
        self._done.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    @contextlib.contextmanager
    def deferred(self, act_after: bool = True):
        """Signals and the watchdog only record their cause inside; with `act_after` a
        recorded cause raises at the end."""
        self._defer += 1
        try:
            yield
        finally:
            self._defer -= 1
        if act_after and not self._defer and self._pending:
            self._pending = False
            raise _Stop()

    def check(self):
        """Raise if the deadline passed (between images, in any thread)."""
        if self.cause is None and self.deadline is not None and time.monotonic() > self.deadline:
            self.cause = ("timeout",)
        if self.cause is not None:
            raise _Stop()

    def _on_signal(self, signum, frame):
        if os.getpid() != self._pid:     # a forked Lava process: its parent stops it
            return
        if signum != signal.SIGUSR1 and (self.cause is None or self.cause[0] != "signal"):
            self.cause = ("signal", signum)
        if self.cause is None:           # a stray SIGUSR1
            return
        if self._defer:
            self._pending = True
            return
        raise _Stop()

    def _watch(self):
        while not self._done.wait(0.2):
            cause = None
            if self.deadline is not None and time.monotonic() > self.deadline:
                cause = ("timeout",)
            else:
                for actor in _actors(self.runtime):
                    try:
                        if not actor.is_alive():
                            cause = ("died", actor)
                            break
                    except (ValueError, AssertionError):   # closed: joined by Lava itself
                        continue
            if cause is not None:
                if self.cause is None:
                    self.cause = cause
                signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
                return


def _actors(runtime) -> list:
    mi = getattr(runtime, "_messaging_infrastructure", None)
    return list(getattr(mi, "actors", None) or [])


def _actor_names(runtime) -> list[str]:
    """Names of the runtime's actors, in the order Lava started them: one per Python
    process model, then the runtime services."""
    from lava.magma.compiler.builders.py_builder import PyProcessBuilder
    builders = getattr(getattr(runtime, "_executable", None), "proc_builders", None) or {}
    names = [f"process '{proc.name}' ({b.proc_model.__name__})" for proc, b in builders.items()
             if isinstance(b, PyProcessBuilder)]
    return names + ["the runtime service"] * max(0, len(_actors(runtime)) - len(names))


def _exitcode(actor):
    try:
        return actor.exitcode
    except ValueError:            # closed by Lava's join
        return None


def _forget_if_gone(actor) -> None:
    """Drop a process that no longer exists from multiprocessing's children, so the
    interpreter's exit hook does not join it again (Lava's join then raises, printing a
    traceback after the clean error message, when its exit status was already collected)."""
    try:
        pid = actor.pid
    except ValueError:            # closed: close() already dropped it from the children
        return
    if pid is None:
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        multiprocessing.process._children.discard(actor)
    except OSError:
        pass


def _force_stop(runtime) -> list[str]:
    """End a runtime that cannot be stopped through its channels: kill its processes, reap
    them, shut down its shared-memory manager; leaves no child process behind.

    Returns "<process> raised <Type: message>" or "<process> exited with code N" for each
    process that raised or ended on its own (not those killed here)."""
    if runtime is None:
        return []
    actors = _actors(runtime)
    names = _actor_names(runtime)
    killed = set()
    for actor in actors:
        with contextlib.suppress(ValueError, AssertionError, OSError):
            if actor.is_alive():
                actor.kill()
                killed.add(id(actor))
    errors = []
    for i, actor in enumerate(actors):
        with contextlib.suppress(ValueError, AssertionError, OSError):
            multiprocessing.Process.join(actor, 5)
        name = names[i] if i < len(names) else "a Lava process"
        err = None
        with contextlib.suppress(Exception):
            err = actor.exception
        code = _exitcode(actor)
        if err:
            exc, tb = err if isinstance(err, tuple) else (err, "")
            lines = [ln for ln in str(tb).strip().splitlines() if ln.strip()]
            what = lines[-1].strip() if lines else f"{type(exc).__name__}: {exc}"
            errors.append(f"{name} raised {what[:300]}")
        elif id(actor) not in killed and code not in (None, 0):
            how = (f"was killed by {signal.Signals(-code).name}" if code < 0
                   else f"exited with code {code}")
            errors.append(f"{name} {how}")
        with contextlib.suppress(Exception):
            actor.join()          # Lava's join: closes the pipes
        _forget_if_gone(actor)
    runtime._is_running = runtime._is_started = False   # so Lava's __del__ does not stop()
    with contextlib.suppress(Exception):
        runtime.join()            # releases the ports' listener threads
    mi = getattr(runtime, "_messaging_infrastructure", None)
    smm = getattr(mi, "_smm", None)
    if smm is not None:
        manager = getattr(smm, "_manager", None)
        try:
            smm.shutdown()
        except Exception:        # noqa: BLE001 - fall back to ending the manager process
            proc = getattr(manager, "_process", None)
            if proc is not None and proc.is_alive():
                proc.kill()
                proc.join(5)
            smm._manager = None
    with contextlib.suppress(Exception):
        runtime._watchdog_manager.stop()
    return errors


def _stop_runtime(runtime, grace: float = 10.0) -> None:
    """Stop a healthy runtime through Lava, falling back to `_force_stop` if that hangs."""
    if runtime is None:
        return
    if not runtime._is_started:
        _force_stop(runtime)
        return
    failed: list = []

    def stop():
        try:
            runtime.stop()
        except BaseException as exc:   # noqa: BLE001 - reported by falling back
            failed.append(exc)
    t = threading.Thread(target=stop, name="lava-stop", daemon=True)
    t.start()
    t.join(grace)
    if t.is_alive() or failed or any(_alive(a) for a in _actors(runtime)):
        _force_stop(runtime)


def _alive(actor) -> bool:
    try:
        return actor.is_alive()
    except (ValueError, AssertionError):
        return False


def _import_lava_runtime() -> None:
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


# Done on import so that any later import of Lava (this package's processes, graph) works
# whatever used multiprocessing before; ~0.2 s.
_import_lava_runtime()


def run_lava(net: DeployNet, x_bytes, n, seed, record=False, hardware=False, progress=False,
             timeout: float | None = None, first_image: int = 0, on_image=None):
    """Run the Lava graph of `net` image by image; see `run`.

    `timeout` (seconds, compile included) stops the run with LavaTimeout; SIGINT/SIGTERM
    raise LavaInterrupted; a failure inside a Lava process raises LavaRunError naming the
    process and its exception. In every case the runtime is stopped and its processes
    reaped before the exception leaves. `on_image(i)` is called after image i (1-based).
    """
    _import_lava_runtime()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg
    from lava.proc.lif.process import LIFReset
    from tqdm import tqdm

    from neurovae.emulator import readout_image

    from .graph import LavaGraph
    from .processes.gated_lif import PyGatedLifResetModel

    n = n if x_bytes is None else len(x_bytes)
    drive = None if x_bytes is None else drive_series(net, x_bytes)
    graph = LavaGraph(net, n, seed, drive, record=record, first_image=first_image)
    if hardware:
        cfg = Loihi2HwCfg(exception_proc_model_map={LIFReset: PyGatedLifResetModel})
    else:
        cfg = Loihi2SimCfg(select_tag="fixed_pt",
                           exception_proc_model_map={LIFReset: PyGatedLifResetModel})
    root = graph.readout
    where = "loihi2" if hardware else "lava-sim"
    done, t0 = 0, time.monotonic()
    bar = tqdm(total=n, desc=f"lava {'loihi2' if hardware else 'sim'}", unit="image",
               disable=not progress, dynamic_ncols=True)
    with _Guard(timeout) as guard:
        try:
            executable = root.compile(cfg)
            with guard.deferred():       # forks Lava's processes: not interruptible
                root.create_runtime(executable=executable)
            guard.runtime = root.runtime
            guard.check()
            for _ in range(n):
                root.run(condition=RunSteps(num_steps=net.n_steps), run_cfg=cfg)
                done += 1
                bar.update()
                if on_image is not None:
                    on_image(done)
                guard.check()
            frames = np.asarray(root.frames.get(), np.int64)
            records = graph.read_records() if record else {}
            guard.check()
        except BaseException as exc:
            with guard.deferred(act_after=False):
                guard.disarm()
                bar.close()
                errors = _force_stop(root.runtime)
            raise _translate(exc, guard, errors, where, done, n,
                             time.monotonic() - t0) from None
        with guard.deferred(act_after=False):
            guard.disarm()
            bar.close()
            _stop_runtime(root.runtime)
        if guard.cause is not None and guard.cause[0] == "signal":   # came while stopping
            raise LavaInterrupted(guard.cause[1])
    images = readout_image(torch.as_tensor(frames), net.readout.out_shape)
    return images, records


def _translate(exc: BaseException, guard: _Guard, errors: list[str], where: str, done: int,
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
    if isinstance(exc, (RuntimeError, _Stop)):
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "no detail"
        return LavaRunError(f"the {where} run failed ({at}): {first}")
    return exc


def run(net: DeployNet, backend: str, x_bytes=None, n: int | None = None, seed: int = 0,
        record: bool = False, progress: bool = False, timeout: float | None = None,
        first_image: int = 0, on_image=None):
    """Reconstruct `x_bytes` (uint8 N,C,H,W) or generate `n` images on `backend`.

    Image i of the run uses the random draws of image `first_image + i`, so ten runs of 100
    from first_image 0, 100, ... give the images of one run of 1,000. `timeout` (seconds)
    and `on_image` apply to the Lava backends.
    """
    if x_bytes is not None:
        x_bytes = torch.as_tensor(x_bytes)
        if tuple(x_bytes.shape[1:]) != tuple(net.image_shape):
            raise NeurovaeError(f"images of shape {tuple(x_bytes.shape[1:])} do not fit this "
                                f"model's input {tuple(net.image_shape)}")
    lava = dict(progress=progress, timeout=timeout, first_image=first_image, on_image=on_image)
    if backend in ("torch", "emulator"):
        return run_torch(net, x_bytes, n, seed, record, first_image, backend == "emulator")
    if backend == "lava-sim":
        return run_lava(net, x_bytes, n, seed, record, **lava)
    if backend == "loihi2":
        if not loihi2_available():
            raise BackendUnavailable(
                "the loihi2 backend needs Intel's Loihi extension for Lava (lava-loihi), which "
                "is not installed here; use --backend lava-sim (Lava's CPU simulator)")
        return run_lava(net, x_bytes, n, seed, record, hardware=True, **lava)
    raise NeurovaeError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
