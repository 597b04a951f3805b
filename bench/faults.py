"""Fault injection at scale: killed training, corrupt files, failing Lava runs.

1. Training: `neurovae train` on mnist-small (shrunk with --set and --max-batches so that it
   runs in minutes) is killed with SIGKILL at --kills random moments (during start-up,
   during a batch, and during a checkpoint write: the worker makes each checkpoint write
   trickle over --write-seconds so the kill can land inside it) and resumed each time.
   After every kill the checkpoint must load and hold every epoch finished before the
   kill; every finished run must have the weights of an uninterrupted run with the same
   seed. One SIGINT run checks the clean stop and its resume too.
2. Files: every CLI command that reads a file, as a real subprocess, against every
   corrupt or foreign variant (tests/fault_worker.py KINDS): exit 2, one `error:` line, no
   traceback, no code run, no output left.
3. Lava: a failing process, SIGINT, SIGTERM, --timeout and SIGKILL (which nothing can
   catch: the kernel ends Lava's processes with their parent) on `generate`: the processes
   left in the CLI's session afterwards are counted (0 expected).

Prints one JSON line of figures. Usage:
    python bench/faults.py [--kills 20] [--parts training,files,lava] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import fault_worker as fw  # noqa: E402

CLI = [sys.executable, "-m", "neurovae.cli"]
SMALL = ["batch_size=16", "T=4", "train_subset=64", "latent=8", "k=4", "enc_channels=8,16",
         "dec_channels=16,8,8"]


def _sets(items):
    return sum([["--set", t] for t in items], [])


def train_args(epochs: int, batches: int, seed: int) -> list[str]:
    return (["train", "--model", "fsvae", "--config", "mnist-small", "--quiet",
             "--max-batches", str(batches), "--seed", str(seed)]
            + _sets(SMALL + [f"epochs={epochs}"]))


def _weights(run):
    from neurovae import checkpoint
    return checkpoint.load(run)["model"]


def _same(a, b) -> bool:
    import torch
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".")] if folder.exists() else []


# ---------------------------------------------------------------- 1. killed training

def training(work: Path, kills: int, epochs: int, batches: int, write_s: float,
             rng: random.Random) -> dict:
    from neurovae import checkpoint
    from neurovae.errors import CheckpointError
    args = train_args(epochs, batches, seed=11)
    t0 = time.monotonic()
    ref = fw.start(CLI + args + ["--out", str(work / "ref")])
    _, err = ref.communicate()
    if ref.returncode:
        raise SystemExit(f"reference run failed: {err[-2000:]}")
    ref_s = time.monotonic() - t0
    reference = _weights(work / "ref")

    # kill moments: a fixed mix, shuffled; 'write' kills land inside a checkpoint write
    n_write, n_start = max(1, kills // 4), max(1, kills // 8)
    plan = ["write"] * n_write + ["startup"] * n_start + ["batch"] * (kills - n_write - n_start)
    rng.shuffle(plan)
    fig = {"kills": 0, "kills_by_moment": {"startup": 0, "batch": 0, "write": 0},
           "kills_inside_checkpoint_write": 0, "checkpoints_unloadable": 0,
           "epochs_lost_max": 0, "kills_survived": 0, "restarts": 0, "runs_completed": 0,
           "runs_equal_to_uninterrupted": 0, "processes_left": 0}
    round_no, out, done_epochs = 0, work / "run0", 0
    markers = work / "markers"
    while fig["kills"] < kills:
        resume = (out / checkpoint.FILENAME).exists()
        temps_before = set(_temps(out))      # left by an earlier kill, cleared on resume
        markers.unlink(missing_ok=True)
        proc = fw.start(fw.worker_command(markers, args + ["--out", str(out)]
                                          + (["--resume"] if resume else []),
                                          slow_checkpoint=write_s))
        fig["restarts"] += 1
        moment = plan[fig["kills"]]
        if moment == "startup":
            time.sleep(rng.uniform(0.2, 3.0))
            ok = proc.poll() is None
        elif moment == "batch":
            want = rng.randint(1, batches * 2)
            ok = fw.wait_for(markers, lambda e: e.count("step") >= want, proc) is not None
            time.sleep(rng.uniform(0.0, 0.3))
        else:
            ok = fw.wait_for(markers, lambda e: any(x.startswith("writing") for x in e),
                             proc) is not None
            time.sleep(rng.uniform(0.05, write_s * 0.9))
        finished = [int(e.split()[1]) for e in fw.events(markers)
                    if e.startswith("saved") and e.split()[2] == "-"]
        done_epochs = max([done_epochs] + finished)
        if not ok or proc.poll() is not None:      # the run ended before the moment came
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"run failed: {err[-2000:]}")
            fig["runs_completed"] += 1
            fig["runs_equal_to_uninterrupted"] += _same(_weights(out), reference)
            round_no += 1
            out, done_epochs = work / f"run{round_no}", 0
            continue
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        fig["kills"] += 1
        fig["kills_by_moment"][moment] += 1
        fig["processes_left"] += len(fw.leftover_processes(proc.pid))
        fig["kills_inside_checkpoint_write"] += bool(set(_temps(out)) - temps_before)
        survived = True
        if (out / checkpoint.FILENAME).exists():
            try:
                state = checkpoint.load(out)
                lost = done_epochs - state["epoch"]
                fig["epochs_lost_max"] = max(fig["epochs_lost_max"], lost)
                survived = lost <= 0 and "partial" not in state
            except CheckpointError:
                fig["checkpoints_unloadable"] += 1
                survived = False
        else:
            survived = done_epochs == 0
        fig["kills_survived"] += survived
    # finish the last run, then one SIGINT run
    res = fw.start(CLI + args + ["--out", str(out)]
                   + (["--resume"] if (out / checkpoint.FILENAME).exists() else []))
    _, err = res.communicate()
    if res.returncode:
        raise SystemExit(f"final resume failed: {err[-2000:]}")
    fig["runs_completed"] += 1
    fig["runs_equal_to_uninterrupted"] += _same(_weights(out), reference)
    fig["stale_temp_files_after_resume"] = len(_temps(out))
    fig.update(_sigint(work, args, reference))
    fig["reference_run_s"] = round(ref_s, 1)
    return fig


def _sigint(work: Path, args, reference) -> dict:
    from neurovae import checkpoint
    out, markers = work / "sigint", work / "markers-int"
    proc = fw.start(fw.worker_command(markers, args + ["--out", str(out)]))
    fw.wait_for(markers, lambda e: "step" in e, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    state = checkpoint.load(out)
    clean = (proc.returncode == 130 and len(lines) == 1 and "Traceback" not in err
             and lines[0].startswith("interrupted: SIGINT"))
    res = fw.start(CLI + args + ["--out", str(out), "--resume"])
    res.communicate()
    return {"sigint_exit_code": proc.returncode, "sigint_clean": clean,
            "sigint_saved": checkpoint.describe(state),
            "sigint_resume_equal": res.returncode == 0 and _same(_weights(out), reference)}


# ---------------------------------------------------------------- 2. corrupt files

def files(work: Path) -> dict:
    import torch

    from neurovae import checkpoint, deploy
    from neurovae.config import make_config
    from neurovae.export import write
    from neurovae.models import build_model
    import test_reliability as tr
    good = work / "good"
    (good / "run").mkdir(parents=True)
    cfg = make_config("mnist-small", "fsvae", SMALL)
    torch.manual_seed(3)
    model = build_model(cfg)
    checkpoint.save(good / "run" / checkpoint.FILENAME, cfg=cfg, model=model,
                    optimizer=torch.optim.AdamW(model.parameters()), epoch=1)
    write(deploy.from_model(model.eval(), seed=5), good / "model.net")
    ckpt, net = good / "run" / checkpoint.FILENAME, good / "model.net"
    fig = {"corrupt_files_tried": 0, "corrupt_files_ok": 0, "corrupt_failures": []}
    t0 = time.monotonic()
    for command, reads, argv in tr.READERS:
        for kind in fw.KINDS:
            case = Path(tempfile.mkdtemp(dir=work))
            out, pwned = case / "out", case / "pwned"
            out.mkdir()
            if reads == "checkpoint":
                (case / "run").mkdir()
                bad = fw.corrupt_checkpoint(ckpt, net, kind, case / "run" / checkpoint.FILENAME,
                                            pwned)
            else:
                bad = fw.corrupt_net(net, ckpt, kind, case / "model.net", pwned)
            proc = fw.start(CLI + [str(a) for a in argv(bad, out)], cwd=case)
            _, err = proc.communicate()
            lines = [ln for ln in err.splitlines() if ln.strip()]
            ok = (proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ")
                  and "Traceback" not in err and not pwned.exists()
                  and not list(out.iterdir()))
            fig["corrupt_files_tried"] += 1
            fig["corrupt_files_ok"] += ok
            if not ok:
                fig["corrupt_failures"].append(f"{command} {kind}: rc {proc.returncode}: "
                                               f"{err[-300:]}")
    fig["corrupt_files_s"] = round(time.monotonic() - t0, 1)
    fig["corrupt_commands"] = len(tr.READERS)
    return fig


# ---------------------------------------------------------------- 3. Lava under failure

def lava(work: Path) -> dict:
    import torch

    from neurovae import deploy
    from neurovae.config import make_config
    from neurovae.export import write
    from neurovae.models import build_model
    torch.manual_seed(0)
    net = work / "lava.net"
    write(deploy.from_model(build_model(make_config("mnist-small", "fsvae", SMALL)).eval()),
          net)
    gen = ["generate", str(net), "-o", str(work / "lava.png")]
    cases = {}

    def finish(name, proc, want_rc, want_text):
        _, err = proc.communicate()
        left = fw.leftover_processes(proc.pid)
        cases[name] = {"exit_code": proc.returncode, "processes_left": len(left),
                       "reported": want_text in err and "Traceback" not in err
                       and proc.returncode == want_rc,
                       "output_written": (work / "lava.png").exists()}

    def running(proc, markers_text="lava sim"):
        # wait until images are being produced, then a little longer
        end = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < end:
            if len(fw.session_processes(proc.pid)) > 3:
                time.sleep(3.0)
                return
            time.sleep(0.1)

    proc = fw.start(fw.worker_command(work / "m", gen + ["-n", "5"], lava_fail=True))
    finish("process_failure", proc, 2, "ValueError: injected readout fault")
    proc = fw.start(CLI + gen + ["-n", "100000", "--timeout", "5"])
    finish("timeout", proc, 2, "exceeded --timeout 5 s")
    for sig in (signal.SIGINT, signal.SIGTERM):
        proc = fw.start(CLI + gen + ["-n", "100000"])
        running(proc)
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)          # Ctrl-C: the whole process group
        else:
            os.kill(proc.pid, sig)            # a service manager: the main process
        finish(signal.Signals(sig).name, proc, 128 + sig, "the Lava run was stopped")
    proc = fw.start(CLI + gen + ["-n", "100000"])
    running(proc)
    os.kill(proc.pid, signal.SIGKILL)         # the OOM killer: no handler runs
    proc.wait()
    left = fw.leftover_processes(proc.pid)    # orphans keep the session: they count here
    fw.kill_session(proc.pid)
    proc.communicate()                        # an orphan holds the pipes open until then
    cases["SIGKILL"] = {"exit_code": proc.returncode, "processes_left": len(left),
                        "reported": proc.returncode == -signal.SIGKILL,
                        "output_written": (work / "lava.png").exists()}
    return {"lava_cases": cases,
            "lava_processes_left": sum(c["processes_left"] for c in cases.values()),
            "lava_all_reported": all(c["reported"] and not c["output_written"]
                                     for c in cases.values())}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batches", type=int, default=3, help="--max-batches of the runs")
    ap.add_argument("--write-seconds", type=float, default=0.6,
                    help="how long each checkpoint write is stretched to")
    ap.add_argument("--parts", default="training,files,lava")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    parts = set(a.parts.split(","))
    rng = random.Random(a.seed)
    t0 = time.monotonic()
    fig = {"bench": "faults"}
    with tempfile.TemporaryDirectory(prefix="neurovae-faults-") as tmp:
        work = Path(tmp)
        if "training" in parts:
            t = time.monotonic()
            (work / "train").mkdir()
            fig.update(training(work / "train", a.kills, a.epochs, a.batches, a.write_seconds,
                                rng))
            fig["training_s"] = round(time.monotonic() - t, 1)
        if "files" in parts:
            (work / "files").mkdir()
            fig.update(files(work / "files"))
        if "lava" in parts:
            t = time.monotonic()
            (work / "lava").mkdir()
            fig.update(lava(work / "lava"))
            fig["lava_s"] = round(time.monotonic() - t, 1)
    fig["seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(fig), flush=True)


if __name__ == "__main__":
    main()
