"""The fused CUBA neuron and block give lava-dl's spikes bit for bit and lava-dl's gradients.

Gradients agree to float32 rounding only: the surrogate's exp is computed by a scalar
library exp here and by torch's vector exp in lava-dl (they differ in the last bit for
about 1% of arguments).
"""
import pytest
import torch
from lava.lib.dl import slayer

from conftest import close, neuron_params

from neurovae import cuba_kernel, spiking_block
from neurovae.config import ConfigError
from neurovae.models import build_model
from neurovae.train import batch_gradients

GRAD_RTOL = 1e-5


def _both(run):
    """run() under lava-dl's code, then under the fused code."""
    cuba_kernel.uninstall()
    try:
        ref = run()
    finally:
        cuba_kernel.install()
    return ref, run()


@pytest.mark.parametrize("threshold,i_decay,v_decay", [
    (1.25, 1.0, 0.25),      # paper config: no current memory, keep 1/4 of v
    (0.2, 0.5, 0.75),       # current memory and a low threshold
    (3.0, 0.0, 0.0),        # perfect integrators, threshold on an exact integer
])
def test_neuron_matches_lava_dl(threshold, i_decay, v_decay):
    torch.manual_seed(0)
    for shape in ((6, 4, 5, 5, 24), (3, 7, 24)):   # 600 neurons, and 21 (not a multiple of 4)
        x = (torch.randn(shape) * 2).requires_grad_()
        g = torch.randn(shape)

        def run():
            neuron = slayer.neuron.cuba.Neuron(**neuron_params(threshold, i_decay, v_decay))
            s = neuron(x)
            return s, torch.autograd.grad(s, x, g)[0]

        (s_ref, g_ref), (s, g_got) = _both(run)
        assert 0.05 < float(s_ref.mean()) < 0.95
        assert torch.equal(s_ref, s)
        assert close(g_ref, g_got, GRAD_RTOL)


def test_neuron_outside_the_fused_cases_keeps_lava_dl():
    neuron = slayer.neuron.cuba.Neuron(**neuron_params(1.25, 1.0, 0.25), persistent_state=True)
    assert not cuba_kernel.eligible(neuron, torch.zeros(2, 3, 4))


def _blocks():
    p = neuron_params(1.25, 1.0, 0.25)
    yield "conv", slayer.block.cuba.Conv(dict(p), 4, 6, 3, stride=2, padding=1,
                                         weight_scale=6), (5, 4, 8, 8, 20)
    yield "convT", slayer.block.cuba.ConvT(dict(p), 4, 3, 4, stride=2, padding=1,
                                           weight_scale=6), (5, 4, 4, 4, 20)
    yield "dense", slayer.block.cuba.Dense(dict(p), 30, 12, weight_scale=6), (5, 30, 20)
    yield "dense-no-delay", slayer.block.cuba.Dense(dict(p), 30, 12, weight_scale=6,
                                                    delay_shift=False), (5, 30, 20)


@pytest.mark.parametrize("name", ["conv", "convT", "dense", "dense-no-delay"])
def test_block_matches_lava_dl(name):
    torch.manual_seed(1)
    blk, shape = next((b, s) for n, b, s in _blocks() if n == name)
    x = (torch.rand(shape) < 0.3).float().requires_grad_()

    def run():
        s = spiking_block.block(blk, x)
        g = torch.linspace(-1, 1, s.numel()).reshape(s.shape)
        gx, gw = torch.autograd.grad(s, (x, blk.synapse.weight), g)
        return s, gx, gw

    (s_ref, gx_ref, gw_ref), (s, gx, gw) = _both(run)
    assert s_ref.shape == s.shape and s_ref.sum() > 0
    assert torch.equal(s_ref, s)
    assert close(gx_ref, gx, GRAD_RTOL) and close(gw_ref, gw, GRAD_RTOL)


def test_block_on_graded_input_matches_lava_dl():
    """Input that is not spikes is kept as floats for backward: same spikes, same gradients."""
    torch.manual_seed(2)
    _, blk, shape = next(_blocks())
    x = (torch.rand(shape) * 2).requires_grad_()

    def run():
        s = spiking_block.block(blk, x)
        return s, torch.autograd.grad(s, x, torch.linspace(-1, 1, s.numel()).reshape(s.shape))[0]

    (s_ref, g_ref), (s, g) = _both(run)
    assert s_ref.sum() > 0 and torch.equal(s_ref, s)
    assert close(g_ref, g, GRAD_RTOL)


def test_block_keeps_spikes_as_bytes():
    """The saved input of a block is one byte per spike, not four."""
    _, blk, shape = next(_blocks())
    x = (torch.rand(shape) < 0.3).float().requires_grad_()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        spiking_block.block(blk, x)
    assert any(t.dtype == torch.uint8 and t.shape == x.shape for t in saved)
    assert not any(t.dtype == torch.float32 and t.shape == x.shape for t in saved)


@pytest.mark.parametrize("kind", ["fsvae", "esvae"])
def test_training_step_matches_lava_dl(tiny_cfg, kind):
    """A model's loss equals lava-dl's own code bit for bit; its gradients to rounding."""
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)

    def run():
        torch.manual_seed(3)
        model = build_model(tiny_cfg(kind))
        out = model(x, seed=1, images=torch.arange(4), ss_p=0.5)
        out["loss"].backward()
        return out["loss"].detach(), [p.grad for p in model.parameters() if p.grad is not None]

    (l_ref, g_ref), (l, g) = _both(run)
    assert torch.equal(l_ref, l) and len(g_ref) == len(g) > 4
    assert all(close(a, b, GRAD_RTOL) for a, b in zip(g_ref, g))


def test_micro_batches_give_the_batch_gradient(tiny_cfg):
    """FSVAE in slices of 3 images: the same loss terms and gradients as all 8 at once."""
    from neurovae import data
    x = data.load_images("mnist", "test").tensor(torch.arange(8))
    results = []
    for micro in (0, 3):
        torch.manual_seed(4)
        model = build_model(tiny_cfg("fsvae"))
        terms = batch_gradients(model, x, seed=5, images=torch.arange(10, 18), ss_p=0.5,
                                gen=None, micro=micro)
        results.append((terms, [p.grad for p in model.parameters()]))
    (t0, g0), (t1, g1) = results
    assert t0.keys() == t1.keys() and all(abs(t0[k] - t1[k]) < 1e-6 for k in t0)
    assert all(close(a, b, GRAD_RTOL) for a, b in zip(g0, g1) if a is not None)
    assert sum(float(a.abs().sum()) for a in g0 if a is not None) > 0


def test_micro_batches_are_refused_where_the_loss_couples_images(tiny_cfg):
    with pytest.raises(ConfigError, match="micro_batch applies to fsvae only"):
        tiny_cfg("esvae", "micro_batch=2")


def test_readout_matches_synapse_and_leaky_integrator():
    """The fused readout: same voltages as synapse + lava-dl's integrator, same gradients."""
    torch.manual_seed(5)
    syn = slayer.synapse.Conv(6, 2, 3, padding=1, weight_scale=2,
                              pre_hook_fx=lambda w: torch.round(w * 32) / 32)
    x = (torch.rand(3, 6, 7, 7, 12) < 0.3).float().requires_grad_()
    bias = (torch.randn(2) / 8).requires_grad_()
    decay = torch.tensor([819.0])

    def run():
        v = spiking_block.readout(syn, x, bias, decay, steps=15)   # 3 silent steps first
        return (v,) + torch.autograd.grad(torch.tanh(v).square().sum(), (x, syn.weight, bias))

    ref, got = _both(run)
    assert ref[0].shape == (3, 2, 7, 7) and torch.equal(ref[0], got[0])
    assert all(close(a, b, GRAD_RTOL) for a, b in zip(ref[1:], got[1:]))
