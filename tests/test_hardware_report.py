"""`inspect --hardware`: every process of the deployed Lava graph, its class and placement.

The report must describe the graph `generate` and `reconstruct` actually build: every neuron
and synapse a stock Lava neuro-core process, only the host sources at the edge host-io.
"""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import TINY
from neurovae import deploy
from neurovae.config import make_config
from neurovae.export import write
from neurovae.loihi_runtime.graph import LavaGraph
from neurovae.loihi_runtime.hardware_report import describe, format_report
from neurovae.models import build_model

KEYS = {"name", "class", "placement", "neurons", "synapses", "bits_in_per_step",
        "bits_out_per_step"}


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp("hw")
    out = {}
    for kind in ("fsvae", "esvae"):
        torch.manual_seed(0)
        net = deploy.from_model(build_model(make_config("mnist-small", kind, TINY)).eval())
        write(net, root / f"{kind}.net")
        out[kind] = (net, root / f"{kind}.net")
    return out


@pytest.mark.parametrize("kind", ["fsvae", "esvae"])
@pytest.mark.parametrize("mode", ["reconstruct", "generate"])
def test_report_lists_every_process_of_the_run_graph(nets, kind, mode):
    net, _ = nets[kind]
    report = describe(net, mode)
    x = np.zeros((1, *net.image_shape), np.uint8) if mode == "reconstruct" else None
    graph = LavaGraph(net, 1, net.seed, x)
    assert [r["name"] for r in report["processes"]] == [p.name for p in graph.procs]
    assert all(KEYS <= set(r) for r in report["processes"])
    by_class = {}
    for r in report["processes"]:
        by_class.setdefault(r["class"].rsplit(".", 1)[1], []).append(r)
    # neurons: one LIFReset per layer with its size, plus the AND neurons; all synapses
    layers = net.encoder * (mode == "reconstruct") + net.decoder + [net.readout]
    if kind == "fsvae":
        layers = layers + net.loop(mode == "generate")
    and_neurons = {"fsvae": net.latent * net.k, "esvae": net.latent * (2 * net.T - 1)}[kind]
    and_neurons *= not (kind == "esvae" and mode == "generate")
    assert sum(r["neurons"] for r in by_class["LIFReset"]) == \
        sum(l.n_out for l in layers) + and_neurons
    syn = sum(r["synapses"] for c in ("Dense", "Sparse") for r in by_class.get(c, []))
    fsvae_loop = kind == "fsvae"
    repeat = {"fsvae": net.k, "esvae": 2 * net.T - 1 if mode == "reconstruct" else 1}[kind]
    want = sum(l.spec.synapse_count(l) for l in layers)
    dec0 = net.decoder[0].spec.synapse_count(net.decoder[0])
    want += dec0 * (repeat - 1)                       # latent weights per AND neuron
    if fsvae_loop:
        l1 = np.asarray(net.loop(mode == "generate")[0].weight)
        want += int(np.count_nonzero(l1[:, -net.latent:])) * (net.k - 1) + and_neurons
    assert syn == want
    assert sum(r["synapses"] for r in by_class.get("DelayDense", [])) == \
        (and_neurons if kind == "esvae" else 0)
    # every neuron and synapse on a neuro-core; only the host sources at the edge are not
    assert {r["placement"] for c in ("LIFReset", "Dense", "Sparse", "DelayDense")
            for r in by_class.get(c, [])} == {"neuro-core"}
    host = {r["name"] for r in report["processes"] if r["placement"] != "neuro-core"}
    assert {r["placement"] for r in report["processes"]} <= {"neuro-core", "host-io"}
    assert {x["name"] for x in report["not_on_neuro_cores"]} == host
    assert all(x["why"] for x in report["not_on_neuro_cores"])
    assert set(by_class) - {"RingBuffer"} <= {"LIFReset", "Dense", "Sparse", "DelayDense"}
    sources = {("fsvae", "reconstruct"): {"input_bytes", "selector"},
               ("fsvae", "generate"): {"selector"},
               ("esvae", "reconstruct"): {"input_bytes", "selector"},
               ("esvae", "generate"): {"prior_z"}}[kind, mode]
    assert host == sources
    # traffic: bytes 8 bits per pixel, selectors 1 bit per AND neuron, prior z C bits, per
    # step; the readout's 24-bit voltages once per image
    rows = {r["name"]: r for r in report["processes"]}
    pixels = int(np.prod(net.image_shape))
    bits = {"input_bytes": 8 * pixels, "selector": and_neurons, "prior_z": net.latent}
    for name in sources:
        assert rows[name]["bits_out_per_step"] == bits[name]
        assert rows[name]["bits_in_per_step"] == 0
    assert report["host_bits_per_step"] == sum(bits[n] for n in sources)
    assert report["host_bits_per_image"] == \
        report["host_bits_per_step"] * net.n_steps + 24 * net.readout.n_out
    text = format_report(report)
    assert "not on a neuro-core" in text and "host<->chip traffic" in text
    assert "host-io" in text and "once per image" in text


def test_cli_inspect_hardware_json(nets, tmp_path):
    _, path = nets["esvae"]
    out = tmp_path / "hw.json"
    r = subprocess.run([sys.executable, "-m", "neurovae.cli", "inspect", str(path),
                        "--hardware", "--mode", "generate", "--json", str(out)],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert report["mode"] == "generate" and report["processes"]
    assert all(KEYS <= set(p) for p in report["processes"])
    assert "host_bits_per_image" in report and "placement:" in r.stdout
    bad = subprocess.run([sys.executable, "-m", "neurovae.cli", "inspect", str(path),
                          "--json", str(tmp_path / "x.json")], capture_output=True, text=True,
                         timeout=240)
    assert bad.returncode == 2 and "--hardware" in bad.stderr
    assert not (tmp_path / "x.json").exists()
