"""NIR export: structure, exact parameters, the skipped list, dynamics mapping, safe writes."""
import dataclasses
import os
import stat
import tempfile

import numpy as np
import pytest
import torch

nir = pytest.importorskip("nir")

from neurovae import deploy  # noqa: E402
from neurovae.config import make_config  # noqa: E402
from neurovae.export.nir_export import (NirExportError, TAU_NO_DECAY, to_nir,  # noqa: E402
                                        write_nir)
from neurovae.models import build_model  # noqa: E402
from neurovae.hw.neuron import NeuronParams, lif_step  # noqa: E402

ENCODER_EDGES = [("input", "input_conv"), ("input_conv", "input_lif"),
                 ("input_lif", "conv1_conv"), ("conv1_conv", "conv1_lif"),
                 ("conv1_lif", "flatten"), ("flatten", "dense_affine"),
                 ("dense_affine", "dense_lif"), ("dense_lif", "output")]


@pytest.fixture(scope="module")
def nets():
    out = {}
    for kind in ("fsvae", "esvae"):
        torch.manual_seed(0)
        out[kind] = deploy.from_model(build_model(make_config("mnist-small", kind)).eval())
    return out


@pytest.fixture(scope="module")
def written(nets, tmp_path_factory):
    """Each net written into its own folder and read back."""
    out = {}
    for kind, net in nets.items():
        path = tmp_path_factory.mktemp("nir") / f"{kind}.nir"
        skipped = write_nir(net, path)
        out[kind] = (net, nir.read(path), skipped, path)
    return out


def _synapse_layers(net):
    """(stage name, synapse node name, Layer) for every exported synapse."""
    rows = [("encoder", f"{l.name}_{'affine' if l.kind == 'dense' else 'conv'}", l)
            for l in net.encoder]
    for stage, layers in (("posterior", net.posterior), ("prior", net.prior)):
        rows += [(stage, f"{l.name}_affine", l) for l in layers]
    rows.append(("decoder", "dense_affine", net.decoder[0]))
    rows.append(("readout", "readout_conv", net.readout))
    return rows


@pytest.mark.parametrize("kind", ["fsvae", "esvae"])
def test_graph_structure_round_trips(written, kind):
    net, g, skipped, path = written[kind]
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == [path.name]
    stages = ["encoder", "posterior", "prior", "decoder", "readout"] if kind == "fsvae" \
        else ["encoder", "decoder", "readout"]
    assert g.metadata["stages"] == ",".join(stages)
    assert all(isinstance(g.nodes[s], nir.NIRGraph) for s in stages)
    enc = g.nodes["encoder"]
    assert enc.edges == ENCODER_EDGES
    types = {"input": nir.Input, "input_conv": nir.Conv2d, "input_lif": nir.CubaLIF,
             "conv1_conv": nir.Conv2d, "conv1_lif": nir.CubaLIF, "flatten": nir.Flatten,
             "dense_affine": nir.Affine, "dense_lif": nir.CubaLIF, "output": nir.Output}
    assert set(enc.nodes) == set(types)
    for name, t in types.items():
        assert type(enc.nodes[name]) is t, name
    assert list(enc.nodes["input"].input_type["input"]) == list(net.image_shape)
    assert list(enc.nodes["output"].output_type["output"]) == [net.latent]
    assert list(enc.nodes["flatten"].output_type["output"]) == [net.encoder[-1].n_in]
    assert ("image", "encoder") in g.edges and ("z", "decoder") in g.edges
    assert ("readout_spikes", "readout") in g.edges and ("readout", "readout_v") in g.edges
    assert isinstance(g.nodes["readout"].nodes["readout_lif"], nir.CubaLI)
    if kind == "fsvae":
        for e in [("encoder", "posterior_x"), ("z", "posterior_z"), ("posterior_x", "posterior"),
                  ("posterior_z", "posterior"), ("posterior", "posterior_candidates"),
                  ("z", "prior"), ("prior", "prior_candidates")]:
            assert e in g.edges
        for s, layers in (("posterior", net.posterior), ("prior", net.prior)):
            sub = g.nodes[s]
            assert [type(sub.nodes[f"{l.name}_{x}"]) for l in layers
                    for x in ("affine", "lif")] == [nir.Affine, nir.CubaLIF] * 3
            assert list(sub.nodes["output"].output_type["output"]) == [net.latent * net.k]
        # the two embeddings sum to the concatenation [encoder spikes | z]
        x, z = np.arange(1.0, net.latent + 1.0), np.arange(101.0, 101.0 + net.latent)
        px, pz = g.nodes["posterior_x"], g.nodes["posterior_z"]
        np.testing.assert_array_equal(px.weight @ x + px.bias + pz.weight @ z + pz.bias,
                                      np.concatenate([x, z]))
    else:
        assert "posterior" not in g.nodes and ("encoder", "encoder_spikes") in g.edges


@pytest.mark.parametrize("kind", ["fsvae", "esvae"])
def test_weights_biases_and_neurons_are_exact(written, kind):
    net, g, _, _ = written[kind]
    for stage, node_name, layer in _synapse_layers(net):
        node = g.nodes[stage].nodes[node_name]
        w = np.asarray(layer.weight)
        np.testing.assert_array_equal(node.weight, w / 64)
        np.testing.assert_array_equal(node.weight * 64, w)        # int/64 exactly
        if isinstance(node, nir.Conv2d):
            assert tuple(node.stride) == (layer.stride,) * 2
            assert tuple(node.padding) == (layer.padding,) * 2
            assert tuple(node.dilation) == (1, 1) and node.groups == 1
        bias = np.zeros(w.shape[0]) if layer.bias is None else np.asarray(layer.bias) / 64
        np.testing.assert_array_equal(node.bias, bias)   # i_decay = 4096: bias in synapse
        lif = g.nodes[stage].nodes[f"{layer.name}_lif"]
        p = layer.neuron
        assert lif.tau_syn.shape == tuple(layer.out_shape)
        np.testing.assert_array_equal(lif.tau_syn, 4096 / p.i_decay)
        np.testing.assert_array_equal(lif.tau_mem, 4096 / p.v_decay)
        np.testing.assert_array_equal(lif.r, lif.tau_mem)
        np.testing.assert_array_equal(lif.w_in, lif.tau_syn)
        np.testing.assert_array_equal(lif.v_leak, 0)
        if isinstance(lif, nir.CubaLIF):
            np.testing.assert_array_equal(lif.v_threshold, p.vth_mant / 64)
            np.testing.assert_array_equal(lif.v_reset, 0)
        else:
            assert layer is net.readout


def test_skipped_parts_are_named(written):
    for kind, (net, g, skipped, _) in written.items():
        names = [s.split(":")[0] for s in skipped]
        assert "sampler" in names and "readout/tanh" in names
        assert "decoder/convT0" in names and "decoder/convT1" in names
        assert ("prior_linear" in names) == (kind == "esvae")
        assert all(len(s.split(":", 1)[1].strip()) > 20 for s in skipped)   # with reasons
        assert g.metadata["skipped"] == "\n".join(skipped)
    assert "k-candidate" in written["fsvae"][2][2]
    assert "window sampler" in " ".join(written["esvae"][2])


def _euler(node, affine, spikes):
    """Forward Euler (dt = 1) of the exported Affine + CubaLIF equations, without firing,
    with v taking this step's current (Loihi's order, the one NIR's Lava importer maps to)."""
    i = np.zeros(node.tau_syn.shape)
    v, vs = np.zeros_like(i), []
    for s in spikes:
        x = affine.weight @ s + affine.bias
        i = i + (node.w_in * x - i) / node.tau_syn
        v = v + (node.v_leak - v + node.r * i) / node.tau_mem
        vs.append(v.copy())
    return np.array(vs)


@pytest.mark.parametrize("i_decay,v_decay", [(4096, 1024), (1024, 3072), (0, 0), (2048, 4096)])
def test_cubalif_mapping_reproduces_loihi_dynamics(nets, i_decay, v_decay):
    """Euler on the exported CubaLIF equals Loihi's integer CUBA up to Loihi's decays
    truncating toward zero (< 1/4096 per step each); gains r = 1, w_in = 1 would not."""
    net = nets["fsvae"]
    p = NeuronParams(i_decay, v_decay, 2 ** 17 - 1)            # never fires
    layer = dataclasses.replace(net.posterior[0], neuron=p)
    net = dataclasses.replace(net, posterior=[layer] + net.posterior[1:])
    post = to_nir(net)[0]["posterior"]
    affine, node = post.nodes["post1_affine"], post.nodes["post1_lif"]
    if i_decay == 0:
        assert np.all(node.tau_syn == TAU_NO_DECAY)
    if i_decay != 4096:        # bias moves from the synapse into the leak potential
        assert np.all(affine.bias == 0)
        np.testing.assert_allclose(node.v_leak / node.tau_mem, layer.bias / 64, rtol=1e-12)
    rng = np.random.default_rng(0)
    steps = 24
    spikes = (rng.random((steps, layer.n_in)) < 0.3).astype(np.int64)
    u = v = np.zeros(layer.n_out, dtype=np.int64)
    v_loihi = []
    for s in spikes:
        u, v, fired = lif_step(u, v, layer.weight @ s, p, np.asarray(layer.bias))
        assert not fired.any()
        v_loihi.append(v / 4096)
    v_nir = _euler(node, affine, spikes)
    v_loihi = np.array(v_loihi)
    np.testing.assert_allclose(v_nir, v_loihi, rtol=1e-9, atol=2 * steps / 4096)
    assert np.abs(v_loihi).max() > 5        # far above the tolerance: not vacuous


def _no_files(folder):
    return not folder.exists() or list(folder.iterdir()) == []


def test_unwritable_destinations_raise_and_leave_nothing(nets, tmp_path, monkeypatch):
    net = nets["esvae"]
    with pytest.raises(NirExportError, match="does not exist"):
        write_nir(net, tmp_path / "missing" / "m.nir")
    assert _no_files(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(NirExportError, match="cannot write NIR file"):
        write_nir(net, blocker / "m.nir")                # the "folder" is a file
    assert blocker.read_text() == "not a folder" and len(list(tmp_path.iterdir())) == 1

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.geteuid() == 0:       # root writes anyway: fail the temp file as the OS would
            def denied(*a, **k):
                raise PermissionError(13, "Permission denied")
            monkeypatch.setattr(tempfile, "mkstemp", denied)
        with pytest.raises(NirExportError, match="ermission denied"):
            write_nir(net, ro / "m.nir")
    finally:
        monkeypatch.undo()
        ro.chmod(stat.S_IRWXU)
    assert _no_files(ro)


def test_failed_write_leaves_previous_file_untouched(nets, tmp_path, monkeypatch):
    path = tmp_path / "m.nir"
    write_nir(nets["esvae"], path)
    before = path.read_bytes()

    def half_write(filename, graph, **kw):
        with open(filename, "wb") as f:
            f.write(b"\x89HDF partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(nir, "write", half_write)
    with pytest.raises(NirExportError, match="No space left"):
        write_nir(nets["fsvae"], path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.nir"]       # no temp file left
