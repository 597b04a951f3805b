"""One clock, gradients and sampling of the spiking VAEs."""
import numpy as np
import torch

from neurovae.models import build_model
from neurovae.hw import sampling


def _batch(n=4):
    from neurovae import data
    return data.load_images("mnist", "test").tensor(torch.arange(n))


def test_gradients_reach_every_trainable_weight(tiny_cfg):
    for kind in ("fsvae", "esvae", "ann-vae", "ann-ae"):
        torch.manual_seed(0)
        model = build_model(tiny_cfg(kind))
        out = model(_batch(8), seed=3, images=torch.arange(8), ss_p=0.2,
                    gen=torch.Generator().manual_seed(0))
        out["loss"].backward()
        missing = [n for n, p in model.named_parameters()
                   if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
        assert not missing, f"{kind}: no gradient for {missing}"


def test_fsvae_latent_has_the_lava_loop_latency(tiny_cfg):
    """z cannot depend on the image before encoder depth + 3 loop layers have passed."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg("fsvae"))
    x = _batch(4)
    _, z_a = model.encode(x, seed=1, images=torch.arange(4))
    _, z_b = model.encode(torch.zeros_like(x), seed=1, images=torch.arange(4))
    start = model.latent_start
    assert torch.equal(z_a[..., :start], z_b[..., :start])
    assert not torch.equal(z_a, z_b)
    assert model.n_steps == start + model.cfg.T + model.decoder.depth


def test_pick_takes_each_latents_prng_chosen_candidate():
    """z_i is exactly candidate (i, j) with j the PRNG's index; every j in [0, k) is taken
    about equally often, and numpy and torch pick the same."""
    k, C, n = 4, 50, 40
    images = torch.arange(n)
    # one-hot candidates: candidate j of each latent fires alone in plane j
    for step in (0, 3):
        idx = sampling.pick_index(images, 1, images, step, C, k)
        for j in range(k):
            c = torch.zeros(n, C, k)
            c[..., j] = 1
            z = sampling.pick(c.view(n, C * k), k, 1, images, step)
            assert torch.equal(z, (idx == j).float())
            z_np = sampling.pick(c.view(n, C * k).numpy(), k, 1, images.numpy(), step)
            assert np.array_equal(z_np, z.numpy())
        counts = torch.bincount(idx.flatten(), minlength=k).double() / idx.numel()
        assert (counts - 1 / k).abs().max() < 0.05, counts
    # the draw depends on the seed, the image and the step
    base = sampling.pick_index(images, 1, images, 0, C, k)
    assert not torch.equal(base, sampling.pick_index(images, 2, images, 0, C, k))
    assert not torch.equal(base, sampling.pick_index(images, 1, images, 1, C, k))
    assert not torch.equal(base, sampling.pick_index(images, 1, images + 1, 0, C, k))


def test_esvae_spikes_follow_the_count_rate(tiny_cfg):
    model = build_model(tiny_cfg("esvae", "T=16"))
    rate = torch.tensor([[0.0, 0.25, 0.5, 1.0]]).repeat(200, 2)
    z = model.spike_train(rate, seed=5, images=torch.arange(200))
    window = z[..., model.sample_start:model.sample_start + 16]
    assert z.sum() == window.sum()   # nothing outside the sampling window
    got = window.mean((0, 2))[:4]
    assert torch.allclose(got, torch.tensor([0.0, 0.25, 0.5, 1.0]), atol=0.03)


def test_same_seed_same_samples(tiny_cfg):
    torch.manual_seed(0)
    model = build_model(tiny_cfg("fsvae")).eval()
    assert torch.equal(model.sample(4, seed=3), model.sample(4, seed=3))
    r1, r2 = model.reconstruct(_batch(4), seed=1), model.reconstruct(_batch(4), seed=1)
    assert torch.equal(r1, r2) and r1.shape == (4, 1, 28, 28)


def test_last_latent_step_reaches_the_readout(tiny_cfg):
    """A spike at the final latent step must still change the image: the clock is long enough."""
    for kind in ("fsvae", "esvae"):
        torch.manual_seed(0)
        model = build_model(tiny_cfg(kind, "weight_scale=12")).eval()
        last = (model.latent_start if kind == "fsvae" else model.sample_start) + model.cfg.T - 1
        z = torch.zeros(2, model.cfg.latent, model.n_steps)
        base = model.decoder(z)
        z[..., last] = 1
        assert not torch.equal(model.decoder(z), base)
        z2 = torch.zeros_like(z)
        z2[..., model.n_steps - model.decoder.depth] = 1   # one step later: too late to show
        assert torch.equal(model.decoder(z2), base)


def test_esvae_decoder_skips_the_steps_before_sampling_exactly(tiny_cfg):
    """Skipping the all-zero steps before ESVAE's sampling window changes no output bit."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg("esvae"))
    x = _batch(6)
    z = model.spike_train(model.posterior_rate(x), seed=2, images=torch.arange(6))
    assert not z[..., :model.sample_start].any() and z.any()
    full = model.decoder(z)
    skipped = model.decoder(z, silent=model.sample_start)
    assert torch.equal(full, skipped)
    g_full, = torch.autograd.grad(full.square().sum(), model.decoder.dense.synapse.weight)
    g_skip, = torch.autograd.grad(skipped.square().sum(), model.decoder.dense.synapse.weight)
    assert torch.allclose(g_full, g_skip, rtol=1e-5, atol=1e-7) and g_full.abs().sum() > 0
