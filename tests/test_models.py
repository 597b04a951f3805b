"""The phase clock, gradients and sampling of the spiking VAEs; the float models against
the reference simulator of the deployed graph."""
import numpy as np
import pytest
import torch

from conftest import TINY
from neurovae import deploy
from neurovae.config import ConfigError, make_config
from neurovae.hw import sampling
from neurovae.hw.clock import LOOP_LATENCY
from neurovae.models import build_model
from neurovae.sim.reference import ReferenceSimulator


def _batch(n=4):
    from neurovae import data
    return data.load_images("mnist", "test").tensor(torch.arange(n))


def test_gradients_reach_every_trainable_weight(tiny_cfg):
    for kind in ("fsvae", "esvae", "ann-vae", "ann-ae"):
        torch.manual_seed(0)
        # T = 6: two steps of fed-back z (TINY's T = 5 gives one, too few spikes for a
        # gradient through this small random loop)
        model = build_model(tiny_cfg(kind, *(["T=6"] if kind == "fsvae" else [])))
        out = model(_batch(8), seed=3, images=torch.arange(8), ss_p=0.2,
                    gen=torch.Generator().manual_seed(0))
        out["loss"].backward()
        missing = [n for n, p in model.named_parameters()
                   if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
        assert not missing, f"{kind}: no gradient for {missing}"


def test_bce_reconstruction_term_keeps_its_gradient_where_tanh_saturates():
    from neurovae.models.recon_loss import recon_terms
    x = torch.tensor([[0, 255, 128]], dtype=torch.uint8)
    u = torch.tensor([[4.0, -4.0, 0.0]], requires_grad=True)     # two pixels saturated wrong
    grads = {}
    for kind in ("mse", "bce"):
        u.grad = None
        term, mse = recon_terms(torch.tanh(u), x, kind)
        term.backward()
        grads[kind] = u.grad.clone()
        assert float(mse) == pytest.approx(float(torch.mean((torch.tanh(u) - x / 127.5 + 1) ** 2)))
    # MSE's gradient in u vanishes with tanh' (about 1e-3 here); BCE's is (recon - target) / n
    assert grads["mse"][0, :2].abs().max() < 0.01
    assert torch.allclose(grads["bce"], (torch.tanh(u) - (x / 127.5 - 1)).detach() / 3, atol=1e-4)


def test_recon_loss_bce_trains_both_spiking_models_and_reports_mse(tiny_cfg):
    x = _batch(4)
    for kind in ("fsvae", "esvae"):
        torch.manual_seed(0)
        mse_model = build_model(tiny_cfg(kind))
        torch.manual_seed(0)
        bce_model = build_model(tiny_cfg(kind, "recon_loss=bce"))
        a = mse_model(x, seed=1, images=torch.arange(4))
        b = bce_model(x, seed=1, images=torch.arange(4))
        # the same weights give the same forward: only the loss's term differs
        assert torch.equal(a["recon"], b["recon"]) and float(a["mse"]) == float(b["mse"])
        assert float(b["loss"]) != float(a["loss"])
        b["loss"].backward()
    with pytest.raises(ConfigError, match="recon_loss"):
        tiny_cfg("fsvae", "recon_loss=l1")


def test_the_phase_clock_lengths(tiny_cfg):
    for T in (5, 7):
        assert build_model(tiny_cfg("fsvae", f"T={T}")).n_steps == T + LOOP_LATENCY == T + 4
        esvae = build_model(tiny_cfg("esvae", f"T={T}"))
        assert esvae.n_steps == 2 * T and esvae.sample_start == T and esvae.window_start == 0


def test_clock_limits_are_config_errors(tiny_cfg):
    """FSVAE's feedback must reach z (T > 4); ESVAE's window must fit Loihi 2's 6-bit
    synaptic delays (2T - 1 <= 63)."""
    with pytest.raises(ConfigError, match="FSVAE needs T > 4"):
        tiny_cfg("fsvae", "T=4")
    assert build_model(tiny_cfg("esvae", "T=4")).n_steps == 8
    assert build_model(tiny_cfg("esvae", "T=32")).n_steps == 64
    with pytest.raises(ConfigError, match="ESVAE needs T <= 32"):
        tiny_cfg("esvae", "T=33")


def test_fashion_mnist_small_is_the_small_network_on_fashion_mnist():
    """The small preset on Fashion-MNIST keeps every setting of the MNIST one, the small
    FSVAE's tuned ones included (no paper micro-batch), and AE-FD's hint names it."""
    from neurovae.metrics.aefd import train_hint
    for kind in ("fsvae", "esvae", "ann-ae"):
        small, fashion = make_config("mnist-small", kind), make_config("fashion-mnist-small", kind)
        assert fashion.dataset == "fashion-mnist"
        assert {**vars(small), "dataset": "fashion-mnist"} == vars(fashion)
    assert make_config("fashion-mnist-small", "fsvae").micro_batch == 0
    assert make_config("fashion-mnist", "fsvae").micro_batch > 0
    assert "--config fashion-mnist-small" in train_hint("fashion-mnist", 28)
    assert "--config fashion-mnist " in train_hint("fashion-mnist", 32) + " "
    assert train_hint() == "neurovae train --model ann-ae --config mnist-small --out runs/ann-ae"


def test_preset_and_overrides_rebuild_a_config():
    """A trained config is described as the nearest preset and the overrides that rebuild it."""
    from neurovae.config import preset_and_overrides
    for preset, kind, overrides in (
            ("mnist-small", "fsvae", ["train_subset=60000", "lr_schedule=cosine"]),
            ("fashion-mnist-small", "esvae", []),
            ("mnist", "fsvae", ["latent=64", "weight_norm=true", "dec_channels=64,32,16,8,8"]),
            ("mnist-small", "ann-vae", ["tau_grad=0.01", "data_dir=/data"])):
        cfg = make_config(preset, kind, overrides)
        name, found = preset_and_overrides(cfg)
        assert name == preset and make_config(name, kind, found) == cfg
        assert len(found) == len(overrides)


def test_fsvae_loop_latency_is_four_and_z_is_silent_after_T(tiny_cfg):
    """L1 hears z fed back LOOP_LATENCY = 4 steps later, and the encoder within the step;
    z spikes only at the T latent steps."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg("fsvae", "T=8", "weight_scale=10")).eval()
    T, C, n = model.cfg.T, model.cfg.latent, 6
    images = torch.arange(n)
    t0 = 2
    with torch.no_grad():
        # feedback: a teacher differing only at step t0 changes nothing before t0 + 4
        teacher = torch.zeros(n, C, T)
        other = teacher.clone()
        other[..., t0] = 1
        c_a, z_a = model.prior(T, 3, images, teacher=teacher)
        c_b, z_b = model.prior(T, 3, images, teacher=other)
        s = t0 + LOOP_LATENCY
        assert torch.equal(c_a[..., :s], c_b[..., :s]) and torch.equal(z_a[..., :s], z_b[..., :s])
        assert not torch.equal(c_a[..., s], c_b[..., s])
        # the encoder: E at step t0 reaches the candidates at step t0 (delay-free)
        e = (torch.rand(n, C, T, generator=torch.Generator().manual_seed(1)) < 0.3).float()
        e2 = e.clone()
        e2[..., t0] = 1 - e2[..., t0]
        c_e, _ = model.posterior(T, 3, images, ext=e)
        c_e2, _ = model.posterior(T, 3, images, ext=e2)
        assert torch.equal(c_e[..., :t0], c_e2[..., :t0])
        assert not torch.equal(c_e[..., t0], c_e2[..., t0])
        # z over the window: silent in its last LOOP_LATENCY steps, reconstructing and generating
        for x in (_batch(n), None):
            z = model.latent(x, 1, images)
            assert z.shape == (n, C, model.n_steps) and z[..., :T].any()
            assert not z[..., T:].any()


def test_esvae_posterior_picks_the_window_step_the_prng_chooses(tiny_cfg):
    """z[s] = E[m(s)] with m = PRNG mod T (`sampling.window_pick`) at s in [T, 2T), zero
    before T; P(spike) = count / T; the gradient reaches the window through its rate."""
    model = build_model(tiny_cfg("esvae", "T=16"))
    T, n, C = 16, 300, model.cfg.latent
    images = torch.arange(n)
    counts = torch.arange(C) * T // (C - 1)                     # 0 .. T
    window = torch.zeros(n, C, T)
    for i, c in enumerate(counts.tolist()):                     # c spikes at random steps
        perm = torch.randperm(T, generator=torch.Generator().manual_seed(i))[:c]
        window[:, i, perm] = 1
    window.requires_grad_(True)
    z = model.window_spikes(window, 5, images)
    assert z.shape == (n, C, 2 * T) and not z[..., :T].any()
    for s in (T, T + 5, 2 * T - 1):
        want = sampling.window_pick(window.detach().long(), T, 5, images, s)
        assert torch.equal(z[..., s].detach().long(), want)
    got = z[..., T:].detach().mean((0, 2))
    assert torch.allclose(got, counts.float() / T, atol=0.03), got
    z.sum().backward()
    assert torch.allclose(window.grad, torch.full_like(window, 1.0))   # d(T * rate)/dE = 1


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


def test_every_latent_step_reaches_the_readout_delay_free(tiny_cfg):
    """A latent spike at the window's last step S-1 still changes the image: the decoder
    and the readout take step s's spikes within step s, and the readout is read at S-1."""
    for kind in ("fsvae", "esvae"):
        torch.manual_seed(0)
        model = build_model(tiny_cfg(kind, "weight_scale=12")).eval()
        z = torch.zeros(2, model.cfg.latent, model.n_steps)
        base = model.decoder(z)
        for step in (model.cfg.T - 1 if kind == "fsvae" else model.sample_start,
                     model.n_steps - 1):
            z1 = z.clone()
            z1[..., step] = 1
            assert not torch.equal(model.decoder(z1), base), (kind, step)


def test_esvae_decoder_skips_the_steps_before_sampling_exactly(tiny_cfg):
    """Skipping the all-zero steps before ESVAE's sampling window changes no output bit."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg("esvae"))
    x = _batch(6)
    z = model.window_spikes(model.posterior_window(x), seed=2, images=torch.arange(6))
    assert not z[..., :model.sample_start].any() and z.any()
    full = model.decoder(z)
    skipped = model.decoder(z, silent=model.sample_start)
    assert torch.equal(full, skipped)
    g_full, = torch.autograd.grad(full.square().sum(), model.decoder.dense.synapse.weight)
    g_skip, = torch.autograd.grad(skipped.square().sum(), model.decoder.dense.synapse.weight)
    assert torch.allclose(g_full, g_skip, rtol=1e-5, atol=1e-7) and g_full.abs().sum() > 0


@pytest.mark.parametrize("kind", ["fsvae", "esvae"])
@pytest.mark.parametrize("mode", ["reconstruct", "generate"])
def test_float_model_equals_the_reference_simulator(kind, mode):
    """The trained-side model on the phase clock is the deployed graph: its latent spikes
    are the reference simulator's (records["sampler/z"]) bit for bit, and its images
    those of the readout's integers to float32 tanh rounding."""
    torch.manual_seed(11)
    model = build_model(make_config("mnist-small", kind, TINY + ["weight_scale=10"])).eval()
    n, seed = 6, 3
    x = _batch(n) if mode == "reconstruct" else None
    img, rec = ReferenceSimulator(deploy.from_model(model, seed=5)).run(x, n, seed, record=True)
    with torch.no_grad():
        z = model.latent(x, seed, torch.arange(n))
        out = model.decode(z)
    ref_z = rec["sampler/z"]
    assert ref_z.shape == z.shape == (n, model.cfg.latent, model.n_steps)
    assert torch.equal(ref_z.long(), z.long())
    assert float((out.double() - img).abs().max()) < 1e-5
    # real activity was compared: latent spikes, and the decoder behind them
    assert int(ref_z.long().sum()) >= 20
    assert sum(int(v.long().sum()) for k, v in rec.items() if k.startswith("decoder/")) > 1000
    if x is not None:
        assert int(rec["encoder/dense"].long().sum()) >= 20


def test_esvae_generation_counts_are_the_integer_priors_at_its_thresholds(tiny_cfg):
    """Prior biases a hair either side of every count threshold: the float model's
    deployed generation takes the integer prior's counts, as the graph's host does, where
    float32 sigmoid(.) * T would round the other way."""
    import math
    torch.manual_seed(0)
    model = build_model(tiny_cfg("esvae", "latent=32")).eval()
    T = model.cfg.T
    edges = [math.log((j - 0.5) / (T - j + 0.5)) for j in range(1, T + 1)]
    bias = torch.tensor([edges[i % T] + (3e-8 if i % 2 else -3e-8) for i in range(32)])
    with torch.no_grad():
        model.prior.weight.zero_()
        model.prior.bias.copy_(bias)
    images = torch.arange(4)
    _, rec = ReferenceSimulator(deploy.from_model(model)).run(None, 4, 3, record=True)
    z = model.latent(None, 3, images)
    assert torch.equal(z.long(), rec["sampler/z"].long())
    float_counts = torch.round(model.prior_rate(3, images) * T).long()
    integer_counts = sampling.prior_counts(model.integer_prior(), 3, images)
    assert (float_counts != integer_counts).any()          # the case this test is about
