"""The shared neuron arithmetic against lava-dl's and Lava's own implementations."""
import numpy as np
import torch
from lava.lib.dl import slayer
from lava.proc.lif.models import PyLifModelBitAcc

from neurovae.hw.neuron import NeuronParams, StateOverflow, lif_step, quantize_weight
from neurovae.neuron import cuba_step

P = NeuronParams(i_decay=1024, v_decay=1024, vth_mant=80)


def _lava_lif(p, bias_mant):
    model = PyLifModelBitAcc({})
    n = len(bias_mant)
    model.u = np.zeros(n, np.int32)
    model.v = np.zeros(n, np.int32)
    model.du, model.dv, model.vth = p.i_decay - 1, p.v_decay, p.vth_mant
    model.bias_mant, model.bias_exp = bias_mant.astype(np.int16), np.full(n, 6, np.int16)
    return model


def test_integer_step_matches_lavas_bit_accurate_lif():
    rng = np.random.default_rng(0)
    n, steps = 500, 40
    bias = rng.integers(-30, 30, n)
    lava = _lava_lif(P, bias)
    lava.scale_threshold()
    lava.scale_bias()
    u = np.zeros(n, np.int64)
    v = np.zeros(n, np.int64)
    total = 0
    for _ in range(steps):
        a = rng.integers(-200, 400, n)
        lava.subthr_dynamics(a.astype(np.int32))
        s_lava = lava.spiking_activation()
        lava.reset_voltage(s_lava)
        u, v, s = lif_step(u, v, a, P, bias=bias)
        assert (s == s_lava).all() and (u == lava.u).all() and (v == lava.v).all()
        total += s.sum()
    assert total > 100   # the comparison saw spikes


def test_float_step_matches_lava_dl_block_dynamics():
    torch.manual_seed(0)
    neuron = slayer.neuron.cuba.Neuron(**P.slayer_params())
    w = quantize_weight(torch.randn(30, 20) * 0.8).float() / 64
    x = (torch.rand(4, 20, 25) < 0.3).float()
    a = torch.einsum("oi,nit->not", w, x)
    ref = neuron(a)
    u = torch.zeros(4, 30)
    v = torch.zeros(4, 30)
    out = []
    for t in range(25):
        s, u, v = cuba_step(a[..., t], u, v, torch.zeros(30), P)
        out.append(s)
    ours = torch.stack(out, -1)
    assert ref.sum() > 20 and torch.equal(ours, ref)


def test_float_and_integer_steps_agree_and_overflow_is_detected():
    rng = np.random.default_rng(1)
    w = rng.integers(-64, 64, (16, 32)) * 2
    u_f = v_f = torch.zeros(1, 16)
    u_i = v_i = np.zeros((1, 16), np.int64)
    for _ in range(30):
        x = (rng.random((1, 32)) < 0.3).astype(np.int64)
        a_int = x @ w.T
        s_f, u_f, v_f = cuba_step(torch.tensor(a_int / 64, dtype=torch.float32), u_f, v_f,
                                  torch.zeros(16), P)
        u_i, v_i, s_i = lif_step(u_i, v_i, a_int, P)
        assert (s_f.numpy().astype(bool) == s_i).all()
    try:
        lif_step(np.zeros(1, np.int64), np.zeros(1, np.int64), np.array([2 ** 18]), P)
    except StateOverflow:
        pass
    else:
        raise AssertionError("a 24-bit overflow went undetected")
