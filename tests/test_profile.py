"""Cost profile: exact synapse, fan, spike and SynOp counts on a hand-made net; cores, energy, MACs."""
import json

import numpy as np
import pytest
import torch

from neurovae import data, deploy
from neurovae.ann_cost import ann_macs
from neurovae.config import make_config
from neurovae.hw.net import DeployNet, Layer
from neurovae.sim.reference import ReferenceSimulator
from neurovae.export.inspect import synapses
from neurovae import profile as prof
from neurovae.models import build_model
from neurovae.hw.neuron import NeuronParams

from conftest import TINY

S, N = 5, 2
P = NeuronParams()


def _net() -> DeployNet:
    """FSVAE-shaped, latent 1, k 2, image 1x3x3; weights chosen so every count is hand-checkable."""
    w_in = np.full((2, 1, 2, 2), 2)
    w_in[0, 0, 0, 0] = 0                              # one zero tap in channel 0
    w_ct = np.full((1, 1, 2, 2), 2)
    w_ct[0, 0, 1, 1] = 0                              # one zero tap in the transposed conv
    enc = [Layer("input", "input", (1, 3, 3), (2, 2, 2), w_in, P),
           Layer("dense", "dense", (8,), (1,), np.array([[2, 0, 2, 0, 4, 0, 2, 0]]), P)]
    post = [Layer("post1", "dense", (2,), (2,), np.array([[2, 4], [0, 6]]), P),
            Layer("post2", "dense", (2,), (4,), np.full((4, 2), 2), P),
            Layer("post3", "dense", (4,), (2,), np.array([[2, 2, 0, 0], [0, 0, 2, 2]]), P)]
    prior = [Layer(f"prior{i}", "dense", l.in_shape if i > 1 else (1,), l.out_shape,
                   l.weight if i > 1 else l.weight[:, 1:], P) for i, l in enumerate(post, 1)]
    dec = [Layer("dense", "dense", (1,), (4,), np.array([[2], [2], [2], [0]]), P),
           Layer("convT0", "convT", (1, 2, 2), (1, 4, 4), w_ct, P, stride=2, padding=0)]
    readout = Layer("readout", "readout", (1, 4, 4), (1, 3, 3), np.full((1, 1, 2, 2), 2),
                    NeuronParams(4096, 819, 2 ** 17 - 1), bias=np.array([0]))
    return DeployNet(kind="fsvae", image_shape=(1, 3, 3), T=2, latent=1, k=2, n_steps=S,
                     encoder=enc, decoder=dec, readout=readout, posterior=post, prior=prior,
                     sampler={"type": "pick", "k": 2, "T": 1})


def _spikes(neurons, events):
    """(N, neurons, S) uint8 with a spike at each (image, neuron, step)."""
    s = np.zeros((N, neurons, S), np.uint8)
    for e in events:
        s[e] = 1
    return s


def _records():
    return {"encoder/input": _spikes(8, [(0, 4, 1), (0, 4, 2), (0, 4, 3), (1, 0, 1),
                                         (1, 1, 2), (1, 1, 3)]),
            "encoder/dense": _spikes(1, [(0, 0, 2), (1, 0, 3)]),
            "latent/post1": _spikes(2, [(0, 0, 3), (1, 1, 4)]),
            "latent/post2": _spikes(4, [(0, 3, 2), (1, 3, 2)]),
            "latent/post3": _spikes(2, []),
            "sampler/z": _spikes(1, [(0, 0, 1), (0, 0, 2), (1, 0, 4)]),
            "decoder/dense": _spikes(4, [(0, 0, 2), (1, 0, 3), (1, 3, 3)]),
            "decoder/convT0": _spikes(16, [(0, 0, 3), (1, 5, 4)]),
            "readout_v": np.zeros((N, 9))}


def _x():
    x = np.zeros((N, 1, 3, 3), np.uint8)
    x[0] = 7
    x[0, 0, 0, 0] = 0                                 # image 0: all pixels but (0, 0)
    x[1, 0, 1, 1] = 200                               # image 1: the centre pixel only
    return torch.as_tensor(x)


def _rows(report):
    return {f"{s}/{r['name']}": r for s, st in report["stages"].items() for r in st["layers"]}


def test_synapses_and_fans_of_a_conv_with_a_zero_weight():
    net = _net()
    inp, ct, ro = net.encoder[0], net.decoder[1], net.readout
    assert synapses(inp) == 4 * (1 + 2 + 2 + 2) == 28
    fan_in, fan_out = prof._fans(inp)
    assert fan_in.tolist() == [3, 3, 3, 3, 4, 4, 4, 4]
    assert fan_out.reshape(3, 3).tolist() == [[1, 3, 2], [3, 7, 4], [2, 4, 2]]
    fan_in, fan_out = prof._fans(ct)                  # 2x2 stride 2: one output per tap
    assert synapses(ct) == 12 and fan_out.tolist() == [3, 3, 3, 3]
    assert fan_in.reshape(4, 4).tolist() == [[1, 1] * 2, [1, 0] * 2] * 2
    assert synapses(ro) == 36 and prof._fans(ro)[1].reshape(4, 4).max() == 4


def test_counts_match_hand_counts():
    rep = prof.profile(_net(), _records(), N, _x(), ann=False)
    assert rep["mode"] == "reconstruction" and rep["input_exact"]
    assert list(rep["stages"]) == ["encoder", "posterior", "sampler", "decoder", "readout"]
    r = _rows(rep)
    inp = r["encoder/input"]
    assert (inp["neurons"], inp["synapses"], inp["synapses_dense"]) == (8, 28, 72)
    assert (inp["fan_in_mean"], inp["fan_in_max"]) == (3.5, 4)
    assert (inp["fan_out_mean"], inp["fan_out_max"]) == (28 / 9, 7)
    # graded input: (27 for image 0 + 7 for image 1) x 5 steps, over 2 images
    assert inp["synops_per_image"] == (27 + 7) * 5 / 2
    expect = {  # layer: (spikes per image, SynOps per image)
        "encoder/input": (3, 85), "encoder/dense": (1, 2), "posterior/post1": (1, 4),
        "posterior/post2": (1, 4), "posterior/post3": (0, 1), "sampler/and": (1.5, 0),
        "decoder/dense": (1.5, 4.5), "decoder/convT0": (1, 4.5), "readout/readout": (0, 2.5)}
    assert {k: (v["spikes_per_image"], v["synops_per_image"]) for k, v in r.items()} == expect
    assert r["posterior/post1"]["sources"] == ["encoder/dense", "sampler/z"]
    assert r["encoder/input"]["neuron_updates_per_image"] == 8 * S
    # the AND neurons: k = 2 per latent on cores, one synapse each from its candidate
    a = r["sampler/and"]
    assert (a["neurons"], a["synapses"], a["on_cores"]) == (2, 2, True)
    assert a["neuron_updates_per_image"] == 2 * S and a["sources"] == ["latent/post3"]
    # z's consumers hold the latent's weights once per AND neuron: 2 of post1's 3 synapses
    # and all 3 of the decoder dense's come from z, so they count twice
    assert (r["posterior/post1"]["synapses"], r["posterior/post1"]["synapses_dense"]) == (5, 6)
    assert (r["decoder/dense"]["synapses"], r["decoder/dense"]["synapses_dense"]) == (6, 8)
    assert inp["firing_rate"] == 3 / (8 * S)
    t = rep["totals"]
    assert t["synops_per_image"] == 107.5 and t["spikes_per_image"] == 10
    assert t["neuron_updates_per_image"] == (8 + 1 + 2 + 4 + 2 + 2 + 4 + 16 + 9) * S


def test_cores_and_energy_arithmetic():
    rep = prof.profile(_net(), _records(), N, _x(), neurons_per_core=4, synapse_mem_bytes=16,
                       bytes_per_synapse=2, cores_per_chip=5, ann=False)
    cores = {k: v["cores"] for k, v in _rows(rep).items()}
    assert cores == {"encoder/input": 4, "encoder/dense": 1, "posterior/post1": 1,
                     "posterior/post2": 1, "posterior/post3": 1, "sampler/and": 1,
                     "decoder/dense": 1, "decoder/convT0": 4, "readout/readout": 5}
    assert rep["placement"]["cores"] == 19 and rep["placement"]["chips"] == 4
    e = rep["energy"]["snn"]
    assert e["synops_pj"] == pytest.approx(107.5 * 23.6)
    assert e["neuron_pj"] == pytest.approx(10 * 81 + (240 - 10) * 52)
    assert e["spike_pj"] == pytest.approx(10 * 1.7)
    assert e["total_pj"] == pytest.approx(107.5 * 23.6 + 10 * 81 + 230 * 52 + 17)
    assert rep["energy"]["label"] == "estimate" and rep["energy"]["ann"] is None
    b = rep["energy"]["loihi2_upper_bound"]        # Hala Point: 2600 W / 380 T, / 240 T
    assert b["total_pj"] == pytest.approx(107.5 * 2600 / 380 + 240 * 2600 / 240)
    assert any("Davies" in a for a in rep["assumptions"])


def test_generation_mode_and_missing_images():
    net, rec = _net(), _records()
    gen = {k: v for k, v in rec.items() if not k.startswith(("encoder/", "latent/post"))}
    gen.update({"latent/prior1": rec["latent/post1"], "latent/prior2": rec["latent/post2"],
                "latent/prior3": rec["latent/post3"]})
    rep = prof.profile(net, gen, N, ann=False)
    assert rep["mode"] == "generation" and list(rep["stages"])[0] == "prior"
    assert _rows(rep)["prior/prior1"]["synops_per_image"] == 3 * 2 / 2   # z only, fan-out 2
    up = prof.profile(net, rec, N, ann=False)      # no images: every pixel counts
    assert not up["input_exact"] and any("upper bound" in a for a in up["assumptions"])
    assert _rows(up)["encoder/input"]["synops_per_image"] == 28 * S
    with pytest.raises(ValueError, match="latent/prior1"):
        prof.profile(net, {"sampler/z": rec["sampler/z"]}, N, ann=False)


def test_ann_macs_of_known_layers():
    cfg = make_config("mnist-small", "fsvae", TINY)          # ann_latent 32, 28x28, enc 8,16
    gen, rec = ann_macs(cfg, "generation"), ann_macs(cfg.to_dict(), "reconstruction")
    assert gen["layers"]["decoder.fc"] == 32 * 16 * 7 * 7
    assert gen["layers"]["decoder.body.0"] == 16 * 7 * 7 * 8 * 4 * 4      # convT: per input
    assert rec["layers"]["encoder.0"] == 8 * 14 * 14 * 1 * 3 * 3          # conv: per output
    assert "encoder.0" not in gen["layers"] and "mu" in rec["layers"]
    assert "logvar" not in rec["layers"]                                  # inference uses mu
    assert rec["total"] == gen["total"] + sum(v for k, v in rec["layers"].items()
                                              if not k.startswith("decoder"))


def test_emulator_run_totals_are_consistent(tmp_path):
    torch.manual_seed(0)
    net = deploy.from_model(build_model(make_config("mnist-small", "fsvae", TINY)).eval())
    x = data.load_images("mnist", "test").tensor(torch.arange(2))
    _, rec = ReferenceSimulator(net).run(x, 2, 3, record=True)
    rep = prof.profile(net, rec, 2, x)
    assert rep["mode"] == "reconstruction"
    for st in rep["stages"].values():
        for key in prof._COUNTS:
            assert st["totals"][key] == pytest.approx(sum(r[key] for r in st["layers"]))
    for key in prof._COUNTS:
        assert rep["totals"][key] == pytest.approx(
            sum(st["totals"][key] for st in rep["stages"].values()))
    layers = {l.name: l for l in net.encoder + net.posterior}
    for r in rep["stages"]["encoder"]["layers"] + rep["stages"]["posterior"]["layers"]:
        m = layers[r["name"]].spec.unrolled(layers[r["name"]])
        nonzero = np.count_nonzero(m if isinstance(m, np.ndarray) else m.data)
        if r["name"] == net.posterior[0].name:     # z's columns, once per AND neuron (k)
            from_z = np.count_nonzero(np.asarray(net.posterior[0].weight)[:, -net.latent:])
            assert r["synapses"] == nonzero + (net.k - 1) * from_z
        else:
            assert r["synapses"] == nonzero
            assert r["fan_in_mean"] * r["neurons"] == pytest.approx(r["synapses"])
        key = ("encoder/" if r["stage"] == "encoder" else "latent/") + r["name"]
        assert r["spikes_per_image"] == rec[key].sum().item() / 2
    json.dumps(rep)                                   # plain numbers and text only
    ann = rep["energy"]["ann"]
    assert ann["total_pj"] == pytest.approx(ann["macs"] * 4.6)
    assert "estimate" in prof.format_table(rep) and "convT1" in prof.format_table(rep)
    out = tmp_path / "profile.png"
    prof.save_chart(rep, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["profile.png"]
