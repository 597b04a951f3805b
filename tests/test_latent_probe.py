"""bench/latent_probe.py on tiny trained models: its model_mse is the spiking decoder's own
reconstruction MSE, and its float decoder learns from the latent spikes."""
import json
import math

import pytest
import torch

from neurovae import checkpoint, data
from neurovae.models.recon_loss import to_target
from neurovae.train import train

from conftest import load_bench


@pytest.mark.parametrize("model", ["esvae", "fsvae"])
def test_latent_probe_reads_the_deployed_latent_and_learns(model, tiny_cfg, tmp_path, capsys):
    run = tmp_path / model
    train(tiny_cfg(model), run, progress=False, max_batches=3)
    probe = load_bench("latent_probe")
    argv = [str(run), "--n-train", "64", "--n-test", "32", "--batch", "16", "--seed", "3"]
    line = probe.main(argv + ["--epochs", "4", "--lr", "3e-3"])
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and json.loads(printed[0])["probe_mse"] == line["probe_mse"]
    assert line["model"] == model and line["n_train"] == 64 and line["n_test"] == 32

    # model_mse is the model's own reconstruction of the same images with the same draws
    m, _ = checkpoint.load_model(run)
    test_set = data.load_images("mnist", "test", None, m.cfg.image_size, m.cfg.channels)
    x = test_set.tensor(torch.arange(32))
    recon = m.reconstruct(x, 3, torch.arange(32))
    assert line["model_mse"] == pytest.approx(((recon - to_target(x)) ** 2).mean().item(),
                                              abs=1e-6)
    assert 0 < line["latent_rate"] < 1
    assert math.isfinite(line["probe_mse"]) and line["probe_share"] == pytest.approx(
        line["probe_mse"] / line["model_mse"])

    # the float decoder learns: 4 epochs leave it well below its untrained start
    untrained = probe.main(argv + ["--epochs", "0"])
    capsys.readouterr()
    assert line["probe_mse"] < 0.8 * untrained["probe_mse"]

    # --source window: an ESVAE's code before the draw; an FSVAE has no such window
    if model == "esvae":
        window = probe.main(argv + ["--epochs", "1", "--source", "window"])
        capsys.readouterr()
        assert window["source"] == "window" and window["model_mse"] == line["model_mse"]
        _, feats, _ = probe.latent_spikes(m, test_set, 0, 8, 3, "window")
        with torch.no_grad():
            assert torch.equal(feats, m.posterior_window(x[:8]).float())
    else:
        with pytest.raises(SystemExit, match="rate window"):
            probe.main(argv + ["--source", "window"])
