"""`inspect --hardware`: every process of the deployed Lava graph, its class and placement.

The report must describe the graph `generate` and `reconstruct` actually build, and say
honestly which processes cannot sit on a neuro-core today and why.
"""
import json
import subprocess
import sys

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
    drive = None
    if mode == "reconstruct":
        import numpy as np
        drive = np.zeros((net.encoder[0].n_out, net.n_steps), np.int32)
    graph = LavaGraph(net, 1, net.seed, drive)
    assert [r["name"] for r in report["processes"]] == [p.name for p in graph.procs]
    assert all(KEYS <= set(r) for r in report["processes"])
    by_class = {}
    for r in report["processes"]:
        by_class.setdefault(r["class"].rsplit(".", 1)[1], []).append(r)
    # neurons: one row per population, with the layer's size; every layer's synapses appear
    layers = net.encoder * (mode == "reconstruct") + net.decoder
    if kind == "fsvae":
        layers = layers + net.loop(mode == "generate")
    assert sum(r["neurons"] for r in by_class["LIFReset"]) == sum(l.n_out for l in layers)
    syn = sum(r["synapses"] for c in ("Dense", "Sparse") for r in by_class.get(c, []))
    hidden = [l for l in layers + [net.readout] if not l.spec.host_drive]
    assert syn == sum(l.spec.synapse_count(l) for l in hidden)
    # today's honest placement: the gated populations, the sampler and the readout are host
    for r in by_class["LIFReset"]:
        assert r["placement"] == "host" and "PyGatedLifResetModel" in r["why"]
    assert {r["placement"] for c in ("Dense", "Sparse") for r in by_class.get(c, [])} == {
        "neuro-core"}
    host = {r["name"] for r in report["processes"] if r["placement"] == "host"}
    assert {"sampler", "readout"} <= host
    assert {x["name"] for x in report["not_on_neuro_cores"]} == host
    assert ("input_drive" in {r["name"] for r in report["processes"]
                              if r["placement"] == "host-io"}) == (mode == "reconstruct")
    # traffic: every spike a host population sends into an on-chip synapse crosses
    pops = {r["name"]: r for r in by_class["LIFReset"]}
    assert report["host_bits_per_step"] >= sum(r["bits_out_per_step"] for r in pops.values())
    assert report["host_bits_per_image"] == report["host_bits_per_step"] * net.n_steps
    text = format_report(report)
    assert "not on a neuro-core" in text and "host<->chip traffic" in text


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
