"""Training runs: outputs, resume reproducibility, NaN stop, bad checkpoints, devices, DDP."""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from neurovae import checkpoint
from neurovae.errors import CheckpointError, TrainingError
from neurovae.train import train

from conftest import TINY

CLI = [sys.executable, "-m", "neurovae.cli"]


def _weights(run):
    return checkpoint.load(run)["model"]


def test_epoch_outputs_and_resume_equals_uninterrupted(tmp_path, tiny_cfg):
    cfg2 = tiny_cfg("fsvae", "epochs=2", "seed=4")
    train(cfg2, tmp_path / "full", progress=False, max_batches=2)
    for name in ("checkpoint.pt", "metrics.jsonl", "samples.png", "reconstructions.png",
                 "loss.png", "config.json"):
        assert (tmp_path / "full" / name).stat().st_size > 0
    lines = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    # a run stopped after epoch 1, then resumed
    train(tiny_cfg("fsvae", "epochs=1", "seed=4"), tmp_path / "cut", progress=False, max_batches=2)
    train(cfg2, tmp_path / "cut", resume=True, progress=False, max_batches=2)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a different seed gives different weights: the comparison above can fail
    train(tiny_cfg("fsvae", "epochs=1", "seed=5"), tmp_path / "other", progress=False, max_batches=2)
    c = _weights(tmp_path / "other")
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_device_cpu_trains_like_the_default_path(tmp_path, tiny_cfg, monkeypatch):
    """--device cpu is the path a machine without CUDA takes by default, bit for bit: same
    loss terms every epoch, same weights and optimizer state."""
    cfg = tiny_cfg("fsvae", "seed=6")
    train(cfg, tmp_path / "cpu", progress=False, max_batches=2, device="cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    train(cfg, tmp_path / "auto", progress=False, max_batches=2)
    a, b = (checkpoint.load(tmp_path / r) for r in ("cpu", "auto"))
    terms = lambda m: [{k: v for k, v in e.items() if k != "seconds"} for e in m]  # noqa: E731
    assert terms(a["metrics"]) == terms(b["metrics"]) and len(a["metrics"]) == 1
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[i][k], sb[i][k])
                                          for i in sa for k in sa[i])


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path, tiny_cfg, monkeypatch):
    run = tmp_path / "run"
    train(tiny_cfg("esvae"), run, progress=False, max_batches=1)
    before = (run / "checkpoint.pt").read_bytes()
    from neurovae.models.esvae import ESVAE
    real = ESVAE.forward

    def poisoned(self, *a, **k):
        out = real(self, *a, **k)
        out["loss"] = out["loss"] * float("nan")
        return out
    monkeypatch.setattr(ESVAE, "forward", poisoned)
    with pytest.raises(TrainingError, match="nan"):
        train(tiny_cfg("esvae", "epochs=2"), run, resume=True, progress=False, max_batches=1)
    assert (run / "checkpoint.pt").read_bytes() == before
    assert not [p for p in run.iterdir() if p.name.startswith(".")]   # no temp files left


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    from neurovae.config import make_config
    good = tmp_path_factory.mktemp("good")
    train(make_config("mnist-small", "ann-ae", TINY), good, progress=False, max_batches=1)
    return good


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty", "foreign", "pickle", "version"])
def test_bad_checkpoints_give_one_clear_error(tmp_path, good_run, kind, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = good_run
    bad = tmp_path / "bad"
    bad.mkdir()
    path = bad / "checkpoint.pt"
    raw = (good / "checkpoint.pt").read_bytes()
    if kind == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif kind == "garbage":
        path.write_bytes(os.urandom(4096))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "foreign":
        torch.save({"state_dict": {"w": torch.zeros(3)}}, path)
    elif kind == "pickle":
        path.write_bytes(pickle.dumps(_Boom()))
    elif kind == "version":
        state = torch.load(good / "checkpoint.pt", weights_only=True)
        state["version"] = 99
        torch.save(state, path)
    with pytest.raises(CheckpointError):
        checkpoint.load(bad)
    assert not (tmp_path / "pwned").exists()
    res = subprocess.run(CLI + ["train", "--model", "ann-ae", "--out", str(bad), "--resume",
                                "--quiet"] + sum([["--set", t] for t in TINY], []),
                         capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "error:" in res.stderr
    assert not (tmp_path / "pwned").exists()


def test_cli_rejects_bad_arguments_with_exit_2(tmp_path):
    for args in (["train", "--epochs", "0"], ["train", "--batch-size", "-3"],
                 ["train", "--set", "nosuchkey=1"], ["train", "--set", "T"],
                 ["train", "--model", "gan"], ["train", "--config", "imagenet"]):
        res = subprocess.run(CLI + args + ["--out", str(tmp_path / "x")], capture_output=True,
                             text=True)
        assert res.returncode == 2, (args, res.stderr)
        assert "Traceback" not in res.stderr
    assert not (tmp_path / "x").exists()


def test_cli_train_end_to_end(tmp_path):
    out = tmp_path / "run"
    res = subprocess.run(CLI + ["train", "--model", "esvae", "--out", str(out), "--quiet",
                                "--max-batches", "1", "--device", "cpu"]
                         + sum([["--set", t] for t in TINY], []),
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "trained esvae" in res.stdout and (out / "samples.png").exists()
    again = subprocess.run(CLI + ["train", "--model", "esvae", "--out", str(out), "--quiet"]
                           + sum([["--set", t] for t in TINY], []), capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr


def test_ddp_two_gloo_ranks_hold_identical_weights(tmp_path):
    script = Path(__file__).with_name("ddp_worker.py")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          "--master_port=29517", str(script), str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "backend").read_text() == "gloo"     # CPU tensors: gloo, even with CUDA
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    start = torch.load(tmp_path / "start.pt", weights_only=True)
    assert any(not torch.equal(w0[k], start[k]) for k in w0)   # training moved the weights


def test_lr_schedule_warms_up_and_decays_by_step(tiny_cfg):
    from neurovae.config import ConfigError
    from neurovae.train import lr_at
    cfg = tiny_cfg("fsvae", "lr=0.01", "lr_schedule=cosine", "warmup=4", "lr_min_ratio=0.1")
    lrs = [lr_at(cfg, s, 24) for s in range(24)]
    assert lrs[:4] == pytest.approx([0.0025, 0.005, 0.0075, 0.01])
    assert lrs[4] == pytest.approx(0.01) and all(a > b for a, b in zip(lrs[4:], lrs[5:]))
    assert lr_at(cfg, 24, 24) == pytest.approx(0.001) and lrs[-1] > 0.001
    flat = tiny_cfg("fsvae", "lr=0.01")
    assert {lr_at(flat, s, 24) for s in range(24)} == {0.01}
    for bad in ("lr_schedule=step", "warmup=-1"):
        with pytest.raises(ConfigError):
            tiny_cfg("fsvae", bad)
