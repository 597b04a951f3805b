"""Export: the .net file round-trips, netx runs its encoder stage exactly, export_model
reports the float and deployed MSE, the CLI runs."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from neurovae import data, deploy
from neurovae.hw.drive import input_drive
from neurovae.sim.reference import ReferenceSimulator as Emulator
from neurovae.export import NetFormatError, load, write, write_stage
from neurovae.exporting import export_model
from neurovae.models import build_model
from neurovae.train import train

from conftest import TINY

CLI = [sys.executable, "-m", "neurovae.cli"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from neurovae.config import make_config
    root = tmp_path_factory.mktemp("proj")
    train(make_config("mnist-small", "fsvae", TINY), root / "runs" / "tiny", progress=False,
          max_batches=2)
    return root


def _test_images(n):
    return data.load_images("mnist", "test").tensor(torch.arange(n))


def test_round_trip_gives_identical_outputs(tmp_path, tiny_cfg):
    for kind in ("fsvae", "esvae"):
        torch.manual_seed(1)
        net = deploy.from_model(build_model(tiny_cfg(kind)).eval(), seed=7)
        write(net, tmp_path / f"{kind}.net")
        back = load(tmp_path / f"{kind}.net")
        assert back.kind == kind and back.seed == 7 and back.n_steps == net.n_steps
        x = _test_images(3)
        a, _ = Emulator(net).run(x, 3, 5)
        b, _ = Emulator(back).run(x, 3, 5)
        g1, _ = Emulator(net).run(None, 3, 5)
        g2, _ = Emulator(back).run(None, 3, 5)
        assert torch.equal(a, b) and torch.equal(g1, g2)


def test_deploy_mode_equals_float_model_spike_for_spike(tiny_cfg):
    for kind in ("fsvae", "esvae"):
        torch.manual_seed(2)
        model = build_model(tiny_cfg(kind)).eval()
        x = _test_images(4)
        img, rec = Emulator(deploy.from_model(model)).run(x, 4, 9, record=True)
        with torch.no_grad():
            z = model.latent(x, 9, torch.arange(4))
            ref = model.reconstruct(x, seed=9)
        assert z.sum() > 0 and torch.equal(rec["sampler/z"].float(), z)
        assert torch.allclose(img.float(), ref, atol=1e-6)


def test_weight_norm_folds_exactly_into_the_deployed_weights(tiny_cfg):
    """Weight normalization (w = g v / |v|) trains on the quantized product, so the export
    holds exactly the weights the float model runs: spike for spike, in both models."""
    from neurovae.models.spiking import WeightNorm, qweight
    for kind in ("fsvae", "esvae"):
        torch.manual_seed(3)
        model = build_model(tiny_cfg(kind, "weight_norm=true")).eval()
        norms = [m for m in model.modules() if isinstance(m, WeightNorm)]
        synapses = [m for m in model.modules() if hasattr(m, "pre_hook_fx")]
        assert norms and len(norms) == len(synapses)       # every synapse is normalized
        with torch.no_grad():                   # gains away from |v|: the norm matters
            for m in norms:
                m.gain.mul_(torch.empty_like(m.gain).uniform_(0.5, 2.0))
        net = deploy.from_model(model)
        w_first = torch.as_tensor(net.encoder[0].weight, dtype=torch.float64) / 64
        assert torch.equal(w_first, qweight(model.encoder.input).double()[..., 0])
        x = _test_images(4)
        img, rec = Emulator(net).run(x, 4, 9, record=True)
        with torch.no_grad():
            z = model.latent(x, 9, torch.arange(4))
            ref = model.reconstruct(x, seed=9)
        assert z.sum() > 0 and torch.equal(rec["sampler/z"].float(), z)
        assert torch.allclose(img.float(), ref, atol=1e-6)


def test_netx_runs_the_exported_encoder_exactly(tmp_path, tiny_cfg):
    from neurovae.loihi_runtime import backends  # noqa: F401  (imports Lava's runtime safely)
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    torch.manual_seed(3)
    net = deploy.from_model(build_model(tiny_cfg("fsvae")).eval())
    write_stage(net, "encoder", tmp_path / "enc.net")
    x = _test_images(1)
    _, rec = Emulator(net).run(x, 1, 0, record=True)
    S = net.n_steps
    # phase clock: the drive acts at every step of the input layer's window; each of the
    # encoder's further connections adds one global step, so the output's local step s is
    # Lava's step s + hops (a single image: no window resets needed)
    hops = len(net.encoder) - 1
    c, h, w = net.encoder[0].out_shape
    drive = input_drive(net.encoder[0], x)[0].numpy().reshape(c, h, w).transpose(2, 1, 0)
    series = np.repeat(drive[..., None], S + hops, axis=-1)
    enc = netx.hdf5.Network(net_config=str(tmp_path / "enc.net"))
    src = Source(data=series.astype(np.int32))
    sink = Sink(shape=enc.out.shape, buffer=S + hops)
    src.s_out.connect(enc.layers[0].neuron.a_in)   # netx's Input block leaves inp unwired
    enc.out.connect(sink.a_in)
    enc.run(condition=RunSteps(num_steps=S + hops),
            run_cfg=Loihi2SimCfg(select_tag="fixed_pt", select_sub_proc_model=True))
    try:
        lava_spikes = sink.data.get()
    finally:
        enc.stop()
    ours = rec["encoder/dense"][0].numpy()
    assert ours.sum() > 0 and not lava_spikes[:, :hops].any()
    assert np.array_equal(lava_spikes[:, hops:], ours)


def test_export_model_reports_float_and_deployed_mse(trained_run, tmp_path, monkeypatch):
    monkeypatch.chdir(trained_run)          # no source: the latest run under ./runs
    started = []
    res = export_model(tmp_path / "m.net", seed=3, on_start=started.append)
    assert res.source == Path("runs/tiny") and res.kind == "fsvae" and res.fmt == "net"
    assert started == [f"exporting fsvae from runs/tiny ({res.checkpoint})"]
    assert res.path == tmp_path / "m.net" and res.size == res.path.stat().st_size > 0
    assert load(res.path).seed == 3 and res.n_images == 64
    assert 0 < res.float_mse < 4
    # deploy mode is exact: quantization costs nothing beyond training's. The spikes are
    # equal; only tanh differs (float32 in the model, float64 from the readout's integers)
    assert f"{res.float_mse:.5f}" == f"{res.deploy_mse:.5f}"      # the figures printed
    assert res.deploy_mse == pytest.approx(res.float_mse, rel=1e-9, abs=0)
    stage = export_model(tmp_path / "enc.net", "runs/tiny", stage="encoder")
    assert stage.stage == "encoder" and stage.float_mse is None and stage.size > 0


def test_export_cli_latest_run_inspect_and_errors(trained_run):
    env_cwd = trained_run
    res = subprocess.run(CLI + ["export", "model.net"], cwd=env_cwd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "runs/tiny" in res.stdout and "float" in res.stdout and "deployed" in res.stdout
    assert "reconstruction MSE on 64 test images" in res.stdout
    out = subprocess.run(CLI + ["inspect", "model.net"], cwd=env_cwd, capture_output=True,
                         text=True)
    assert out.returncode == 0 and "encoder" in out.stdout and "total:" in out.stdout
    stage = subprocess.run(CLI + ["export", "enc.net", "--stage", "encoder"], cwd=env_cwd,
                           capture_output=True, text=True)
    assert stage.returncode == 0
    bad = subprocess.run(CLI + ["inspect", "enc.net"], cwd=env_cwd, capture_output=True, text=True)
    assert bad.returncode == 2 and "single-stage" in bad.stderr and "Traceback" not in bad.stderr
    missing = subprocess.run(CLI + ["export", "nodir/model.net"], cwd=env_cwd, capture_output=True,
                             text=True)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert not (env_cwd / "nodir").exists()


def test_export_refuses_ann_and_leaves_no_file(tmp_path, tiny_cfg):
    train(tiny_cfg("ann-vae"), tmp_path / "ann", progress=False, max_batches=1)
    res = subprocess.run(CLI + ["export", str(tmp_path / "m.net"), "--from", str(tmp_path / "ann")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "spiking" in res.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["ann"]


def test_loader_rejects_foreign_hdf5(tmp_path):
    import h5py
    with h5py.File(tmp_path / "plain.net", "w") as f:
        f.create_dataset("layer/0/weight", data=np.zeros((2, 2)))
    with pytest.raises(NetFormatError, match="not a neurovae network"):
        load(tmp_path / "plain.net")
