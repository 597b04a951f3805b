"""The acceptance test of the phase clock's Lava graph: only Lava's stock neuro-core processes
with their stock fixed_pt models, host I/O only at the edges, and spike for spike the
step-by-step reference (`neurovae.sim.reference`), images bit-identical.
"""
import numpy as np
import pytest
import torch
from lava.proc.conv.models import PyConvModelFixed
from lava.proc.conv.process import Conv
from lava.proc.dense.models import PyDelayDenseModelBitAcc, PyDenseModelBitAcc
from lava.proc.dense.process import DelayDense, Dense
from lava.proc.io.source import PySendModelFixed, RingBuffer
from lava.proc.lif.models import PyLifResetModelBitAcc
from lava.proc.lif.process import LIFReset
from lava.proc.monitor.models import PyMonitorModel
from lava.proc.monitor.process import Monitor
from lava.proc.sparse.models import PySparseModelBitAcc
from lava.proc.sparse.process import Sparse

from conftest import TINY
from neurovae import data, deploy
from neurovae.config import make_config
from neurovae.hw import sampling
from neurovae.hw.clock import LOOP_LATENCY, reset_offset
from neurovae.hw.readout import readout_image
from neurovae.loihi_runtime import run
from neurovae.loihi_runtime.graph import LavaGraph, run_config
from neurovae.models import build_model
from neurovae.sim.reference import ReferenceSimulator

# Lava's stock neuro-core processes and the stock fixed_pt model each must run
NEURO_CORE = {LIFReset: PyLifResetModelBitAcc, Dense: PyDenseModelBitAcc,
              Sparse: PySparseModelBitAcc, DelayDense: PyDelayDenseModelBitAcc}
NEURO_CORE[Conv] = PyConvModelFixed      # allowed, though the graph unrolls convs to Sparse
# the declared host I/O at the graph's edges (sources and a voltage sink)
HOST_IO = {RingBuffer: PySendModelFixed, Monitor: PyMonitorModel}
SYNAPSES = (Dense, Sparse, DelayDense)
MODES = ["reconstruct", "generate"]
KINDS = ["fsvae", "esvae"]


@pytest.fixture(scope="module")
def nets():
    out = {}
    for kind in KINDS:
        torch.manual_seed(11)
        out[kind] = deploy.from_model(
            build_model(make_config("mnist-small", kind, TINY)).eval(), seed=5)
    return out


def _images(n, first=0):
    return data.load_images("mnist", "test").tensor(torch.arange(first, first + n))


def _graph(net, mode, n=2, seed=3, record=False):
    x = _images(n).numpy() if mode == "reconstruct" else None
    return LavaGraph(net, n, seed, x, record=record)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", MODES)
def test_compiled_graph_is_only_stock_lava_processes_and_models(nets, kind, mode):
    graph = _graph(nets[kind], mode)
    cfg = run_config(False)
    assert not getattr(cfg, "exception_proc_model_map", None)
    executable = graph.readout.compile(cfg)
    procs = list(executable.process_list)
    assert {id(p) for p in procs} == {id(p) for p in graph.procs}   # nothing hidden
    kinds = set()
    for p in procs:
        cls, model = type(p), p.model_class
        kinds.add(cls)
        assert cls in NEURO_CORE or cls in HOST_IO, f"{p.name}: {cls} is not allowed"
        assert cls.__module__.startswith("lava.proc."), p.name
        assert model.__module__.startswith("lava.proc."), (p.name, model)
        assert model is {**NEURO_CORE, **HOST_IO}[cls], (p.name, model)
        for part in (cls.__module__, model.__module__):
            assert "neurovae" not in part and "loihi_runtime" not in part
    # neurons and synapses all sit on neuro-cores; the host only feeds bytes / selectors / z
    assert LIFReset in kinds and Dense in kinds and Sparse in kinds
    assert (DelayDense in kinds) == (kind == "esvae" and mode == "reconstruct")
    sources = {p.name for p in procs if type(p) in HOST_IO}
    want = {("fsvae", "reconstruct"): {"input_bytes", "selector"},
            ("fsvae", "generate"): {"selector"},
            ("esvae", "reconstruct"): {"input_bytes", "selector"},
            ("esvae", "generate"): {"prior_z"}}[kind, mode]
    assert sources == want


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", MODES)
def test_every_population_runs_on_its_phase(nets, kind, mode):
    """Each LIFReset resets at its window's first step (reset_offset of its hop), and every
    synapse joins hop h to hop h + 1, except FSVAE's feedback z -> L1 (LOOP_LATENCY)."""
    net = nets[kind]
    graph = _graph(net, mode)
    S = net.n_steps
    pops = [p for p in graph.procs if isinstance(p, LIFReset)]
    for p in pops:
        assert p.proc_params["reset_interval"] == S
        assert p.proc_params["reset_offset"] == reset_offset(graph.hops[p.name], S), p.name
    feedback = 0
    for conn in (p for p in graph.procs if isinstance(p, SYNAPSES)):
        (src,) = conn.s_in.in_connections
        (dst,) = conn.a_out.out_connections
        dst = dst.process
        if isinstance(src.process, RingBuffer):
            assert graph.hops[dst.name] == 1
            continue
        step = graph.hops[dst.name] - graph.hops[src.process.name]
        if step != 1:
            assert kind == "fsvae" and step == 1 - LOOP_LATENCY, conn.name
            assert src.process.name == "sampler_and" and dst.name.startswith("latent_")
            feedback += 1
    assert feedback == (kind == "fsvae")
    assert graph.total_steps == graph.n * S + graph.hops["readout"] == \
        graph.n * S + graph.readout_hop
    # the AND neurons' selector enters straight into a_in, at the AND population's hop
    for src in (p for p in graph.procs if isinstance(p, RingBuffer) and p.name == "selector"):
        (port,) = src.s_out.out_connections
        assert port.name == "a_in" and port.process.name.startswith("sampler_")


@pytest.mark.parametrize("kind", KINDS)
def test_selector_is_one_hot_where_it_may_sample(nets, kind):
    net = nets[kind]
    if kind == "esvae":
        graph = _graph(net, "reconstruct", n=2)
        group, start = 2 * net.T - 1, net.sampler["sample_start"]
    else:
        graph = _graph(net, "generate", n=2)
        group, start = net.k, 0
    sel = next(p for p in graph.procs if p.name == "selector").data.init
    h = graph.hops[next(p.name for p in graph.procs if p.name.startswith("sampler_"))]
    S, T = net.n_steps, net.sampler["T"]
    per_latent = sel.reshape(net.latent, group, -1).sum(1)
    for n in range(2):
        for s in range(S):
            want = sampling.AND_WEIGHT if start <= s < start + T else 0
            assert (per_latent[:, n * S + h + s] == want).all(), (n, s)
    assert sel.sum() == 2 * T * net.latent * sampling.AND_WEIGHT     # nothing else


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", MODES)
def test_lava_sim_equals_reference_spike_for_spike(nets, kind, mode):
    """lava-sim and the step-by-step reference: every record and every image, exactly;
    images 2..4 of the run (first_image), so the image clock is checked too."""
    net = nets[kind]
    x = _images(3) if mode == "reconstruct" else None
    ref, rec_ref = ReferenceSimulator(net).run(x, 3, 21, first_image=2, record=True)
    got, rec_got = run(net, "lava-sim", x_bytes=x, n=3, seed=21, record=True, first_image=2)
    v = rec_ref.pop("readout_v")
    assert set(rec_ref) == set(rec_got)
    assert sum(int(r.sum()) for r in rec_ref.values()) > 100     # real activity compared
    assert rec_ref["sampler/z"].sum() > 0
    for name, spikes in rec_ref.items():
        assert rec_got[name].dtype == np.uint8 and rec_got[name].shape == spikes.shape, name
        assert np.array_equal(spikes.numpy(), rec_got[name]), name
    assert torch.equal(ref, got)
    assert torch.equal(got, readout_image(v, net.readout.out_shape))
