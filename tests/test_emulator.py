"""The layer-at-a-time emulator equals the step-by-step reference spike for spike, on the
phase clock: delay-free windows, bias and input from step 0, the FSVAE loop's feedback
LOOP_LATENCY steps late."""
import dataclasses

import numpy as np
import pytest
import torch

from conftest import TINY
from neurovae import data, deploy
from neurovae.config import make_config
from neurovae.hw.neuron import StateOverflow
from neurovae.loihi_runtime.backends import TENSOR_BACKENDS, run_tensor
from neurovae.models import build_model
from neurovae.sim import emulator
from neurovae.sim.emulator import Emulator
from neurovae.sim.reference import ReferenceSimulator


def _net(kind, *extra, seed=11):
    torch.manual_seed(seed)
    return deploy.from_model(build_model(make_config("mnist-small", kind, TINY + list(extra))).eval(),
                             seed=5)


def _images(n):
    return data.load_images("mnist", "test").tensor(torch.arange(n))


def _assert_same(net, x, n, seed, chunk=256):
    """Every record and image of the emulator equals the reference's; returns the
    reference's records after checking that real activity was compared."""
    ref_img, ref = ReferenceSimulator(net).run(x, n, seed, record=True)
    got_img, got = Emulator(net, chunk=chunk).run(x, n, seed, record=True)
    assert set(ref) == set(got)
    for key in ref:
        assert ref[key].shape == got[key].shape, key
        assert torch.equal(ref[key].long(), got[key].long()), key
    assert torch.equal(ref_img, got_img)
    counts = {k: int(v.long().sum()) for k, v in ref.items() if k != "readout_v"}
    assert sum(counts.values()) > 1000, counts       # real activity was compared
    assert counts["sampler/z"] > 5, counts           # ... through the latent
    assert all(ref[k].shape[-1] == net.n_steps for k in counts)
    return ref


@pytest.mark.parametrize("i_decay", [4096, 1024])
def test_a_constant_drive_is_stepped_like_its_copy(i_decay):
    """The input layer's drive, expanded over the steps (stride 0), gives the spikes and
    final voltage of the same input held in memory and of the integer rule."""
    from neurovae.hw.neuron import NeuronParams, lif_step
    from neurovae.hw.net import Layer
    rng = np.random.default_rng(0)
    steps, n, k = 9, 5, 37
    p = NeuronParams(i_decay=i_decay, v_decay=1024, vth_mant=80)
    bias = rng.integers(-20, 40, size=k)
    layer = Layer("input", "dense", (1,), (k,), np.zeros((k, 1), np.int64), p, bias=bias)
    drive = torch.as_tensor(rng.integers(-30, 200, size=(n, k)), dtype=torch.float64)
    x = drive.unsqueeze(0).expand(steps, -1, -1)
    v0 = torch.zeros(n, k, dtype=torch.float64)
    s_exp, v_exp, _ = emulator.lif_block(x, layer, v0, None)
    s_mem, v_mem, _ = emulator.lif_block(x.contiguous(), layer, v0, None)
    u = v = torch.zeros(n, k, dtype=torch.int64)
    want = []
    for _ in range(steps):
        u, v, s = lif_step(u, v, drive.long(), p, torch.as_tensor(bias))
        want.append(s)
    want = torch.stack(want).to(torch.uint8)
    assert torch.equal(s_exp, want) and torch.equal(s_mem, want)
    assert torch.equal(v_exp.long(), v) and torch.equal(v_mem.long(), v)
    assert 0 < int(want.sum()) < want.numel()


@pytest.mark.parametrize("i_decay", [4096, 1024])
def test_an_input_that_ends_early_runs_on_without_it(i_decay):
    """Steps after a short input have none: the neurons still leak and take their bias, so
    a positive bias makes spikes there, as the integer rule does with zeros."""
    from neurovae.hw.neuron import NeuronParams, lif_step
    from neurovae.hw.net import Layer
    rng = np.random.default_rng(1)
    steps, n_in, n, k = 11, 4, 3, 29
    p = NeuronParams(i_decay=i_decay, v_decay=2048, vth_mant=80)
    bias = rng.integers(-20, 160, size=k)
    layer = Layer("l", "dense", (1,), (k,), np.zeros((k, 1), np.int64), p, bias=bias)
    x = torch.as_tensor(rng.integers(-50, 300, size=(n_in, n, k)), dtype=torch.float64)
    s, v, _ = emulator.lif_block(x, layer, torch.zeros(n, k, dtype=torch.float64), None,
                                 steps=steps)
    u = vv = torch.zeros(n, k, dtype=torch.int64)
    want = []
    for t in range(steps):
        a = x[t].long() if t < n_in else torch.zeros(n, k, dtype=torch.int64)
        u, vv, st = lif_step(u, vv, a, p, torch.as_tensor(bias))
        want.append(st)
    want = torch.stack(want).to(torch.uint8)
    assert s.shape == want.shape and torch.equal(s, want) and torch.equal(v.long(), vv)
    assert int(want[n_in:].sum()) > 0           # the bias fires after the input ended


@pytest.mark.parametrize("kind", ["fsvae", "esvae"])
@pytest.mark.parametrize("mode", ["reconstruct", "generate"])
def test_layerwise_matches_reference(kind, mode):
    net = _net(kind)
    x = _images(7) if mode == "reconstruct" else None
    ref = _assert_same(net, x, 7, seed=3, chunk=3)          # chunks of 3, 3, 1 images
    z = ref["sampler/z"]
    if kind == "fsvae":            # z spikes in [0, T) only: nothing crosses into the next image
        assert int(z[..., net.sampler["T"]:].sum()) == 0
    else:                          # ESVAE samples in [T, 2T)
        assert int(z[..., :net.sampler["sample_start"]].sum()) == 0
    for k in ref:                  # every population a record shows has fired
        if k not in ("readout_v", "sampler/z"):
            assert int(ref[k].long().sum()) > 0, k


@pytest.mark.parametrize("mode", ["reconstruct", "generate"])
def test_bias_driven_spikes_before_any_input(mode, monkeypatch):
    """A bias above threshold fires neurons from step 0, before ESVAE's first z spike
    reaches the decoder at step T: the emulator's bias-only shortcut falls back, still exact."""
    net = _net("esvae")
    layer = net.decoder[0]
    bias = np.full(layer.out_shape[0], 90, dtype=np.int64)   # 90 * 64 > threshold 80 * 64
    net.decoder[0] = dataclasses.replace(layer, bias=bias)
    calls = []
    stepped = emulator._lif_stepped
    monkeypatch.setattr(emulator, "_lif_stepped", lambda *a: calls.append(a[1].name) or stepped(*a))
    ref = _assert_same(net, _images(4) if mode == "reconstruct" else None, 4, seed=1)
    first = ref[f"decoder/{layer.name}"]
    assert int(first[..., 0].sum()) > 0             # bias acts at step 0
    assert int(ref["sampler/z"][..., :net.T].sum()) == 0   # ... with no input yet
    assert layer.name in calls                      # the fallback ran


def test_bias_alone_below_threshold_takes_the_shortcut(monkeypatch):
    """A decoder whose input starts at step T with a sub-threshold bias: the bias-only state
    over the leading steps is computed once, and equals the reference's (15 * 64 / (1 - 0.75)
    stays below the threshold 80 * 64)."""
    net = _net("esvae")
    layer = net.decoder[0]
    net.decoder[0] = dataclasses.replace(layer, bias=np.full(layer.out_shape[0], 15, np.int64))
    calls = []
    stepped = emulator._lif_stepped
    monkeypatch.setattr(emulator, "_lif_stepped", lambda *a: calls.append(a[1].name) or stepped(*a))
    _assert_same(net, None, 4, seed=1)
    assert layer.name not in calls


def test_longer_leak_and_current_memory_are_exact():
    """Neurons with current memory (i_decay < 4096) and slow leaks take the general path."""
    net = _net("fsvae", "v_decay=256")
    for layers in (net.encoder, net.decoder, net.prior, net.posterior):
        for i, layer in enumerate(layers):
            layers[i] = dataclasses.replace(
                layer, neuron=dataclasses.replace(layer.neuron, i_decay=2048))
    _assert_same(net, None, 5, seed=2)
    _assert_same(net, _images(3), 3, seed=2, chunk=2)


def _no_leak_no_spike(layer, **kw):
    """A layer whose current and voltage never decay and never spike, with its weights at the
    maximum: its state grows past Loihi's 24-bit range within a window."""
    return dataclasses.replace(layer, weight=np.full_like(layer.weight, 254), **kw,
                               neuron=dataclasses.replace(layer.neuron, vth_mant=2 ** 17 - 1,
                                                          i_decay=0, v_decay=0))


@pytest.mark.parametrize("kind", ["fsvae", "esvae"])
def test_state_overflow_is_reported_like_the_reference(kind):
    net = _net(kind)
    net.encoder[1] = _no_leak_no_spike(net.encoder[1])
    x = _images(2)
    with pytest.raises(StateOverflow):
        ReferenceSimulator(net).run(x, 2, 0)
    with pytest.raises(StateOverflow):
        Emulator(net).run(x, 2, 0)


def test_state_overflow_in_the_loop_is_reported_like_the_reference():
    """The FSVAE loop's blocks check the 24-bit range as the reference's steps do: L1 fires
    at every step on its bias alone, L2 accumulates it."""
    net = _net("fsvae")
    l1, l2 = net.prior[0], net.prior[1]
    net.prior[0] = dataclasses.replace(l1, bias=np.full(l1.out_shape[0], 4095, np.int64))
    net.prior[1] = _no_leak_no_spike(l2, bias=np.full(l2.out_shape[0], 4095, np.int64))
    with pytest.raises(StateOverflow):
        ReferenceSimulator(net).run(None, 3, 0)
    with pytest.raises(StateOverflow):
        Emulator(net).run(None, 3, 0)


@pytest.mark.parametrize("kind", ["fsvae", "esvae"])
def test_results_do_not_depend_on_the_chunking(kind):
    net = _net(kind)
    a, ra = Emulator(net, chunk=5).run(None, 11, 9, first_image=4, record=True)
    b, rb = Emulator(net, chunk=64).run(None, 11, 9, first_image=4, record=True)
    c, rc = Emulator(net).run(None, 4, 9, first_image=11, record=True)
    assert torch.equal(a, b) and torch.equal(a[7:], c)
    assert set(ra) == set(rb) == set(rc)
    for k in ra:
        assert torch.equal(ra[k], rb[k]) and torch.equal(ra[k][7:], rc[k]), k
    assert int(ra["sampler/z"].sum()) > 10
    x = _images(6)
    d, _ = Emulator(net, chunk=4).run(x, 0, 9, first_image=2)
    e, _ = Emulator(net).run(x[4:], 0, 9, first_image=6)
    assert torch.equal(d[4:], e)


def test_chunks_hold_the_widest_layer_within_the_memory_budget(monkeypatch):
    """The default chunk: as many images as keep the widest layer's input and spikes (8
    bytes per neuron and step) within CHUNK_MEMORY, from 16 to 256; a small net gets 256."""
    net = _net("fsvae")
    assert Emulator(net).chunk == emulator.CHUNK_RANGE[1]
    assert Emulator(net, chunk=5).chunk == 5
    widest = max(l.n_out for l in [*net.encoder, *net.decoder, net.readout])
    per_image = 8 * net.n_steps * widest
    for budget, want in ((per_image * 100, 100), (per_image * 3, 16), (per_image * 10**4, 256)):
        monkeypatch.setattr(emulator, "CHUNK_MEMORY", budget)
        assert emulator.auto_chunk(net) == want


def _silence(net, kind, mode):
    """Make the latent never fire: the decoder then receives no spike at all."""
    if kind == "fsvae":
        name = "prior" if mode == "generate" else "posterior"
        setattr(net, name, [dataclasses.replace(l, weight=np.zeros_like(l.weight),
                                                bias=np.zeros_like(l.bias))
                            for l in getattr(net, name)])
    elif mode == "generate":
        pl = net.prior_linear
        net.prior_linear = {**pl, "weight": np.zeros_like(pl["weight"]),
                            "bias": np.full_like(pl["bias"], -(1 << 30))}
    else:
        last = net.encoder[-1]
        net.encoder[-1] = dataclasses.replace(last, weight=np.zeros_like(last.weight),
                                              bias=np.zeros(last.out_shape[0], np.int64))


@pytest.mark.parametrize("kind", ["fsvae", "esvae"])
@pytest.mark.parametrize("mode", ["reconstruct", "generate"])
def test_a_silent_latent_runs_on_every_tensor_backend(kind, mode):
    """A latent that never fires (the decoder then receives no spike at all) runs on every
    tensor backend with the same images and records: the readout's bias alone."""
    net = _net(kind)
    _silence(net, kind, mode)
    x = _images(3) if mode == "reconstruct" else None
    runs = {b: run_tensor(net, x, 3, 1, record=True, backend=b) for b in TENSOR_BACKENDS}
    assert {"emulator", "reference"} <= set(runs)
    (img0, rec0), *others = runs.values()
    assert int(rec0["sampler/z"].sum()) == 0
    for img, rec in others:
        assert torch.equal(img0, img)
        assert set(rec) == set(rec0)
        for key in rec0:
            assert np.array_equal(rec0[key].astype(np.int64), rec[key].astype(np.int64)), key
    # the readout is the same in every image: nothing of the image got through
    assert torch.equal(img0, img0[:1].expand_as(img0))


@pytest.mark.parametrize("mode", ["reconstruct", "generate"])
def test_a_window_not_a_multiple_of_the_loop_latency(mode):
    """FSVAE with T = 5: S = 9 steps, so the loop runs in blocks of 4, 4 and 1 steps."""
    net = _net("fsvae", "T=5")
    assert net.n_steps % 4 == 1
    _assert_same(net, _images(5) if mode == "reconstruct" else None, 5, seed=2, chunk=2)


def _layer(kind, in_shape, co, k=3, stride=1, padding=0, seed=0, top=False):
    """A layer of `kind` with random even weights in [-256, 254] (its out_shape by the
    kind's rule); top: output channel 0's weights all 254, the largest sums there are."""
    from neurovae.hw.layers import KINDS
    from neurovae.hw.neuron import NeuronParams
    from neurovae.hw.net import Layer
    rng = np.random.default_rng(seed)
    if kind == "dense":                 # a dense layer's source is flat, of any shape
        in_shape = (int(np.prod(in_shape)),)
    ci = in_shape[0]
    shape = {"dense": (co, ci), "convT": (ci, co, k, k)}.get(kind, (co, ci, k, k))
    w = 2 * rng.integers(-128, 128, size=shape)
    if top:
        (w[:, 0] if kind == "convT" else w[0])[...] = 254
    out = KINDS[kind].out_shape(in_shape, w, stride, padding)
    return Layer(kind, kind, tuple(in_shape), tuple(out), w, NeuronParams(), stride, padding)


EVENT_LAYERS = {                   # kind, source shape, out channels, kernel, stride, padding
    "dense": ("dense", (37,), 29, 1, 1, 0),
    "dense-spatial": ("dense", (8, 2, 3), 7, 1, 1, 0),    # fed by a convolution
    "conv": ("conv", (5, 9, 7), 6, 3, 2, 1),
    "conv-s1": ("conv", (4, 6, 6), 8, 3, 1, 1),
    "convT": ("convT", (6, 4, 5), 5, 4, 2, 1),
    "convT-wide": ("convT", (4, 16, 16), 6, 4, 2, 1),    # pixels reach most taps
    "readout": ("readout", (7, 8, 6), 1, 3, 1, 1),
}


def test_each_layer_kind_takes_its_event_kernel():
    """The cases above cover every kernel: a run per tap (dense, conv, small convT), a sum
    per pixel (convT whose pixels reach most taps), dots (the readout's one channel)."""
    from neurovae.sim import event_synapse as es
    want = {"dense": es.direct, "dense-spatial": es.direct, "conv": es.direct,
            "conv-s1": es.direct, "convT": es.direct, "convT-wide": es.per_pixel,
            "readout": es.dots}
    for name, (kind, shape, co, k, stride, pad) in EVENT_LAYERS.items():
        conn = emulator.Connection(_layer(kind, shape, co, k, stride, pad))
        ev, _ = conn._event_rows(torch.zeros(1, *shape))
        assert ev.kernel is want[name], name


def _spikes(shape, density, seed, dtype=torch.float32, channels_last=False):
    g = torch.Generator().manual_seed(seed)
    s = (torch.rand(shape, generator=g) < density).to(dtype)
    return s.contiguous(memory_format=torch.channels_last) if channels_last else s


@pytest.mark.parametrize("name", list(EVENT_LAYERS))
@pytest.mark.parametrize("density", [0.0, 0.05, 0.6, 1.0])
def test_event_driven_input_equals_the_dense_product(name, density):
    """The event-driven synapse gives the dense product's integers exactly, in its shape and
    layout, from spikes in any dtype and layout; all-zero, sparse, dense and all-one input."""
    kind, shape, co, k, stride, pad = EVENT_LAYERS[name]
    conn = emulator.Connection(_layer(kind, shape, co, k, stride, pad, seed=len(name)))
    assert conn.dtype == torch.float32
    m = 11
    layouts = [(shape, False)] + ([(shape, True), ((int(np.prod(shape)),), False)]
                                  if len(shape) == 3 else [])
    for i, (sh, cl) in enumerate(layouts):
        for dtype in (torch.float32, torch.uint8):
            s = _spikes((m, *sh), density, seed=i, dtype=dtype, channels_last=cl)
            want = conn(s, events=False)
            ref = torch.as_tensor(np.asarray(conn.layer.weight), dtype=torch.float64)
            exact = conn.layer.spec.apply(conn.layer, s.double().reshape(m, *conn.layer.in_shape),
                                          ref)
            assert torch.equal(want.double(), exact)
            buf = torch.full((m * conn.layer.n_out + 5,), 7.0)
            for got in (conn(s, events=True), conn(s), conn(s, lambda n, dt: buf, events=True)):
                assert got.shape == want.shape and got.dtype == want.dtype
                assert got.stride() == want.stride()
                assert torch.equal(got, want), (sh, cl, dtype)
    assert bool(want.any()) == (density > 0)


@pytest.mark.parametrize("kind,shape,k,kernel", [
    ("dense", (70000,), 1, "direct"), ("conv", (8192, 3, 3), 3, "direct"),
    ("convT", (4200, 2, 2), 4, "direct"), ("convT", (4200, 16, 16), 4, "per_pixel"),
    ("readout", (8192, 3, 3), 3, "dots")])
def test_event_driven_input_in_float64(kind, shape, k, kernel):
    """A connection whose sums can pass 2**24 runs in float64 on both paths, exactly, with
    each kernel."""
    from neurovae.sim import event_synapse as es
    stride, pad = (2, 1) if kind == "convT" else (1, 1 if k == 3 else 0)
    conn = emulator.Connection(_layer(kind, shape, 1 if kind == "readout" else 4, k, stride, pad,
                                      top=True))
    assert conn.dtype == torch.float64
    assert conn._event_rows(torch.zeros(1, *shape))[0].kernel is getattr(es, kernel)
    w = torch.as_tensor(np.asarray(conn.layer.weight), dtype=torch.float64)
    for density in (0.0, 0.02, 0.9, 1.0):
        s = _spikes((3, *shape), density, seed=1, dtype=torch.float64,
                    channels_last=len(shape) == 3)
        want = conn(s, events=False)
        assert torch.equal(want, conn.layer.spec.apply(conn.layer, s, w))
        got = conn(s, events=True)
        assert got.dtype == torch.float64 and torch.equal(got, want)
    # all-one input takes the top channel of a dense or 3x3 layer past 2**24 (an output of
    # these convT gathers 4 of the 16 taps: a quarter of that)
    assert float(want.max()) >= 2 ** 24 / (4 if kind == "convT" else 1)


def test_the_event_path_runs_below_the_density_threshold(monkeypatch):
    """By default sparse input goes event-driven and dense input to the dense product, as
    does input too small to pay for the event path."""
    from neurovae.sim import event_synapse
    calls = []
    kernel = event_synapse.EventSynapse.__call__
    monkeypatch.setattr(event_synapse.EventSynapse, "__call__",
                        lambda self, s, out: calls.append(1) or kernel(self, s, out))
    conn = emulator.Connection(_layer("conv", (5, 9, 7), 6, 3, 2, 1))
    sparse = _spikes((4, 5, 9, 7), emulator.EVENT_DENSITY / 2, seed=0)
    conn(sparse)
    assert calls == []                        # 4 images: too little work
    monkeypatch.setattr(emulator, "EVENT_MIN_WORK", 0)
    conn(sparse)
    assert calls == [1]
    conn(_spikes((4, 5, 9, 7), min(1.0, emulator.EVENT_DENSITY * 2), seed=0))
    assert calls == [1]


@pytest.mark.parametrize("threshold", [-1.0, 1.0])
def test_the_emulator_is_exact_on_either_synapse_path(threshold, monkeypatch):
    """With every synapse dense (threshold -1: only the readout's dots stay) or every one
    event-driven (1), the emulator equals the reference spike for spike."""
    monkeypatch.setattr(emulator, "EVENT_DENSITY", threshold)
    monkeypatch.setattr(emulator, "EVENT_MIN_WORK", 0)
    net = _net("fsvae")
    _assert_same(net, _images(4), 4, seed=3, chunk=3)
    _assert_same(net, None, 3, seed=3)
