"""One clock, gradients and sampling of the spiking VAEs."""
import torch

from neurovae.models import build_model
from neurovae.models.spiking import pick_candidates


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


def test_pick_is_one_of_the_candidates_and_depends_on_seed():
    c = (torch.rand(3, 5 * 4) < 0.5).float()
    z1 = pick_candidates(c, 4, seed=1, images=torch.arange(3), step=0)
    z2 = pick_candidates(c, 4, seed=2, images=torch.arange(3), step=0)
    grouped = c.view(3, 5, 4)
    assert ((z1 == 0) | (grouped.max(-1).values == 1)).all()
    assert ((z1 == 1) | (grouped.min(-1).values == 0)).all()
    all_on = torch.ones(3, 20)
    assert torch.equal(pick_candidates(all_on, 4, 7, torch.arange(3), 2), torch.ones(3, 5))
    assert not torch.equal(z1, z2) or c.view(3, 5, 4).std(-1).sum() == 0


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
