"""The Lava backend: lava-sim reproduces the reference spike for spike through `run`, keeps
its on_image / first_image semantics, and cleans up after itself."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from neurovae import data, deploy
from neurovae.export import load, write
from neurovae.loihi_runtime import run
from neurovae.models import build_model

CLI = [sys.executable, "-m", "neurovae.cli"]


def _children() -> int:
    """Live child processes of this process (Lava forks one per process model).

    Python's multiprocessing resource tracker is not counted: one per interpreter, started
    by the first shared-memory use, it lives until the interpreter exits.
    """
    me, n = str(os.getpid()), 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{pid}/cmdline") as f:
                    tracker = "resource_tracker" in f.read()
                n += fields[1] == me and fields[0] != "Z" and not tracker
            except OSError:
                pass
    return n


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    from neurovae.config import make_config
    from conftest import TINY
    root = tmp_path_factory.mktemp("nets")
    out = {}
    for kind in ("fsvae", "esvae"):
        torch.manual_seed(11)
        write(deploy.from_model(build_model(make_config("mnist-small", kind, TINY)).eval(),
                                seed=5), root / f"{kind}.net")
        out[kind] = root / f"{kind}.net"
    return out


@pytest.mark.parametrize("kind", ["fsvae", "esvae"])
def test_lava_sim_matches_the_reference_backend_and_leaves_no_children(nets, kind):
    """Through `backends.run`: lava-sim gives the reference backend's records (same keys,
    uint8 numpy arrays, spike for spike) and images; tests/test_stock_graph.py covers every
    kind and mode against the ReferenceSimulator itself."""
    net = load(nets[kind])
    x = data.load_images("mnist", "test").tensor(torch.arange(3))
    ref, rec_ref = run(net, "reference", x_bytes=x, n=3, seed=21, record=True)
    got, rec_got = run(net, "lava-sim", x_bytes=x, n=3, seed=21, record=True)
    assert set(rec_ref) == set(rec_got)
    assert sum(int(v.sum()) for v in rec_ref.values()) > 100   # real activity was compared
    assert rec_ref["sampler/z"].sum() > 0
    for name in rec_ref:
        assert isinstance(rec_got[name], np.ndarray) and rec_got[name].dtype == np.uint8
        assert np.array_equal(rec_ref[name], rec_got[name]), name
    assert torch.equal(ref, got)
    assert _children() == 0


def test_on_image_progress_and_first_image(nets):
    """on_image(i) after each image; a run from first_image continues the draws of a longer
    run; zero images run nothing."""
    net = load(nets["esvae"])
    seen = []
    whole, _ = run(net, "lava-sim", n=3, seed=4, on_image=seen.append, progress=True)
    assert seen == [1, 2, 3]
    tail, _ = run(net, "lava-sim", n=2, seed=4, first_image=1)
    assert torch.equal(whole[1:], tail)
    none, rec = run(net, "lava-sim", n=0, seed=4)
    assert none.shape == (0, *net.readout.out_shape) and rec == {}
    assert _children() == 0


def test_exception_inside_a_stock_process_surfaces_its_cause(nets, monkeypatch):
    """The graph has only Lava's stock models: a fault in one still names its model and
    cause, and the runtime is reaped."""
    from lava.proc.lif.models import PyLifResetModelBitAcc

    from neurovae.loihi_runtime import LavaRunError
    real = PyLifResetModelBitAcc.run_spk

    def fail(self):
        if self.time_step >= 12:
            raise ValueError(f"injected fault at step {self.time_step}")
        return real(self)
    monkeypatch.setattr(PyLifResetModelBitAcc, "run_spk", fail)
    with pytest.raises(LavaRunError) as info:
        run(load(nets["esvae"]), "lava-sim", n=3, seed=1)
    msg = str(info.value)
    assert "PyLifResetModelBitAcc" in msg and "ValueError: injected fault at step 12" in msg
    assert _children() == 0


def test_a_stock_process_that_dies_is_detected_not_waited_for(nets, monkeypatch):
    import os

    from lava.proc.lif.models import PyLifResetModelBitAcc

    from neurovae.loihi_runtime import LavaRunError
    real = PyLifResetModelBitAcc.run_spk

    def die(self):
        if self.time_step >= 12:
            os._exit(3)
        return real(self)
    monkeypatch.setattr(PyLifResetModelBitAcc, "run_spk", die)
    with pytest.raises(LavaRunError, match="PyLifResetModelBitAcc.*exited with code 3"):
        run(load(nets["esvae"]), "lava-sim", n=3, seed=1)
    assert _children() == 0


def test_bad_input_shape_is_a_clear_error_and_leaves_no_children(nets):
    from neurovae.errors import NeurovaeError
    net = load(nets["fsvae"])
    with pytest.raises(NeurovaeError, match="do not fit"):
        run(net, "lava-sim", x_bytes=torch.zeros(2, 1, 32, 32, dtype=torch.uint8), seed=0)
    assert _children() == 0


def test_cli_generate_verify_and_hardware_backend(nets, tmp_path):
    res = subprocess.run(CLI + ["generate", str(nets["esvae"]), "-n", "4", "--seed", "3",
                                "-o", str(tmp_path / "s.png"), "--npy", str(tmp_path / "s.npy")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    arr = np.load(tmp_path / "s.npy")
    assert arr.shape == (4, 1, 28, 28) and (tmp_path / "s.png").stat().st_size > 0
    again = subprocess.run(CLI + ["generate", str(nets["esvae"]), "-n", "4", "--seed", "3",
                                  "--backend", "torch", "-o", str(tmp_path / "t.png"), "--npy",
                                  str(tmp_path / "t.npy")], capture_output=True, text=True)
    assert again.returncode == 0 and np.array_equal(arr, np.load(tmp_path / "t.npy"))
    ver = subprocess.run(CLI + ["verify", str(nets["fsvae"]), "-n", "2"], capture_output=True,
                         text=True)
    assert ver.returncode == 0 and "0 mismatched" in ver.stdout and "OK" in ver.stdout
    assert "emulator vs lava-sim" in ver.stdout and "reference vs lava-sim" in ver.stdout
    hw = subprocess.run(CLI + ["generate", str(nets["fsvae"]), "--backend", "loihi2", "-o",
                               str(tmp_path / "hw.png")], capture_output=True, text=True)
    assert hw.returncode == 2 and "Loihi extension" in hw.stderr
    assert not (tmp_path / "hw.png").exists()
    rec = subprocess.run(CLI + ["reconstruct", str(nets["fsvae"]), "-n", "3", "-o",
                                str(tmp_path / "r.png")], capture_output=True, text=True)
    assert rec.returncode == 0 and "MSE" in rec.stdout
