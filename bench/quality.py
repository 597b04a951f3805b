"""Sample and reconstruction quality of a spiking VAE after a fixed training budget: the
yardstick every model change is measured with (one JSON line, deterministic per seed).

Trains `--model` at `--config` (plus `--set` overrides) for `--steps` batches from
`--seed`, exports the `.net`, and measures the deployed model on the `emulator` backend:
test MSE, classifier accuracy of the reconstructions, distinct samples, prior and
posterior latent rates, FID and AE-FD, firing rate and SynOps, wall times. The metric
classifier and the ANN autoencoder are trained once and cached in `--cache`.
Usage: python bench/quality.py --model fsvae|esvae [--config mnist-small] [--set k=v ...]
                               [--steps 150] [--seed 0] [--n-fid 256] [--out DIR]
                               [--cache bench/.cache]
       python bench/quality.py --rescore RUN [--n-fid 256] [--cache DIR]
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:       # run as a script from any folder
    sys.path.insert(0, str(REPO))

BACKEND = "emulator"
BATCH = 128                          # images per emulator / float call
AUX_PRESET = "mnist-small"           # recipe of the metric classifier and the ANN autoencoder


def step_plan(cfg, steps: int) -> tuple[int, int]:
    """(epochs, batches per epoch) spreading `steps` over as few epochs of the config's
    data as hold them; the steps run are epochs x batches, at least `steps`."""
    from neurovae import data
    n_train = len(data.load_images(cfg.dataset, "train", cfg.data_dir, cfg.image_size,
                                   cfg.channels))
    n_train = min(n_train, cfg.train_subset or n_train)
    per_epoch = max(1, n_train // cfg.batch_size)
    epochs = -(-steps // per_epoch)
    return epochs, -(-steps // epochs)


def _train(cfg, out: Path, steps: int | None, progress: bool) -> dict:
    """Train cfg into out for `steps` batches (None: the config's own epochs)."""
    from neurovae.train import train
    if steps is None:
        return train(cfg, out, progress=progress)
    cfg.epochs, per_epoch = step_plan(cfg, steps)
    return train(cfg, out, progress=progress, max_batches=per_epoch)


def aux_model(kind: str, cfg, cache: Path, overrides=(), progress: bool = False):
    """The metric classifier or ANN autoencoder for cfg's images: trained once with the
    `neurovae train --model KIND --config mnist-small` recipe, then read from the cache."""
    from neurovae import checkpoint
    from neurovae.config import make_config
    shape = [f"dataset={cfg.dataset}", f"image_size={cfg.image_size}",
             f"channels={cfg.channels}"]
    acfg = make_config(AUX_PRESET, kind, shape + ["seed=0"] + list(overrides))
    # the folder is named after the whole recipe: a changed recipe never reads a stale model
    recipe = {k: v for k, v in dataclasses.asdict(acfg).items() if k != "data_dir"}
    digest = hashlib.sha1(json.dumps(recipe, sort_keys=True, default=str).encode())
    tag = f"{kind}-{cfg.dataset}-{cfg.image_size}px-c{cfg.channels}-{digest.hexdigest()[:8]}"
    folder = cache / tag
    if not (folder / checkpoint.FILENAME).exists():
        acfg.data_dir = cfg.data_dir
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{tag}-", dir=cache))
        try:
            _train(acfg, tmp / "run", None, progress)
            try:
                os.replace(tmp / "run", folder)
            except OSError:               # another run cached it first
                if not (folder / checkpoint.FILENAME).exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    model, _ = checkpoint.load_model(folder)
    return model


def _batched(fn, total: int):
    """fn(lo, hi) over slices of BATCH images, concatenated."""
    import torch
    return torch.cat([fn(lo, min(total, lo + BATCH)) for lo in range(0, total, BATCH)])


def _to_bytes(images):
    """Images in [-1, 1] -> uint8 pixels, as a PNG would store them."""
    import torch
    return ((images.double().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _latent_rate(z, start: int, T: int) -> float:
    """Mean spike rate of z (N, latent, S) over the T steps of its latent window."""
    return float(z[:, :, start:start + T].astype("float64").mean())


def prepare(cfg, n_fid: int, cache: Path, aux_overrides=(), progress: bool = False) -> dict:
    """The cached pieces the metrics need: classifier, autoencoder, FID reference stats."""
    from neurovae import data
    from neurovae.metrics import dataset_stats
    n_test = len(data.load_images(cfg.dataset, "test", cfg.data_dir, cfg.image_size,
                                  cfg.channels))
    if n_fid > n_test:
        raise SystemExit(f"--n-fid {n_fid} exceeds the {n_test} test images")
    aux = {"classifier": aux_model("classifier", cfg, cache, aux_overrides, progress),
           "ae": None, "fid_stats": None}
    if n_fid:
        aux["ae"] = aux_model("ann-ae", cfg, cache, aux_overrides, progress)
        aux["fid_stats"] = dataset_stats(cfg.dataset, "test", n_fid, cfg.data_dir,
                                         cfg.image_size, cfg.channels, cache_dir=cache / "fid")
    return aux


def _labels_of(clf, images):
    """The classifier's label of every image in [-1, 1]."""
    return _batched(lambda lo, hi: clf.logits(images[lo:hi].float()).argmax(1), len(images))


def measure(model, net, cfg, aux: dict, *, seed: int, n_test: int, n_samples: int,
            n_fid: int, n_profile: int) -> dict:
    """Every figure of the bench for a trained float model and its deployed `.net`."""
    import torch
    from neurovae import data
    from neurovae.hw.readout import to_signed
    from neurovae.loihi_runtime import run
    from neurovae.metrics import aefd_score, confident_fraction, fid_score, sample_scores
    from neurovae.profile import profile
    test = data.load_images(cfg.dataset, "test", cfg.data_dir, cfg.image_size, cfg.channels)
    n_test = min(n_test, len(test))
    x = test.tensor(torch.arange(n_test))
    real = to_signed(x, torch.float64)
    res: dict = {"n_test": n_test}

    def deployed_recon(xs):
        """The deployed model's reconstructions of test images xs (the first len(xs))."""
        return _batched(lambda lo, hi: run(net, BACKEND, x_bytes=xs[lo:hi], seed=seed,
                                           first_image=lo)[0].double(), len(xs))

    recon = deployed_recon(x)
    recon_f = _batched(lambda lo, hi: model.reconstruct(
        x[lo:hi], seed=seed, images=torch.arange(lo, hi)).double(), n_test)
    res["mse"] = float(torch.mean((recon - real) ** 2))
    res["mse_float"] = float(torch.mean((recon_f - real) ** 2))
    res["float_max_abs_diff"] = float((recon - recon_f).abs().max())

    clf = aux["classifier"]
    labels = test.labels(torch.arange(n_test))
    res["recon_accuracy"] = float((_labels_of(clf, recon) == labels).double().mean())
    res["classifier_test_accuracy"] = float((_labels_of(clf, real) == labels).double().mean())
    # confident reconstructions, and the yardstick's ceiling: confident real test digits
    res["recon_confident_fraction"] = confident_fraction(recon.double().clamp(-1, 1).float(), clf)
    res["real_confident_fraction"] = confident_fraction(real.float(), clf)

    # reconstruction cost: firing rate, SynOps, posterior latent rate
    start = 0 if model.kind == "fsvae" else model.sample_start   # z's T steps (docs/clock.md)
    n_prof = min(n_profile, n_test)
    _, rec = run(net, BACKEND, x_bytes=x[:n_prof], seed=seed, record=True)
    rp = profile(net, rec, n_prof, x_bytes=x[:n_prof], ann=False)["totals"]
    res.update(n_profile=n_prof, posterior_rate=_latent_rate(rec["sampler/z"], start, cfg.T),
               recon_firing_rate=rp["firing_rate"], recon_spikes_per_image=rp["spikes_per_image"],
               recon_synops_per_image=rp["synops_per_image"])
    del rec

    # generation: distinct samples, prior latent rate, cost
    fake, rec = run(net, BACKEND, n=n_samples, seed=seed, record=True)
    gp = profile(net, rec, n_samples, ann=False)["totals"]
    flat = _to_bytes(fake).reshape(n_samples, -1)
    res.update(n_samples=n_samples,
               distinct_fraction=len(torch.unique(flat, dim=0)) / n_samples,
               prior_rate=_latent_rate(rec["sampler/z"], start, cfg.T),
               gen_firing_rate=gp["firing_rate"], gen_spikes_per_image=gp["spikes_per_image"],
               gen_synops_per_image=gp["synops_per_image"])
    del rec
    fake_f = fake.double().clamp(-1, 1).float()
    sc = sample_scores(fake_f, clf)
    res["is_classifier"] = sc["is_mean"]
    # the demo's grid is the first 64 samples: how many of them read as a digit
    res["confident_fraction"] = float(sc["confident"].double().mean())
    res["confident_of_64"] = int(sc["confident"][:64].sum())

    res["n_fid"] = n_fid
    res["fid"] = res["aefd"] = res["recon_fid"] = None
    if n_fid:
        gen = fake if n_fid <= n_samples else _batched(
            lambda lo, hi: run(net, BACKEND, n=hi - lo, seed=seed, first_image=lo)[0], n_fid)
        gen = gen[:n_fid].double().clamp(-1, 1).float()
        xf = test.tensor(torch.arange(n_fid))
        rec_fid = recon if n_fid <= n_test else deployed_recon(xf)
        ref = to_signed(xf, torch.float32)
        t0 = time.perf_counter()
        res["fid"] = fid_score(gen, aux["fid_stats"])
        # the reconstructions' FID: what a prior matching the posterior would reach
        res["recon_fid"] = fid_score(rec_fid[:n_fid].clamp(-1, 1).float(), aux["fid_stats"])
        res["aefd"] = aefd_score(gen, ref, aux["ae"])
        res["fid_s"] = round(time.perf_counter() - t0, 2)
    return res


SPIKING = ("fsvae", "esvae")       # the models the bench measures


def _require_spiking(kind: str, what: str) -> None:
    if kind not in SPIKING:
        raise SystemExit(f"{what}: the bench measures the spiking VAEs ({', '.join(SPIKING)})")


# what a line says of how its model was trained: `--rescore` copies these from the old line
TRAINING_FIELDS = ("bench", "model", "config", "overrides", "seed", "steps", "steps_requested",
                   "epochs", "batch_size", "hardware_steps", "backend", "train_loss",
                   "train_mse", "train_s")


def bench(model_kind: str, preset: str = "mnist-small", overrides=(), steps: int = 150,
          seed: int = 0, n_test: int = 1000, n_samples: int = 256, n_fid: int = 256,
          n_profile: int = 256, out=None, cache="bench/.cache", aux_overrides=(),
          progress: bool = False) -> dict:
    """Train, export, reload and measure one model; returns the JSON line's dict."""
    import torch
    from neurovae import checkpoint, deploy, export
    from neurovae.config import make_config
    cfg = make_config(preset, model_kind, list(overrides) + [f"seed={seed}"])
    _require_spiking(cfg.model, f"--model {model_kind}")
    cache = Path(cache)
    keep = out is not None
    run_dir = Path(out) if keep else Path(tempfile.mkdtemp(prefix="quality-"))
    try:
        if keep and (run_dir / checkpoint.FILENAME).exists():
            raise SystemExit(f"{run_dir} already holds a run; pick another --out")
        t0 = time.perf_counter()
        aux = prepare(cfg, n_fid, cache, aux_overrides, progress)
        prepare_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        last = _train(cfg, run_dir, steps, progress)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        model, _ = checkpoint.load_model(run_dir)
        export.write(deploy.from_model(model, seed=seed), run_dir / "model.net")
        net = export.load(run_dir / "model.net")
        with torch.no_grad():
            res = measure(model, net, cfg, aux, seed=seed, n_test=n_test,
                          n_samples=n_samples, n_fid=n_fid, n_profile=n_profile)
        eval_s = time.perf_counter() - t0
    finally:
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    line = {"bench": "quality", "model": cfg.model, "config": preset,
            "overrides": list(overrides), "seed": seed, "steps": cfg.epochs * last["batches"],
            "steps_requested": steps, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
            "hardware_steps": net.n_steps, "backend": BACKEND,
            "train_loss": last.get("loss"), "train_mse": last.get("mse"),
            **res, "train_s": round(train_s, 2), "eval_s": round(eval_s, 2),
            "prepare_s": round(prepare_s, 2),
            "threads": torch.get_num_threads(), "out": str(run_dir) if keep else None}
    assert set(TRAINING_FIELDS) <= set(line), "TRAINING_FIELDS names a field bench never writes"
    if keep:
        (run_dir / "quality.json").write_text(json.dumps(line) + "\n")
    return line


def _train_run_fields(metrics: list, cfg, hardware_steps: int) -> dict:
    """TRAINING_FIELDS of a folder that `neurovae train` wrote (no bench line): what its
    checkpoint's config and per-epoch metrics say of how it was trained (config and
    overrides: the preset and `--set`s that rebuild its config)."""
    last = metrics[-1] if metrics else {}
    from neurovae.config import preset_and_overrides
    preset, overrides = preset_and_overrides(cfg)
    overrides = [o for o in overrides if not o.startswith("seed=")]   # a field of its own
    return {"bench": "quality", "model": cfg.model, "config": preset, "overrides": overrides,
            "seed": cfg.seed, "steps": sum(int(e.get("batches", 0)) for e in metrics),
            "steps_requested": None, "epochs": len(metrics), "batch_size": cfg.batch_size,
            "hardware_steps": hardware_steps, "backend": BACKEND,
            "train_loss": last.get("loss"), "train_mse": last.get("mse"),
            "train_s": round(sum(float(e.get("seconds", 0)) for e in metrics), 2)}


def _bench_line(run_dir: Path) -> dict:
    """The quality-bench line an earlier run kept in run_dir, or one message why not."""
    try:
        old = json.loads((run_dir / "quality.json").read_text())
        if not (isinstance(old, dict) and old.get("bench") == "quality" and "seed" in old):
            raise ValueError("not a quality-bench line")
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{run_dir}: no readable quality.json of an earlier bench run "
                         f"({exc}) and no checkpoint; --rescore takes a folder written by "
                         f"--out or by `neurovae train`") from None
    return old


def rescore(run_dir, n_test: int = 1000, n_samples: int = 256, n_fid: int = 256,
            n_profile: int = 256, cache="bench/.cache", aux_overrides=(),
            progress: bool = False) -> dict:
    """Measure a trained model without training it: a folder kept by an earlier bench run
    (`--out`; scored again with the current metric models, a new yardstick) or a
    `neurovae train` run folder (a long run, scored as the bench scores its own)."""
    import torch
    from neurovae import checkpoint, deploy, export
    run_dir = Path(run_dir)
    kept = (run_dir / "quality.json").exists() or not (run_dir / checkpoint.FILENAME).exists()
    old = _bench_line(run_dir) if kept else None
    model, state = checkpoint.load_model(run_dir)
    if kept:
        net = export.load(run_dir / "model.net")
    else:
        _require_spiking(model.cfg.model, f"{run_dir}: a {model.cfg.model} run")
        net = deploy.from_model(model, seed=model.cfg.seed)
        old = _train_run_fields(state.get("metrics", []), model.cfg, net.n_steps)
    cfg = model.cfg
    t0 = time.perf_counter()
    aux = prepare(cfg, n_fid, Path(cache), aux_overrides, progress)
    prepare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.no_grad():
        res = measure(model, net, cfg, aux, seed=old["seed"], n_test=n_test,
                      n_samples=n_samples, n_fid=n_fid, n_profile=n_profile)
    return {**{k: old.get(k) for k in TRAINING_FIELDS}, **res,
            "eval_s": round(time.perf_counter() - t0, 2), "prepare_s": round(prepare_s, 2),
            "threads": torch.get_num_threads(), "out": str(run_dir),
            "rescored": True}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=SPIKING, help="model to train (required "
                    "unless --rescore)")
    ap.add_argument("--rescore", default=None, metavar="RUN",
                    help="measure a trained model without training: a folder kept by an "
                         "earlier run's --out (e.g. after the metric models changed) or a "
                         "`neurovae train` run folder (a long run)")
    ap.add_argument("--config", default="mnist-small", help="preset name")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override, as `neurovae train --set` (repeatable)")
    ap.add_argument("--steps", type=int, default=150, help="training batches")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-test", type=int, default=1000, help="test images reconstructed")
    ap.add_argument("--n-samples", type=int, default=256, help="generated images")
    ap.add_argument("--n-fid", type=int, default=256, help="images for FID and AE-FD (0: skip both)")
    ap.add_argument("--n-profile", type=int, default=256,
                    help="test images recorded for the reconstruction cost profile")
    ap.add_argument("--out", default=None, help="keep the run folder here")
    ap.add_argument("--cache", default=str(REPO / "bench" / ".cache"),
                    help="folder of the cached classifier, autoencoder and FID statistics")
    ap.add_argument("--aux-set", dest="aux_overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="override of the cached models' recipe "
                                              "(tests; cached under their own name)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--progress", action="store_true", help="progress bars on stderr")
    a = ap.parse_args(argv)
    for name in ("steps", "n_test", "n_samples", "n_profile"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be positive")
    if a.n_fid == 1 or a.n_fid < 0:
        ap.error("--n-fid must be 0 (skip) or at least 2")
    if not a.model and not a.rescore:
        ap.error("--model is required (or --rescore RUN)")
    trained = [f for f, v in (("--model", a.model), ("--set", a.overrides), ("--out", a.out),
                              ("--steps", a.steps != ap.get_default("steps")),
                              ("--seed", a.seed != ap.get_default("seed")),
                              ("--config", a.config != ap.get_default("config"))) if v]
    if a.rescore and trained:
        ap.error(f"--rescore measures the kept run as it was trained; drop {', '.join(trained)}")
    from neurovae.cli.errors import quiet_imports
    quiet_imports()
    if a.threads:
        import torch
        torch.set_num_threads(a.threads)
    if a.rescore:
        line = rescore(a.rescore, a.n_test, a.n_samples, a.n_fid, a.n_profile, a.cache,
                       a.aux_overrides, a.progress)
        print(json.dumps(line), flush=True)
        return line
    line = bench(a.model, a.config, a.overrides, a.steps, a.seed, a.n_test, a.n_samples,
                 a.n_fid, a.n_profile, a.out, a.cache, a.aux_overrides, a.progress)
    print(json.dumps(line), flush=True)
    return line


if __name__ == "__main__":
    main()
