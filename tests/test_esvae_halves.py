"""bench/esvae_halves.py: with its defaults it is the ESVAE itself (the quality bench's MSE),
and each option swaps what it names: a float encoder's rates on the count / T grid, the
draw or the window read in order, a float decoder."""
import pytest
import torch

from conftest import TINY, load_bench
from neurovae import data
from neurovae.config import make_config
from neurovae.models.recon_loss import to_target
from neurovae.models.spiking import SpikingDecoder

def test_default_halves_are_the_esvae_of_the_quality_bench(tmp_path, capsys):
    tiny = [a for o in TINY for a in ("--set", o)]
    common = ["--steps", "3", "--seed", "1", "--n-test", "48"] + tiny
    line = load_bench("esvae_halves").main(common)
    q = load_bench("quality").main(common + [
        "--model", "esvae", "--n-samples", "24", "--n-profile", "8", "--n-fid", "0",
        "--cache", str(tmp_path), "--aux-set", "train_subset=512", "--aux-set", "epochs=1"])
    capsys.readouterr()
    assert (line["encoder"], line["decoder"], line["latent"]) == ("spiking", "spiking", "draw")
    assert line["steps"] == q["steps"] == 3
    assert line["mse"] == pytest.approx(q["mse_float"], abs=1e-6)


def test_each_option_swaps_what_it_names():
    halves = load_bench("esvae_halves")
    cfg = make_config("mnist-small", "esvae", TINY)
    x = data.load_images("mnist", "test", None, 28, 1).tensor(torch.arange(16))
    idx = torch.arange(16)
    torch.manual_seed(0)
    replay = halves.halves_model(cfg, "float", "float", "replay").eval()
    assert not isinstance(replay.decoder, SpikingDecoder)
    with torch.no_grad():
        window = replay.posterior_window(x)
        rate = replay.float_encoder.net(to_target(x))
        z1, z2 = replay.latent(x, 1, idx), replay.latent(x, 2, idx)
    # the float encoder's window: round(rate * T) spikes, in order
    count = torch.round(rate * cfg.T)
    assert torch.equal(window.sum(-1), count)
    assert torch.equal(window, (torch.arange(cfg.T) < count.unsqueeze(-1)).float())
    # replay: z is the window read in order at the sampling steps, whatever the seed
    s0 = replay.sample_start
    assert torch.equal(z1, z2) and torch.equal(z1[..., s0:s0 + cfg.T], window)
    assert z1[..., :s0].abs().sum() == 0

    torch.manual_seed(0)
    drawn = halves.halves_model(cfg, "float", "spiking", "draw").eval()
    assert isinstance(drawn.decoder, SpikingDecoder)
    with torch.no_grad():
        d1, d2 = drawn.latent(x, 1, idx), drawn.latent(x, 2, idx)
    assert not torch.equal(d1, d2)      # the draw depends on the seed
