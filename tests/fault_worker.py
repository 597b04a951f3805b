"""Fault injection for tests/test_reliability.py and bench/faults.py.

As a script it runs the neurovae CLI with observation hooks and writes one line per event
to a marker file, so that a harness can kill or interrupt it at a chosen moment:

    python tests/fault_worker.py MARKERS [--slow-checkpoint S] [--lava-fail] -- ARGS...

    step                  an optimizer step finished
    writing E             a checkpoint write began (epoch E): with --slow-checkpoint the
                          bytes then trickle out over S seconds, so a kill lands mid-write
    saved E B             checkpoint.save returned (epoch E; B = mid-epoch batch or -)

--lava-fail makes Lava's stock LIFReset model raise ValueError at step 30 (forked children
inherit the patch).

As a module it gives the harness helpers: the corrupt variants of a checkpoint and of a
.net file (built on tests/test_net_corruption.py's editing helpers) and a count of the
processes left in a session.
"""
from __future__ import annotations

import io
import os
import pickle
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


# ---------------------------------------------------------------- the worker

def _mark(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def _install_hooks(markers: str, slow_checkpoint: float, lava_fail: bool) -> None:
    import torch

    from neurovae import checkpoint

    real_step = torch.optim.AdamW.step

    def step(self, *a, **k):
        out = real_step(self, *a, **k)
        _mark(markers, "step")
        return out
    torch.optim.AdamW.step = step

    real_save, real_torch_save = checkpoint.save, torch.save

    def slow_torch_save(obj, f, *a, **k):
        buf = io.BytesIO()
        real_torch_save(obj, buf, *a, **k)
        data = buf.getvalue()
        with open(f, "wb") as fh:
            chunks = 10
            for i in range(chunks):
                fh.write(data[i * len(data) // chunks:(i + 1) * len(data) // chunks])
                fh.flush()
                time.sleep(slow_checkpoint / chunks)

    def save(path, **kw):
        _mark(markers, f"writing {kw.get('epoch')}")
        if slow_checkpoint:
            torch.save = slow_torch_save
        try:
            real_save(path, **kw)
        finally:
            torch.save = real_torch_save
        partial = (kw.get("extra") or {}).get("partial")
        _mark(markers, f"saved {kw.get('epoch')} {partial['batch'] if partial else '-'}")
    checkpoint.save = save

    if lava_fail:
        from lava.proc.lif.models import PyLifResetModelBitAcc

        real_spk = PyLifResetModelBitAcc.run_spk

        def run_spk(self):
            if self.time_step >= 30:
                raise ValueError(f"injected neuron fault at step {self.time_step}")
            return real_spk(self)
        PyLifResetModelBitAcc.run_spk = run_spk


def worker_main(argv: list[str]) -> None:
    sep = argv.index("--")
    opts, args = argv[:sep], argv[sep + 1:]
    markers = opts[0]
    slow = float(opts[opts.index("--slow-checkpoint") + 1]) if "--slow-checkpoint" in opts else 0
    _install_hooks(markers, slow, "--lava-fail" in opts)
    from neurovae.cli import main
    main(args=args, prog_name="neurovae")


# ---------------------------------------------------------------- harness helpers

def worker_command(markers, args, slow_checkpoint: float = 0.0, lava_fail: bool = False):
    cmd = [sys.executable, str(Path(__file__).resolve()), str(markers)]
    if slow_checkpoint:
        cmd += ["--slow-checkpoint", str(slow_checkpoint)]
    if lava_fail:
        cmd += ["--lava-fail"]
    return cmd + ["--"] + [str(a) for a in args]


def start(cmd, cwd=None, env=None) -> subprocess.Popen:
    """Start `cmd` as the leader of a new session (so its descendants can be counted and
    the whole group signalled, as a terminal's Ctrl-C does)."""
    env = dict(os.environ if env is None else env)
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def events(markers) -> list[str]:
    try:
        return Path(markers).read_text().splitlines()
    except FileNotFoundError:
        return []


def wait_for(markers, predicate, proc: subprocess.Popen | None = None, timeout: float = 300):
    """Wait until predicate(events) holds; returns the events (None if `proc` ended first)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ev = events(markers)
        if predicate(ev):
            return ev
        if proc is not None and proc.poll() is not None:
            return None
        time.sleep(0.02)
    raise TimeoutError(f"no matching event in {markers} after {timeout} s")


def session_processes(sid: int, include_tracker: bool = False) -> list[str]:
    """Live processes in session `sid` (Python's multiprocessing resource tracker, which
    ends by itself once its last user exits, is left out unless asked for)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if int(fields[3]) != sid or fields[0] in "ZX":
            continue
        if "resource_tracker" in cmd and not include_tracker:
            continue
        found.append(f"{pid} {cmd[:120]}")
    return found


def leftover_processes(sid: int, grace: float = 5.0) -> list[str]:
    """Processes of session `sid` still alive after `grace` seconds (0 expected)."""
    end = time.monotonic() + grace
    left = session_processes(sid)
    while left and time.monotonic() < end:
        time.sleep(0.1)
        left = session_processes(sid)
    return left


def kill_session(sid: int) -> None:
    """Test cleanup: end whatever a failed test left in session `sid`."""
    for line in session_processes(sid, include_tracker=True):
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except OSError:
            pass


# ---------------------------------------------------------------- corrupt files

class Boom:
    """Unpickling this runs `touch <path>`: proof that code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


KINDS = ("truncated", "bitflip", "empty", "wrong-format", "foreign", "wrong-version",
         "pickle", "pickle-in-zip")


def _zip_member_offset(raw: bytes, largest: bool = True) -> tuple[int, int]:
    """(offset, size) of the stored bytes of the largest member of a zip archive."""
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    name_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little")
    extra_len = int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    return info.header_offset + 30 + name_len + extra_len, info.compress_size


def corrupt_checkpoint(good: Path, net: Path, kind: str, dst: Path, pwned: Path) -> Path:
    """A damaged or foreign variant of the checkpoint `good` at `dst`."""
    import torch
    raw = good.read_bytes()
    if kind == "truncated":
        dst.write_bytes(raw[: len(raw) * 2 // 3])
    elif kind == "bitflip":        # one bit inside the largest tensor: zip and pickle intact
        at, size = _zip_member_offset(raw)
        data = bytearray(raw)
        data[at + size // 2] ^= 0x10
        dst.write_bytes(bytes(data))
    elif kind == "empty":
        dst.write_bytes(b"")
    elif kind == "wrong-format":   # a .net (HDF5) where a checkpoint belongs
        dst.write_bytes(net.read_bytes())
    elif kind == "foreign":        # a PyTorch file from elsewhere
        torch.save({"state_dict": {"w": torch.zeros(3)}, "epoch": 3}, dst)
    elif kind == "wrong-version":
        state = torch.load(good, weights_only=True)
        state["version"] = 99
        torch.save(state, dst)
    elif kind == "pickle":
        dst.write_bytes(pickle.dumps(Boom(pwned)))
    elif kind == "pickle-in-zip":  # torch's own container, carrying a code-running object
        state = torch.load(good, weights_only=True)
        state["metrics"] = [Boom(pwned)]
        torch.save(state, dst)
    else:
        raise ValueError(kind)
    return dst


def corrupt_net(good: Path, ckpt: Path, kind: str, dst: Path, pwned: Path) -> Path:
    """A damaged or foreign variant of the .net file `good` at `dst`."""
    import h5py
    import numpy as np
    import torch

    from test_net_corruption import _edited, _set_attr
    raw = good.read_bytes()
    if kind == "truncated":
        dst.write_bytes(raw[: len(raw) * 2 // 3])
    elif kind == "bitflip":        # one bit inside a weight array: HDF5 structure intact
        with h5py.File(good, "r") as f:
            ds = f["decoder/layer/0/weight"]
            at, size = ds.id.get_offset(), ds.id.get_storage_size()
        data = bytearray(raw)
        data[at + size // 2] ^= 0x04
        dst.write_bytes(bytes(data))
    elif kind == "empty":
        dst.write_bytes(b"")
    elif kind == "wrong-format":   # a checkpoint where a .net belongs
        dst.write_bytes(ckpt.read_bytes())
    elif kind == "foreign":        # a plain lava-dl netx HDF5 network
        with h5py.File(dst, "w") as f:
            g = f.create_group("layer/0")
            g.create_dataset("type", data=np.array([b"input"], "S10"))
            g.create_dataset("shape", data=np.array([1, 28, 28], np.int64))
    elif kind == "wrong-version":
        dst.unlink(missing_ok=True)
        _edited(good, dst, _set_attr("/", "format_version", 99), rechecksum=True)
    elif kind == "pickle":
        dst.write_bytes(pickle.dumps(Boom(pwned)))
    elif kind == "pickle-in-zip":
        torch.save({"net": Boom(pwned)}, dst)
    else:
        raise ValueError(kind)
    return dst


def random_bitflips(raw: bytes, count: int, seed: int = 0):
    """`count` copies of `raw`, each with one random bit flipped: (offset, bytes)."""
    rng = random.Random(seed)
    for _ in range(count):
        data = bytearray(raw)
        at = rng.randrange(len(data))
        data[at] ^= 1 << rng.randrange(8)
        yield at, bytes(data)


if __name__ == "__main__":
    worker_main(sys.argv[1:])
