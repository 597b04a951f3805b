"""Every LIF implementation against the one integer step, `hw.neuron.lif_step`.

Random shapes, decays, thresholds and biases, with current memory and with drive from the
bias alone: the simulators' kernels (`sim.emulator`, `sim.lif_kernel`), the step reference
(`sim.reference`), training's float step (`neurovae.neuron.cuba_step`) and training's fused
kernel over lava-dl's neuron (`cuba_kernel`) must give the same spikes step for step.
"""
import dataclasses

import numpy as np
import pytest
import torch

from neurovae.hw.neuron import (DECAY_UNITY, STATE_SCALE, WEIGHT_SCALE, NeuronParams,
                                lif_step)
from neurovae.hw.net import Layer
from neurovae.sim import emulator, reference

CASES = 12


def _case(i: int):
    """(params, bias mantissa (K,), integer input (S, N, K)) for case i."""
    rng = np.random.default_rng(1000 + i)
    steps, n, k = int(rng.integers(3, 40)), int(rng.integers(1, 6)), int(rng.integers(1, 70))
    i_decay = DECAY_UNITY if i % 3 == 0 else int(rng.integers(0, DECAY_UNITY))
    p = NeuronParams(i_decay=i_decay, v_decay=int(rng.integers(0, DECAY_UNITY)),
                     vth_mant=int(rng.integers(1, 100)))
    bias = rng.integers(-40, 60, size=k)
    if i % 4 == 1:                       # drive from the bias alone
        a = np.zeros((steps, n, k), np.int64)
        bias = rng.integers(p.vth_mant // 3, p.vth_mant + 20, size=k)
    else:
        a = rng.integers(-60, 90, size=(steps, n, k)) * (rng.random((steps, n, k)) < 0.6)
    return p, bias.astype(np.int64), a.astype(np.int64)


def _rule(p, bias, a):
    """Spikes (S, N, K) and final (u, v) from the integer rule, stepped in numpy int64."""
    u = np.zeros(a.shape[1:], np.int64)
    v = np.zeros_like(u)
    out = []
    for t in range(len(a)):
        u, v, s = lif_step(u, v, a[t], p, bias)
        out.append(s)
    return np.stack(out).astype(np.uint8), u, v


def _layer(p, bias):
    k = len(bias)
    return Layer("pop", "dense", (1,), (k,), np.zeros((k, 1), np.int64), p, bias=bias)


@pytest.mark.parametrize("i", range(CASES))
def test_rule_is_the_same_in_numpy_and_torch(i):
    p, bias, a = _case(i)
    s_np, u_np, v_np = _rule(p, bias, a)
    u = torch.zeros(a.shape[1:], dtype=torch.int64)
    v, out = u.clone(), []
    for t in range(len(a)):
        u, v, s = lif_step(u, v, torch.as_tensor(a[t]), p, torch.as_tensor(bias))
        out.append(s)
    assert np.array_equal(torch.stack(out).numpy().astype(np.uint8), s_np)
    assert np.array_equal(v.numpy(), v_np) and np.array_equal(u.numpy(), u_np)
    assert s_np.any() or not a.any(), "a case should make neurons fire"


@pytest.mark.parametrize("i", range(CASES))
def test_emulator_kernels(i):
    p, bias, a = _case(i)
    want, _, v_want = _rule(p, bias, a)
    layer = _layer(p, bias)
    x = torch.as_tensor(a, dtype=torch.float64)
    spikes, v, _ = emulator.lif_block(x, layer, torch.zeros(a.shape[1:], dtype=torch.float64),
                                      None)
    assert np.array_equal(spikes.numpy(), want)
    assert np.array_equal(v.numpy(), v_want)
    # a series whose input starts late: the leading steps run on the bias alone
    start = min(3, len(a) - 1)
    series = emulator.Series(start, x[start:])
    padded = a.copy()
    padded[:start] = 0
    want_late, _, _ = _rule(p, bias, padded)
    got, _ = emulator.lif_series(series, layer, len(a))
    assert np.array_equal(got.full(len(a)).numpy(), want_late)
    # the kernel's per-step spike counts, which tell the next synapse its steps and work
    assert got.fired is not None
    assert np.array_equal(got.fired.numpy(),
                          want_late[got.start:].reshape(len(a) - got.start, -1).sum(1))


@pytest.mark.parametrize("i", range(CASES))
def test_reference_population(i):
    p, bias, a = _case(i)
    want, _, _ = _rule(p, bias, a)
    pop = reference.Population(_layer(p, bias), a.shape[1])
    got = [pop.step(torch.as_tensor(a[t])).numpy() for t in range(len(a))]
    assert np.array_equal(np.stack(got).astype(np.uint8), want)


@pytest.mark.parametrize("i", range(CASES))
def test_training_float_step(i):
    from neurovae.neuron import cuba_step
    p, bias, a = _case(i)
    want, _, _ = _rule(p, bias, a)
    x = torch.as_tensor(a, dtype=torch.float32) / WEIGHT_SCALE     # float units
    b = torch.as_tensor(bias, dtype=torch.float32) / WEIGHT_SCALE
    u = torch.zeros(a.shape[1:])
    v, out = u.clone(), []
    for t in range(len(a)):
        s, u, v = cuba_step(x[t], u, v, b, p)
        out.append(s)
    assert np.array_equal(torch.stack(out).numpy().astype(np.uint8), want)


@pytest.mark.parametrize("i", [j for j in range(CASES) if j % 4 != 1])   # lava-dl: no bias
def test_training_fused_kernel_over_lava_dl(i):
    from lava.lib.dl import slayer

    from neurovae import cuba_kernel
    p, bias, a = _case(i)
    p = dataclasses.replace(p)
    want, _, _ = _rule(p, np.zeros_like(bias), a)
    cuba_kernel.install()
    assert cuba_kernel.installed()
    neuron = slayer.neuron.cuba.Neuron(**p.slayer_params())
    x = torch.as_tensor(a, dtype=torch.float32).permute(1, 2, 0).contiguous() / WEIGHT_SCALE
    assert cuba_kernel.eligible(neuron, x)
    s = neuron(x)                                        # (N, K, S)
    assert np.array_equal(s.permute(2, 0, 1).numpy().astype(np.uint8), want)
    assert STATE_SCALE == neuron.s_scale
