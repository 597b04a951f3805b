"""Reliability: killed and interrupted training, corrupt and foreign files, bad arguments,
and Lava runs that fail, are interrupted or time out.

The CI versions here are small (two kills, one SIGINT, one timeout); bench/faults.py runs
the 20-kill version and bench/long_run.py the 1,000-image run.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import fault_worker as fw
from conftest import TINY
from neurovae import checkpoint, deploy
from neurovae.cli import main as cli_main
from neurovae.config import make_config
from neurovae.errors import CheckpointError
from neurovae.export import write
from neurovae.models import build_model
from test_lava_runtime import _children

CLI = [sys.executable, "-m", "neurovae.cli"]
SETS = sum([["--set", t] for t in TINY], [])
# the run every interrupted run must reproduce: 3 epochs of 3 batches
REF = ["epochs=3", "seed=7"]
REF_ARGS = ["train", "--model", "fsvae", "--quiet", "--max-batches", "3"] + SETS + sum(
    [["--set", t] for t in REF], [])


def cli(args) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit code, stdout, stderr)."""
    import contextlib
    import io
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli_main.main(args=[str(a) for a in args], prog_name="neurovae")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def weights(run) -> dict:
    return checkpoint.load(run)["model"]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def stale_temps(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".")]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A good checkpoint (in a run folder) and a good .net of the tiny FSVAE."""
    root = tmp_path_factory.mktemp("good")
    cfg = make_config("mnist-small", "fsvae", TINY)
    torch.manual_seed(3)
    model = build_model(cfg)
    (root / "run").mkdir()
    checkpoint.save(root / "run" / checkpoint.FILENAME, cfg=cfg, model=model,
                    optimizer=torch.optim.AdamW(model.parameters()), epoch=1,
                    metrics=[{"epoch": 1, "loss": 0.5}])
    write(deploy.from_model(model.eval(), seed=5), root / "model.net")
    return {"checkpoint": root / "run" / checkpoint.FILENAME, "net": root / "model.net"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Final weights of the uninterrupted reference run (through the real CLI)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    res = fw.start(CLI + REF_ARGS + ["--out", out])
    _, err = res.communicate(timeout=600)
    assert res.returncode == 0, err
    return weights(out)


# ---------------------------------------------------------------- corrupt and foreign files

def _ckpt_args(name):
    return lambda f, o: {
        "train --resume": ["train", "--model", "fsvae", "--out", f.parent, "--resume",
                           "--quiet"] + SETS,
        "export": ["export", o / "model.net", "--from", f.parent],
        "evaluate --checkpoint": ["evaluate", "--checkpoint", f.parent, "-n", "2", "--quiet",
                                  "--json", o / "e.json"],
    }[name]


# (command, kind of file it reads, argv from (file, output folder)). Every command that
# reads a file is listed; a new one appends an entry.
READERS = [
    ("train --resume", "checkpoint", _ckpt_args("train --resume")),
    ("export", "checkpoint", _ckpt_args("export")),
    ("inspect", "net", lambda f, o: ["inspect", f]),
    ("generate", "net", lambda f, o: ["generate", f, "-n", "2", "-o", o / "s.png",
                                      "--npy", o / "s.npy"]),
    ("reconstruct", "net", lambda f, o: ["reconstruct", f, "-n", "2", "-o", o / "r.png",
                                         "--npy", o / "r.npy"]),
    ("verify", "net", lambda f, o: ["verify", f, "-n", "1"]),
]
READERS += [
    ("evaluate", "net", lambda f, o: ["evaluate", f, "-n", "2", "--quiet", "--json",
                                      o / "e.json", "--samples", o / "s.png"]),
    ("evaluate --checkpoint", "checkpoint", _ckpt_args("evaluate --checkpoint")),
    ("profile", "net", lambda f, o: ["profile", f, "-n", "2", "--json", o / "p.json",
                                     "--chart", o / "p.png"]),
]


@pytest.mark.parametrize("kind", fw.KINDS)
@pytest.mark.parametrize("command, reads, argv", READERS, ids=[r[0] for r in READERS])
def test_corrupt_or_foreign_file_gives_one_error_and_exit_2(files, tmp_path, monkeypatch,
                                                            command, reads, argv, kind):
    monkeypatch.chdir(tmp_path)
    pwned, out = tmp_path / "pwned", tmp_path / "out"
    out.mkdir()
    if reads == "checkpoint":
        (tmp_path / "run").mkdir()
        bad = fw.corrupt_checkpoint(files["checkpoint"], files["net"], kind,
                                    tmp_path / "run" / checkpoint.FILENAME, pwned)
    else:
        bad = fw.corrupt_net(files["net"], files["checkpoint"], kind, tmp_path / "model.net",
                             pwned)
    before = sorted(p.name for p in bad.parent.iterdir())
    code, stdout, err = cli(argv(bad, out))
    line = one_error_line(err)
    assert code == 2, err
    assert bad.name in line, line                       # the message names the file
    assert not pwned.exists(), "unpickling ran code"
    assert list(out.iterdir()) == [], "partial output left"
    assert sorted(p.name for p in bad.parent.iterdir()) == before


def test_random_bit_flips_never_load_a_different_checkpoint(files, tmp_path):
    """PyTorch's zip container checks nothing: the digest must catch every change."""
    raw = files["checkpoint"].read_bytes()
    good = torch.load(files["checkpoint"], weights_only=True)
    path = tmp_path / "flipped.pt"
    errors = 0
    for at, data in fw.random_bitflips(raw, 150, seed=1):
        path.write_bytes(data)
        try:
            state = torch.load(path, weights_only=True)
        except Exception:   # noqa: BLE001 - torch refusing it is fine
            state = None
        try:
            checkpoint.load(path)
            assert state is not None and checkpoint.digest(state) == checkpoint.digest(good), (
                f"a flip at byte {at} loaded as a different checkpoint")
        except CheckpointError:
            errors += 1
    assert errors > 100     # most flips change content; the rest hit unused zip bytes


def test_checkpoint_without_digest_from_version_1_still_loads(files, tmp_path):
    state = torch.load(files["checkpoint"], weights_only=True)
    state["version"] = 1
    del state["digest"]
    torch.save(state, tmp_path / "v1.pt")
    assert checkpoint.load(tmp_path / "v1.pt")["epoch"] == 1


def test_spiking_checkpoint_of_the_old_clock_is_refused_and_exits_2(files, tmp_path):
    state = torch.load(files["checkpoint"], weights_only=True)
    del state["clock"]                    # written before the phase clock
    state["digest"] = checkpoint.digest(state)
    run = tmp_path / "old"
    run.mkdir()
    torch.save(state, run / checkpoint.FILENAME)
    with pytest.raises(CheckpointError, match="old single clock.*retrain"):
        checkpoint.load(run / checkpoint.FILENAME)
    res = subprocess.run(CLI + ["export", str(tmp_path / "m.net"), "--from", str(run)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "old single clock" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "m.net").exists()


# ---------------------------------------------------------------- bad arguments

def _readonly_dir(tmp_path) -> Path:
    from neurovae.fileio import unwritable_reason
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if unwritable_reason(ro):
        return ro
    if unwritable_reason(Path("/sys")):    # root ignores permission bits; sysfs refuses files
        return Path("/sys")
    pytest.skip("no read-only folder available")


def _image_folder(tmp_path, name, sizes, extra=None) -> Path:
    from PIL import Image
    d = tmp_path / name
    d.mkdir()
    for i, s in enumerate(sizes):
        Image.new("L", s, color=i * 40).save(d / f"im{i}.png")
    if extra:
        (d / extra[0]).write_bytes(extra[1])
    return d


def test_bad_arguments_fail_fast_with_one_line_and_exit_2(files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net, ckpt, ro = files["net"], files["checkpoint"], _readonly_dir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    nowhere = tmp_path / "nowhere"
    mixed = _image_folder(tmp_path, "mixed", [(28, 28), (32, 20)])
    junk = _image_folder(tmp_path, "junk", [(28, 28)], ("notes.txt", b"hello"))
    broken = _image_folder(tmp_path, "broken", [(28, 28)], ("bad.png", b"not a png"))
    run = ["train", "--quiet", "--out", out / "run"] + SETS
    cases = [
        (["generate", net, "-n", "0"], "-n"),
        (["generate", net, "-n", "-3"], "-n"),
        (["reconstruct", net, "-n", "0"], "-n"),
        (["verify", net, "-n", "-1"], "-n"),
        (["train", "--out", out / "run", "--batch-size", "0"], "--batch-size"),
        (["train", "--out", out / "run", "--batch-size", "-4"], "--batch-size"),
        (["train", "--out", out / "run", "--epochs", "0"], "--epochs"),
        (["train", "--out", out / "run", "--epochs", "-1"], "--epochs"),
        (run + ["--set", "batch_size=0"], "batch_size"),
        (["generate", net, "--timeout", "0"], "--timeout"),
        (run + ["--set", "dataset=imagenet"], "unknown dataset 'imagenet'"),
        (["reconstruct", net, "--dataset", "imagenet", "-o", out / "r.png"],
         "unknown dataset 'imagenet'"),
        (["train", "--model", "gan", "--out", out / "run"], "gan"),
        (["train", "--config", "imagenet", "--out", out / "run"], "imagenet"),
        (["generate", net, "--backend", "gpu", "-o", out / "s.png"], "gpu"),
        (["generate", net, "-o", nowhere / "s.png"], "does not exist"),
        (["generate", net, "-o", out / "s.png", "--npy", nowhere / "s.npy"], "does not exist"),
        (["reconstruct", net, "-o", nowhere / "r.png"], "does not exist"),
        (["export", nowhere / "m.net", "--from", ckpt.parent], "does not exist"),
        (["generate", net, "-o", ro / "s.png"], "not writable"),
        (["export", ro / "m.net", "--from", ckpt.parent], "not writable"),
        (["train", "--quiet", "--out", ro / "run"] + SETS, "not writable"),
        (run + ["--set", "dataset=folder", "--data-dir", mixed], "differ in size"),
        (run + ["--set", "dataset=folder", "--data-dir", junk], "notes.txt"),
        (run + ["--set", "dataset=folder", "--data-dir", broken], "bad.png"),
        (run + ["--set", "dataset=folder", "--data-dir", nowhere], "does not exist"),
        (["reconstruct", net, "--dataset", "folder", "--data-dir", junk, "-o", out / "r.png"],
         "notes.txt"),
    ]
    for args, words in cases:
        t0 = time.monotonic()
        code, _, err = cli(args)
        seconds = time.monotonic() - t0
        line = one_error_line(err)
        assert code == 2, (args, err)
        assert words in line, (args, line)
        assert seconds < 20, (args, seconds)            # refused before any long work
        assert list(out.iterdir()) == [], (args, list(out.iterdir()))


def test_mixed_image_sizes_train_once_a_size_is_given(tmp_path):
    """The fix the message names works: --set image_size=N resizes a mixed folder."""
    mixed = _image_folder(tmp_path, "mixed", [(28, 28), (32, 20)] * 8)
    code, out, err = cli(["train", "--model", "ann-ae", "--quiet", "--out", tmp_path / "run",
                          "--max-batches", "1", "--set", "dataset=folder", "--data-dir", mixed,
                          "--set", "image_size=28", "--set", "batch_size=4"]
                         + sum([["--set", t] for t in TINY if not t.startswith(
                             ("batch_size", "train_subset"))], []))
    assert code == 0, err
    assert (tmp_path / "run" / checkpoint.FILENAME).exists()


def test_epoch_outputs_skip_grids_of_a_model_that_does_not_reconstruct(tmp_path):
    from neurovae.train import _write_epoch_outputs

    class Classifier(torch.nn.Module):
        reconstruct = None
        sample = None
    cfg = make_config("mnist-small", "fsvae", TINY)
    mse = _write_epoch_outputs(tmp_path, Classifier(), cfg, torch.zeros(4, 1, 28, 28,
                                                                        dtype=torch.uint8),
                               [{"epoch": 1, "loss": 1.0}])
    assert mse is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png"]


# ---------------------------------------------------------------- killed and interrupted training

def _run_worker(tmp_path, out, markers, extra=(), slow=0.0):
    return fw.start(fw.worker_command(markers, REF_ARGS + ["--out", out] + list(extra),
                                      slow_checkpoint=slow), cwd=tmp_path)


def _kill(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert fw.leftover_processes(proc.pid) == []


@pytest.mark.slow
def test_sigkill_mid_epoch_and_mid_checkpoint_write_then_resume_equals_uninterrupted(
        tmp_path, reference):
    out, markers = tmp_path / "run", tmp_path / "markers"
    # kill 1: in the middle of epoch 2's batches
    proc = _run_worker(tmp_path, out, markers)
    ev = fw.wait_for(markers, lambda e: "saved 1 -" in e and e[-1] == "step", proc)
    assert ev is not None, proc.communicate()[1]
    _kill(proc)
    state = checkpoint.load(out)
    assert state["epoch"] == 1 and "partial" not in state      # no finished epoch lost
    # kill 2: while epoch 2's checkpoint is being written (the write trickles over 2 s)
    markers.unlink()
    proc = _run_worker(tmp_path, out, markers, ["--resume"], slow=2.0)
    assert fw.wait_for(markers, lambda e: "writing 2" in e, proc) is not None
    time.sleep(0.5)
    _kill(proc)
    assert stale_temps(out), "the kill did not land during the checkpoint write"
    assert checkpoint.load(out)["epoch"] == 1                  # the old file is intact
    # resume to the end: same weights as the run nobody interrupted
    res = fw.start(CLI + REF_ARGS + ["--out", out, "--resume"], cwd=tmp_path)
    _, err = res.communicate(timeout=600)
    assert res.returncode == 0, err
    assert same_weights(weights(out), reference)
    assert stale_temps(out) == []
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]


@pytest.mark.slow
def test_sigint_saves_a_checkpoint_exits_cleanly_and_resume_equals_uninterrupted(
        tmp_path, reference):
    out, markers = tmp_path / "run", tmp_path / "markers"
    proc = _run_worker(tmp_path, out, markers)
    assert fw.wait_for(markers, lambda e: "step" in e, proc) is not None
    os.killpg(proc.pid, signal.SIGINT)                         # as Ctrl-C in a terminal
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted: SIGINT"), err
    state = checkpoint.load(out)
    assert state["epoch"] == 0 and state["partial"]["batch"] in (1, 2)   # mid-epoch position
    assert f"holds {checkpoint.describe(state)}" in lines[0]
    assert "--resume" in lines[0]
    assert any(e.startswith("saved") for e in fw.events(markers))
    assert stale_temps(out) == []
    res = fw.start(CLI + REF_ARGS + ["--out", out, "--resume"], cwd=tmp_path)
    _, err = res.communicate(timeout=600)
    assert res.returncode == 0, err
    assert same_weights(weights(out), reference)


# ---------------------------------------------------------------- Lava runs under failure

@pytest.fixture(scope="module")
def lava_net(files):
    from neurovae.export import load
    return load(files["net"])


# A fault inside a stock Lava model and a dying Lava process: tests/test_lava_runtime.py.


def test_timeout_stops_the_runtime_and_reaps_its_processes(lava_net):
    from neurovae.loihi_runtime import run
    from neurovae.loihi_runtime.lava_backend import LavaTimeout
    t0 = time.monotonic()
    with pytest.raises(LavaTimeout, match="exceeded --timeout 3 s"):
        run(lava_net, "lava-sim", n=100000, seed=1, timeout=3)
    assert time.monotonic() - t0 < 15
    assert _children() == 0
    images, _ = run(lava_net, "lava-sim", n=2, seed=1, timeout=120)   # a run that fits
    ref, _ = run(lava_net, "reference", n=2, seed=1)
    assert torch.equal(images, ref) and _children() == 0


@pytest.mark.slow
def test_cli_sigint_during_a_lava_run_stops_it_and_leaves_no_process(files, tmp_path):
    out = tmp_path / "s.png"
    with open(tmp_path / "stderr", "w") as errf:
        proc = subprocess.Popen(CLI + ["generate", str(files["net"]), "-n", "100000", "-o",
                                       str(out)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=errf, start_new_session=True,
                                env=dict(os.environ, OMP_NUM_THREADS="1"))
        try:
            end = time.monotonic() + 300
            while "lava sim" not in (tmp_path / "stderr").read_text():   # compiled, running
                assert proc.poll() is None and time.monotonic() < end
                time.sleep(0.1)
            time.sleep(1.0)
            assert len(fw.session_processes(proc.pid)) > 3        # Lava's processes run
            os.killpg(proc.pid, signal.SIGINT)                     # Ctrl-C: the whole group
            proc.wait(timeout=60)
        finally:
            fw.kill_session(proc.pid)
    err = (tmp_path / "stderr").read_text()
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "Traceback" not in err
    assert "interrupted: SIGINT: the Lava run was stopped" in err
    assert not out.exists() and stale_temps(tmp_path) == []
    assert fw.leftover_processes(proc.pid) == []


@pytest.mark.slow
def test_cli_timeout_and_process_failure_are_reported_and_leave_no_process(files, tmp_path):
    out = tmp_path / "s.png"
    proc = fw.start(CLI + ["generate", str(files["net"]), "-n", "100000", "-o", str(out),
                           "--timeout", "4"], cwd=tmp_path)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    line = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and "exceeded --timeout 4 s" in line[0], err
    assert "Traceback" not in err and not out.exists()
    assert fw.leftover_processes(proc.pid) == []
    proc = fw.start(fw.worker_command(tmp_path / "markers", [
        "generate", files["net"], "-n", "3", "-o", out], lava_fail=True), cwd=tmp_path)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    line = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(line) == 1, err
    assert "PyLifResetModelBitAcc" in line[0] and "ValueError: injected neuron fault" in line[0]
    assert "Traceback" not in err and not out.exists()
    assert fw.leftover_processes(proc.pid) == []


def test_generation_in_chunks_equals_one_run(lava_net):
    """first_image: runs of 2 from images 0 and 2 give the images of one run of 4."""
    from neurovae.loihi_runtime import run
    whole, _ = run(lava_net, "lava-sim", n=4, seed=9)
    parts = [run(lava_net, "lava-sim", n=2, seed=9, first_image=i)[0] for i in (0, 2)]
    assert torch.equal(whole, torch.cat(parts))
    ref, _ = run(lava_net, "reference", n=2, seed=9, first_image=2)
    assert torch.equal(parts[1], ref)
    assert not np.array_equal(parts[0].numpy(), parts[1].numpy())


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time in clock ticks) of `pid` from /proc, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1]), int(fields[19])


def _descendants(root: int) -> dict[int, int]:
    """Live descendants of `root`: pid -> start time (to tell a reused pid apart)."""
    stats = {}
    for p in os.listdir("/proc"):
        if p.isdigit() and (st := _proc_stat(int(p))) is not None and st[0] not in "ZX":
            stats[int(p)] = st
    found, frontier = {}, {root}
    while frontier:
        kids = {pid for pid, st in stats.items() if st[1] in frontier and pid not in found}
        found.update({pid: stats[pid][2] for pid in kids})
        frontier = kids
    return found


def _still_alive(procs: dict[int, int]) -> list[int]:
    """The processes of `procs` that still run (a zombie or a reused pid counts as ended)."""
    return [pid for pid, start in procs.items()
            if (st := _proc_stat(pid)) is not None and st[0] not in "ZX" and st[2] == start]


# The CLI with the kernel's help switched off: Lava's processes outlive a SIGKILL of it.
UNPROTECTED_CLI = [sys.executable, "-c", "import sys; "
                   "import neurovae.loihi_runtime.supervision as s; s._install = lambda: False; "
                   "from neurovae.cli import main; main(args=sys.argv[1:], prog_name='neurovae')"]


@pytest.mark.parametrize("protected", [True, False], ids=["protected", "control"])
def test_cli_sigkill_during_a_lava_run_leaves_no_orphan(files, tmp_path, protected):
    """SIGKILL cannot be caught: the kernel ends Lava's processes (PR_SET_PDEATHSIG). The
    control run, without it, shows that they would otherwise stay (and that this test sees
    them)."""
    out = tmp_path / "s.png"
    with open(tmp_path / "stderr", "w") as errf:
        proc = subprocess.Popen((CLI if protected else UNPROTECTED_CLI)
                                + ["generate", str(files["net"]), "-n", "100000",
                                   "--backend", "lava-sim", "-o", str(out)],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=errf,
                                start_new_session=True,
                                env=dict(os.environ, OMP_NUM_THREADS="1"))
        try:
            end = time.monotonic() + 120
            while "lava sim" not in (tmp_path / "stderr").read_text():   # compiled, running
                assert proc.poll() is None, (tmp_path / "stderr").read_text()
                assert time.monotonic() < end, "the Lava run did not start"
                time.sleep(0.1)
            # Lava's processes and its managers; on a loaded machine the last may still be
            # starting when the run reports, so wait for them within the same deadline
            while len(lava := _descendants(proc.pid)) < 3 and time.monotonic() < end:
                time.sleep(0.1)
            assert len(lava) >= 3, lava
            os.kill(proc.pid, signal.SIGKILL)           # the CLI only, as the OOM killer does
            proc.wait(timeout=30)
            end = time.monotonic() + (10 if protected else 3)
            while _still_alive(lava) and time.monotonic() < end:
                time.sleep(0.1)
            left = _still_alive(lava)
        finally:
            fw.kill_session(proc.pid)                   # the orphans stay in its session
    if protected:
        assert left == [], f"{len(left)} of {len(lava)} Lava processes outlived the CLI"
    else:
        assert len(left) >= 3, f"only {len(left)} of {len(lava)} outlived the CLI unprotected"
    assert not out.exists()


def test_a_lava_run_from_another_thread_is_not_ended_by_the_kernel(lava_net):
    """The kernel's SIGKILL follows the thread that forked Lava's processes, not the
    process: a run in a worker thread (which forks them and outlives them) completes."""
    import threading
    from neurovae.loihi_runtime import run
    got = {}

    def work():
        got["images"] = run(lava_net, "lava-sim", n=2, seed=3)[0]
    t = threading.Thread(target=work)
    t.start()
    t.join(120)
    assert not t.is_alive() and "images" in got
    assert torch.equal(got["images"], run(lava_net, "reference", n=2, seed=3)[0])
    assert _children() == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_only_forks_during_a_lava_run_ask_to_die_with_their_parent():
    import ctypes
    from neurovae.loihi_runtime.supervision import children_die_with_parent

    def pdeathsig_of_a_fork() -> int:
        pid = os.fork()
        if pid == 0:                               # the child reports PR_GET_PDEATHSIG (2)
            sig = ctypes.c_int(-1)
            ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)
            os._exit(sig.value)
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    with children_die_with_parent():
        inside = pdeathsig_of_a_fork()
    assert (inside, pdeathsig_of_a_fork()) == (signal.SIGKILL, 0)
