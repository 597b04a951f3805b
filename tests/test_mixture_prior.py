"""ESVAE's mixture prior: the fit finds the posterior's clusters, the integer rule draws
each image's component by its weight in numpy and torch alike, and a trained model's
mixture travels through the `.net` file to every backend spike for spike."""
import shutil

import h5py
import numpy as np
import pytest
import torch

from neurovae import checkpoint, data, deploy
from neurovae.config import ConfigError, make_config
from neurovae.export import NetFormatError, load, write
from neurovae.export.writer import checksum
from neurovae.hw import sampling
from neurovae.loihi_runtime import run
from neurovae.models import mixture_prior
from neurovae.models.spiking import rbf_mmd
from neurovae.train import train

from conftest import TINY

T = 16


def _clustered_rates(n_per: int, centers, seed: int = 0) -> torch.Tensor:
    """Rates on the count / T grid around given centers (one row of rates per center)."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for c in centers:
        counts = torch.round(torch.tensor(c) * T + torch.randn(n_per, len(c), generator=g))
        rows.append(counts.clamp(0, T) / T)
    return torch.cat(rows)


def test_fit_finds_the_clusters_and_repeats_with_its_seed():
    centers = [[0.1] * 6, [0.9] * 6, [0.1, 0.9] * 3]
    rates = _clustered_rates(200, centers)
    mix = mixture_prior.fit(rates, T, 3, seed=0)
    assert torch.allclose(mix.weights, torch.full((3,), 1 / 3, dtype=torch.float64))
    found = torch.sigmoid(mix.means)
    for c in centers:    # every cluster's center is one component's mean rate
        assert (found - torch.tensor(c, dtype=torch.float64)).abs().max(1).values.min() < 0.05
    again = mixture_prior.fit(rates, T, 3, seed=0)
    assert torch.equal(mix.chol, again.chol) and torch.equal(mix.means, again.means)
    # Cholesky factors: lower triangular with a positive diagonal
    assert torch.equal(mix.chol, torch.tril(mix.chol))
    assert (torch.diagonal(mix.chol, dim1=1, dim2=2) > 0).all()


def test_empty_clusters_get_weight_zero_and_are_never_drawn():
    """Duplicated rates leave k-means empty clusters: weight 0, never drawn."""
    rates = torch.tensor([[0.25, 0.75]] * 10 + [[0.75, 0.25]] * 30)
    mix = mixture_prior.fit(rates, T, 4, seed=1)
    assert float(mix.weights.sum()) == pytest.approx(1.0)
    assert sorted(mix.weights.tolist())[-2:] == pytest.approx([0.25, 0.75])
    assert (mix.weights == 0).sum() == 2
    bounds = mixture_prior.bounds(mix.weights)
    prior = {"weight": np.zeros((4, 2, 2), np.int64), "bias": np.zeros((4, 2), np.int64),
             "thresholds": sampling.sigmoid_thresholds(T), "bounds": bounds.numpy()}
    k = sampling.prior_component(np.arange(4000), 0, np.arange(4000), prior["bounds"])
    drawn = np.bincount(k, minlength=4) / 4000
    assert np.array_equal(drawn == 0, (mix.weights == 0).numpy())
    assert np.allclose(drawn, mix.weights.numpy(), atol=0.03)


def _random_mixture(k=3, c=5, seed=0):
    rng = np.random.default_rng(seed)
    return {"weight": rng.integers(-2 ** 9, 2 ** 9, (k, c, c)),
            "bias": rng.integers(-2 ** 25, 2 ** 25, (k, c)),
            "thresholds": sampling.sigmoid_thresholds(T),
            "bounds": np.array([2 ** 30, 3 * 2 ** 30])}     # weights 1/4, 1/2, 1/4


def test_mixture_counts_are_the_one_gaussian_rule_of_each_images_component():
    prior = _random_mixture()
    images = np.arange(600)
    counts = sampling.prior_counts(prior, 9, images)
    t_counts = sampling.prior_counts(prior, 9, torch.arange(600))
    assert np.array_equal(counts, t_counts.numpy())          # numpy and torch agree
    comp = sampling.prior_component(images, 9, images, prior["bounds"])
    assert np.allclose(np.bincount(comp, minlength=3) / 600, [0.25, 0.5, 0.25], atol=0.06)
    for j in range(3):
        one = {"weight": prior["weight"][j], "bias": prior["bias"][j],
               "thresholds": prior["thresholds"]}
        mine = comp == j
        assert np.array_equal(counts[mine], sampling.prior_counts(one, 9, images)[mine])
    assert not np.array_equal(counts, sampling.prior_counts(prior, 10, images))


def test_prior_components_are_esvae_only_and_the_small_esvae_preset_fits_64():
    assert make_config("mnist-small", "esvae").prior_components == 64
    assert make_config("mnist", "esvae").prior_components == 1          # the paper's prior
    with pytest.raises(ConfigError, match="prior_components"):
        make_config("mnist-small", "fsvae", ["prior_components=4"])
    with pytest.raises(ConfigError, match="prior_components"):
        make_config("mnist-small", "esvae", ["prior_components=0"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny ESVAE trained one epoch on real MNIST with a mixture prior of 4."""
    root = tmp_path_factory.mktemp("mixture")
    cfg = make_config("mnist-small", "esvae", TINY + ["prior_components=4", "train_subset=128"])
    train(cfg, root / "run", progress=False)
    model, _ = checkpoint.load_model(root / "run" / "checkpoint.pt")
    path = root / "mix.net"
    write(deploy.from_model(model, seed=5), path)
    return model, path


def test_training_fits_the_mixture_to_the_posterior(trained):
    """The checkpoint holds the fitted mixture, and its prior rates are closer (MMD) to the
    posterior rates of the training images than the paper's prior trained beside it."""
    model, _ = trained
    assert model.has_mixture and float(model.mixture_weights.sum()) == pytest.approx(1.0)
    x = data.load_images("mnist", "train").tensor(torch.arange(128))
    images = torch.arange(128)
    with torch.no_grad():
        posterior = model.posterior_rate(x)
        mixture = sampling.prior_counts(model.integer_prior(), 3, images).float() / model.cfg.T
        linear = torch.round(model.prior_rate(3, images) * model.cfg.T) / model.cfg.T
    assert rbf_mmd(posterior, mixture) < 0.5 * rbf_mmd(posterior, linear)


def test_mixture_prior_reaches_every_backend_spike_for_spike(trained):
    model, path = trained
    net = load(path)
    assert net.prior_linear["weight"].shape == (4, 8, 8)
    assert np.array_equal(net.prior_linear["bounds"], model.integer_prior()["bounds"])
    z = model.latent(None, 7, torch.arange(3)).long().numpy()
    assert z.sum() > 0
    for backend in ("reference", "emulator", "lava-sim"):
        _, rec = run(net, backend, n=3, seed=7, record=True)
        assert np.array_equal(np.asarray(rec["sampler/z"], np.int64), z), backend


@pytest.mark.parametrize("edit, words", [
    (lambda f: _swap(f, "prior/bounds", np.array([3 * 2 ** 30, 2 ** 30, 0])), ["bounds"]),
    (lambda f: _swap(f, "prior/bounds", np.array([0, 2 ** 33, 2 ** 34])), ["prior/bounds"]),
    (lambda f: _swap(f, "prior/weight", np.zeros((3, 8, 8), np.int64)), ["prior/weight"]),
    (lambda f: f.__delitem__("prior/bounds"), ["prior/weight"]),
], ids=["decreasing", "beyond-32-bits", "components-mismatch", "bounds-removed"])
def test_a_damaged_mixture_is_a_net_format_error_naming_it(trained, tmp_path, edit, words):
    _, path = trained
    bad = tmp_path / "bad.net"
    shutil.copyfile(path, bad)
    with h5py.File(bad, "r+") as f:
        edit(f)
        f.attrs["checksum"] = np.bytes_(checksum(f).encode())
    with pytest.raises(NetFormatError) as info:
        load(bad)
    assert all(w in str(info.value) for w in words), str(info.value)


def _swap(f, name, value):
    del f[name]
    f.create_dataset(name, data=value)


def test_fit_prior_command_gives_a_trained_run_the_mixture_training_would_have(tmp_path):
    """A run trained with the paper's prior, refitted by `neurovae fit-prior`, holds the
    mixture a run trained with prior_components=4 fitted at its last epoch; its weights are
    untouched; an FSVAE run is refused with exit code 2."""
    from click.testing import CliRunner

    from neurovae.cli import main
    base = TINY + ["train_subset=128"]
    train(make_config("mnist-small", "esvae", base + ["prior_components=1"]),
          tmp_path / "plain", progress=False)
    train(make_config("mnist-small", "esvae", base + ["prior_components=4"]),
          tmp_path / "mixed", progress=False)
    before, _ = checkpoint.load_model(tmp_path / "plain")
    grid = (tmp_path / "plain" / "samples.png").read_bytes()
    res = CliRunner().invoke(main, ["fit-prior", str(tmp_path / "plain"), "--components", "4"])
    assert res.exit_code == 0, res.output
    assert "fitted 4 Gaussians" in res.output
    refit, state = checkpoint.load_model(tmp_path / "plain")
    trained, _ = checkpoint.load_model(tmp_path / "mixed")
    assert state["config"].prior_components == 4
    assert '"prior_components": 4' in (tmp_path / "plain" / "config.json").read_text()
    assert (tmp_path / "plain" / "samples.png").read_bytes() != grid
    for name, value in trained.state_dict().items():
        assert torch.equal(refit.state_dict()[name], value), name
    for name, value in before.state_dict().items():
        assert torch.equal(refit.state_dict()[name], value), name
    train(make_config("mnist-small", "fsvae", TINY), tmp_path / "fsvae", progress=False,
          max_batches=1)
    res = CliRunner().invoke(main, ["fit-prior", str(tmp_path / "fsvae")])
    assert res.exit_code == 2 and "ESVAE" in res.output and "Traceback" not in res.output
