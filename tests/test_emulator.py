"""The layer-at-a-time emulator equals the step-by-step reference spike for spike."""
import dataclasses

import numpy as np
import pytest
import torch

from conftest import TINY
from neurovae import data, deploy
from neurovae.config import make_config
from neurovae.sim.reference import ReferenceSimulator
from neurovae.sim.emulator import Emulator
from neurovae.models import build_model
from neurovae.hw.neuron import StateOverflow


def _net(kind, *extra, seed=11):
    torch.manual_seed(seed)
    return deploy.from_model(build_model(make_config("mnist-small", kind, TINY + list(extra))).eval(),
                             seed=5)


def _assert_same(net, x, n, seed, chunk=256):
    ref_img, ref = ReferenceSimulator(net).run(x, n, seed, record=True)
    got_img, got = Emulator(net, chunk=chunk).run(x, n, seed, record=True)
    assert set(ref) == set(got)
    for key in ref:
        assert torch.equal(ref[key].long(), got[key].long()), key
    assert torch.equal(ref_img, got_img)
    spikes = sum(int(v.long().sum()) for k, v in ref.items() if k != "readout_v")
    assert spikes > 100                      # real activity was compared
    return spikes


@pytest.mark.parametrize("kind", ["fsvae", "esvae"])
@pytest.mark.parametrize("mode", ["reconstruct", "generate"])
def test_layerwise_matches_reference(kind, mode):
    net = _net(kind)
    x = data.load_images("mnist", "test").tensor(torch.arange(7)) if mode == "reconstruct" else None
    _assert_same(net, x, 7, seed=3, chunk=3)          # chunks of 3, 3, 1 images


def test_bias_driven_spikes_before_any_input():
    """A bias above threshold fires neurons before the first spike arrives: still exact."""
    net = _net("esvae")
    layer = net.decoder[1]
    bias = np.full(layer.out_shape[0], 90, dtype=np.int64)   # 90 * 64 > threshold 80 * 64
    net.decoder[1] = dataclasses.replace(layer, bias=bias)
    _assert_same(net, None, 4, seed=1)


def test_longer_leak_and_current_memory_are_exact():
    """Neurons with current memory (i_decay < 4096) and slow leaks take the general path."""
    net = _net("fsvae", "v_decay=256")
    for layers in (net.decoder, net.prior, net.posterior):
        for i, layer in enumerate(layers):
            layers[i] = dataclasses.replace(
                layer, neuron=dataclasses.replace(layer.neuron, i_decay=2048))
    _assert_same(net, None, 5, seed=2)
    _assert_same(net, data.load_images("mnist", "test").tensor(torch.arange(3)), 3, seed=2)


def test_state_overflow_is_reported_like_the_reference():
    net = _net("fsvae")
    layer = net.encoder[0]
    net.encoder[0] = dataclasses.replace(layer, weight=np.full_like(layer.weight, 254),
                                         neuron=dataclasses.replace(layer.neuron, vth_mant=2 ** 17 - 1,
                                                                    i_decay=0, v_decay=0))
    x = data.load_images("mnist", "test").tensor(torch.arange(2))
    with pytest.raises(StateOverflow):
        ReferenceSimulator(net).run(x, 2, 0)
    with pytest.raises(StateOverflow):
        Emulator(net).run(x, 2, 0)


def test_images_do_not_depend_on_the_chunking():
    net = _net("fsvae")
    a, _ = Emulator(net, chunk=5).run(None, 11, 9, first_image=4)
    b, _ = Emulator(net, chunk=64).run(None, 11, 9, first_image=4)
    c, _ = Emulator(net).run(None, 4, 9, first_image=11)
    assert torch.equal(a, b) and torch.equal(a[7:], c)


@pytest.mark.parametrize("kind", ["fsvae", "esvae"])
def test_a_silent_latent_runs_on_every_tensor_backend(kind):
    """A prior that never fires (the decoder then receives no spike at all) runs on both
    simulators with the same images: the readout's bias alone."""
    net = _net(kind)
    if kind == "fsvae":
        net.prior = [dataclasses.replace(l, weight=np.zeros_like(l.weight),
                                         bias=np.zeros_like(l.bias)) for l in net.prior]
    else:
        pl = net.prior_linear
        net.prior_linear = {**pl, "weight": np.zeros_like(pl["weight"]),
                            "bias": np.full_like(pl["bias"], -(1 << 30))}
    ref_img, ref = ReferenceSimulator(net).run(None, 3, 1, record=True)
    got_img, got = Emulator(net).run(None, 3, 1, record=True)
    assert int(ref["sampler/z"].sum()) == 0
    assert torch.equal(ref_img, got_img)
    for key in ref:
        assert torch.equal(ref[key].long(), got[key].long()), key
