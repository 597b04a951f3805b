"""Guarding a Lava run: watchdog, signals, force stop, reaping, and no orphans.

Lava runs a graph as forked processes that block on each other forever when one of them
fails. `Guard` turns a crash, a dead process, a timeout or SIGINT/SIGTERM into an exception
in the main thread; `force_stop` and `stop_runtime` end the runtime and reap every process
it forked; `children_die_with_parent` makes the kernel end those processes when the parent
is killed with a signal nothing can catch (SIGKILL).
"""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time

# ---------------------------------------------------------------- the watchdog


class Stop(Exception):
    """Raised in the main thread by `Guard` when the run must end (cause in `Guard.cause`)."""


class Guard:
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
            raise Stop()

    def check(self):
        """Raise if the deadline passed (between images, in any thread)."""
        if self.cause is None and self.deadline is not None and time.monotonic() > self.deadline:
            self.cause = ("timeout",)
        if self.cause is not None:
            raise Stop()

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
        raise Stop()

    def _watch(self):
        while not self._done.wait(0.2):
            cause = None
            if self.deadline is not None and time.monotonic() > self.deadline:
                cause = ("timeout",)
            else:
                for actor in actors(self.runtime):
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


# ---------------------------------------------------------------- the runtime's processes

def actors(runtime) -> list:
    """The processes (multiprocessing.Process) Lava forked for `runtime`, [] if none yet."""
    mi = getattr(runtime, "_messaging_infrastructure", None)
    return list(getattr(mi, "actors", None) or [])


def _actor_names(runtime) -> list[str]:
    """Names of the runtime's actors, in the order Lava started them: one per Python
    process model, then the runtime services."""
    from lava.magma.compiler.builders.py_builder import PyProcessBuilder
    builders = getattr(getattr(runtime, "_executable", None), "proc_builders", None) or {}
    names = [f"process '{proc.name}' ({b.proc_model.__name__})" for proc, b in builders.items()
             if isinstance(b, PyProcessBuilder)]
    return names + ["the runtime service"] * max(0, len(actors(runtime)) - len(names))


def _exitcode(actor):
    try:
        return actor.exitcode
    except ValueError:            # closed by Lava's join
        return None


def _alive(actor) -> bool:
    try:
        return actor.is_alive()
    except (ValueError, AssertionError):
        return False


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


def force_stop(runtime) -> list[str]:
    """End a runtime that cannot be stopped through its channels: kill its processes, reap
    them, shut down its shared-memory manager; leaves no child process behind.

    Returns "<process> raised <Type: message>" or "<process> exited with code N" for each
    process that raised or ended on its own (not those killed here)."""
    if runtime is None:
        return []
    procs = actors(runtime)
    names = _actor_names(runtime)
    killed = set()
    for actor in procs:
        with contextlib.suppress(ValueError, AssertionError, OSError):
            if actor.is_alive():
                actor.kill()
                killed.add(id(actor))
    errors = []
    for i, actor in enumerate(procs):
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


def stop_runtime(runtime, grace: float = 10.0) -> None:
    """Stop a healthy runtime through Lava, falling back to `force_stop` if that hangs."""
    if runtime is None:
        return
    if not runtime._is_started:
        force_stop(runtime)
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
    if t.is_alive() or failed or any(_alive(a) for a in actors(runtime)):
        force_stop(runtime)


# ---------------------------------------------------------------- no orphans after SIGKILL
#
# A SIGKILL of the parent cannot be caught, so nothing above runs and Lava's processes
# would wait forever on a parent that is gone. Every process forked while a Lava run is
# active asks the kernel for SIGKILL when its parent dies (Linux PR_SET_PDEATHSIG). The
# kernel sends it when the *thread* that forked the child ends: Lava forks all its
# processes in `create_runtime`, in the thread that calls `run_lava`, which lives until
# the runtime is stopped. Elsewhere than Linux this does nothing.

PR_SET_PDEATHSIG = 1             # <linux/prctl.h>

_lock = threading.Lock()
_active = 0                      # Lava runs in progress in this process (inherited by forks)
_fork_parent = 0                 # pid of the process that forked last (read in the child)
_prctl = None                    # libc's prctl, loaded in the parent, before any fork


def _before_fork() -> None:
    global _fork_parent
    _fork_parent = os.getpid()


def _after_fork_in_child() -> None:
    """In a child forked during a Lava run: die with the parent, even if it already died."""
    if not _active or _prctl is None:
        return
    _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != _fork_parent:          # the parent died before the request was made
        os.kill(os.getpid(), signal.SIGKILL)


def _install() -> bool:
    """Load prctl and register the fork hooks, once per process (False where not Linux)."""
    global _prctl
    if _prctl is not None:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]
    _prctl = prctl
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
    return True


@contextlib.contextmanager
def children_die_with_parent():
    """Inside, every process forked (by Lava, or by one of its processes) is ended by the
    kernel when the process that forked it dies, however it dies."""
    global _active
    with _lock:
        _install()
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
