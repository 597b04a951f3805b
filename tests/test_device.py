"""Same spikes on every device: the pure-torch kernels (the GPU code path) against the CPU
numba kernels, lava-dl's own code and the deploy core's LIF step; device selection.

Every test runs on the CPU; the device-parametrized ones also run on CUDA where it exists
(the parameter is not generated elsewhere). On the CPU `torch_cuba.everywhere()` sends CPU
tensors down the code path that CUDA tensors take.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from lava.lib.dl import slayer

from conftest import close, neuron_params

from neurovae import checkpoint, cuba_kernel, devices, li_dynamics, spiking_block, torch_cuba
from neurovae.hw import sampling
from neurovae.hw.net import Layer
from neurovae.hw.neuron import WEIGHT_SCALE, NeuronParams, lif_step
from neurovae.models import build_model
from neurovae.sim.reference import Population
from neurovae.train import Distributed, batch_gradients

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
ROOT = Path(__file__).resolve().parents[1]


def _rtol(device) -> float:
    # float32 rounding; on CUDA also the reductions' summation order
    return 1e-5 if device == "cpu" else 1e-4


def _lava_dl(run):
    """run() on lava-dl's own neuron and integrator code."""
    cuba_kernel.uninstall()
    li_dynamics.uninstall()
    try:
        return run()
    finally:
        li_dynamics.install()
        cuba_kernel.install()


def _torch_path(run, device):
    """run() on the pure-torch kernels, its tensors on `device`."""
    devices.prepare(torch.device(device))
    with torch_cuba.everywhere():
        return run(device)


CONFIGS = [
    (1.25, 1.0, 0.25),      # paper config: no current memory, keep 1/4 of v
    (0.2, 0.5, 0.75),       # current memory and a low threshold
    (3.0, 0.0, 0.0),        # perfect integrators, threshold on an exact integer
    (0.55, 0.125, 0.9),     # long current memory, fast voltage leak
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("threshold,i_decay,v_decay", CONFIGS)
def test_neuron_same_on_every_kernel(device, threshold, i_decay, v_decay):
    torch.manual_seed(0)
    for shape in ((6, 4, 5, 5, 24), (3, 7, 24), (2, 5, 3, 19)):  # 600, 21 and 15 neurons
        x = torch.randn(shape) * 2
        g = torch.randn(shape)

        def run(dev="cpu"):
            neuron = slayer.neuron.cuba.Neuron(**neuron_params(threshold, i_decay, v_decay)).to(dev)
            xi = x.to(dev).requires_grad_()
            s = neuron(xi)
            return s, torch.autograd.grad(s, xi, g.to(dev))[0]

        s_ref, g_ref = _lava_dl(run)
        s_cpu, g_cpu = run()
        s_dev, g_dev = _torch_path(run, device)
        assert 0.05 < float(s_ref.mean()) < 0.95
        assert s_dev.device.type == device
        assert torch.equal(s_ref, s_dev.cpu()) and torch.equal(s_cpu, s_dev.cpu())
        assert close(g_ref, g_dev, _rtol(device)) and close(g_cpu, g_dev, _rtol(device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("delay", [0, 1])
def test_torch_kernel_equals_numba_kernel_with_delay(device, delay):
    """The two kernels side by side, the block's one-step spike delay included."""
    torch.manual_seed(1)
    neuron = slayer.neuron.cuba.Neuron(**neuron_params(0.7, 0.25, 0.5))
    c = cuba_kernel.CubaConstants(neuron)
    z = torch.randn(37, 13) * 1.5
    g = torch.randn(37, 13)
    spikes, volt = c.run(z, delay)
    grad = c.grad(volt, g, delay)
    s_t, v_t = torch_cuba.forward(z.to(device), c, delay)
    assert torch.equal(spikes, s_t.cpu()) and torch.equal(volt, v_t.cpu())
    if delay:
        assert not s_t[:, 0].any()
    assert close(grad, torch_cuba.backward(v_t, g.to(device), c, delay), _rtol(device))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_kernel_follows_the_deploy_lif_step(device):
    """Spikes of the torch kernel equal the deploy core's integer LIF step (no bias)."""
    rng = np.random.default_rng(2)
    for i_decay, v_decay, vth in ((4096, 3072, 80), (1024, 256, 40), (0, 4000, 200)):
        p = NeuronParams(i_decay, v_decay, vth)
        a = rng.integers(-90, 120, size=(30, 3, 11))               # (T, N, K) integer drive
        u = v = np.zeros((3, 11), np.int64)
        want = []
        for t in range(len(a)):
            u, v, s = lif_step(u, v, a[t], p)
            want.append(s)
        x = torch.as_tensor(a, dtype=torch.float32).permute(1, 2, 0).contiguous() / WEIGHT_SCALE

        def run(dev):
            return slayer.neuron.cuba.Neuron(**p.slayer_params()).to(dev)(x.to(dev))

        got = _torch_path(run, device).cpu().permute(2, 0, 1).numpy().astype(bool)
        assert np.array_equal(got, np.stack(want)) and got.any()


def _blocks():
    p = neuron_params(1.25, 1.0, 0.25)
    yield "conv", slayer.block.cuba.Conv(dict(p), 4, 6, 3, stride=2, padding=1,
                                         weight_scale=6), (5, 4, 9, 9, 20)
    yield "convT", slayer.block.cuba.ConvT(dict(p), 4, 3, 4, stride=2, padding=1,
                                           weight_scale=6), (5, 4, 4, 4, 20)
    yield "dense", slayer.block.cuba.Dense(dict(p), 30, 13, weight_scale=6), (5, 30, 21)
    yield "dense-no-delay", slayer.block.cuba.Dense(dict(p), 30, 13, weight_scale=6,
                                                    delay_shift=False), (5, 30, 21)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["conv", "convT", "dense", "dense-no-delay"])
def test_block_same_on_every_kernel(device, name):
    torch.manual_seed(3)
    blk, shape = next((b, s) for n, b, s in _blocks() if n == name)
    x = (torch.rand(shape) < 0.3).float()

    def run(dev="cpu"):
        b = blk.to(dev)
        xi = x.to(dev).requires_grad_()
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t,
                                                      lambda t: t):
            s = spiking_block.block(b, xi)
        g = torch.linspace(-1, 1, s.numel(), device=dev).reshape(s.shape)
        gx, gw = torch.autograd.grad(s, (xi, b.synapse.weight), g)
        as_bytes = any(t.dtype == torch.uint8 and t.numel() == x.numel() for t in saved)
        return s.cpu(), gx.cpu(), gw.cpu(), as_bytes

    s_ref, gx_ref, gw_ref, _ = _lava_dl(run)
    s_dev, gx, gw, as_bytes = _torch_path(run, device)
    blk.to("cpu")
    assert as_bytes                              # the input spikes are kept as bytes
    assert s_ref.sum() > 0 and torch.equal(s_ref, s_dev)
    assert close(gx_ref, gx, _rtol(device)) and close(gw_ref, gw, _rtol(device))


@pytest.mark.parametrize("device", DEVICES)
def test_readout_same_on_every_kernel(device):
    torch.manual_seed(5)
    syn = slayer.synapse.Conv(6, 2, 3, padding=1, weight_scale=2,
                              pre_hook_fx=lambda w: torch.round(w * 32) / 32)
    x = (torch.rand(3, 6, 7, 7, 12) < 0.3).float()
    bias = torch.randn(2) / 8
    decay = torch.tensor([819.0])

    def run(dev="cpu"):
        s = syn.to(dev)
        xi, bi = x.to(dev).requires_grad_(), bias.to(dev).requires_grad_()
        v = spiking_block.readout(s, xi, bi, decay.to(dev), steps=15)
        grads = torch.autograd.grad(torch.tanh(v).square().sum(), (xi, s.weight, bi))
        return [t.cpu() for t in (v,) + grads]

    ref = _lava_dl(run)
    got = _torch_path(run, device)
    assert torch.equal(ref[0], got[0])
    assert all(close(a, b, _rtol(device)) for a, b in zip(ref[1:], got[1:]))


def test_exact_drive_undoes_a_rounded_convolution():
    """A drive off the 1/32 grid by a rounding error goes back to it; graded input, or
    weights off the 8-bit grid, leave the drive alone."""
    torch.manual_seed(6)
    x = (torch.rand(4, 3, 8) < 0.4).float()
    w = torch.round(torch.randn(5, 3) * 32) / 32
    z = torch.einsum("nct,oc->not", x, w)
    noisy = z * (1 + 3e-7 * torch.randn_like(z)) + 1e-6 * torch.randn_like(z)
    assert not torch.equal(noisy, z)
    assert torch.equal(torch_cuba.exact_drive(noisy, x, w), z)
    assert torch.equal(torch_cuba.exact_drive(z, x, w), z)
    assert torch.equal(torch_cuba.exact_drive(noisy, x * 0.5 + 0.25, w), noisy)
    assert torch.equal(torch_cuba.exact_drive(noisy, x, w + 1e-3), noisy)


def test_input_drive_undoes_a_rounded_convolution(monkeypatch):
    from neurovae.models import spiking
    torch.manual_seed(7)
    w = torch.round(torch.randn(8, 1, 3, 3, 1) * 32) / 32
    x01 = torch.randint(0, 256, (4, 1, 12, 12)).float() / 256
    want = spiking.input_drive(w, x01)
    real = torch.nn.functional.conv2d
    monkeypatch.setattr(torch.nn.functional, "conv2d",
                        lambda *a, **k: real(*a, **k) * (1 - 2e-7))
    assert torch.equal(spiking.input_drive(w, x01), want)


def _train_step(cfg, x, dev="cpu"):
    torch.manual_seed(3)
    model = build_model(cfg).to(dev)
    out = model(x.to(dev), seed=1, images=torch.arange(10, 10 + len(x), device=dev), ss_p=0.5)
    out["loss"].backward()
    return (out["loss"].detach().cpu(), out["z"].detach().cpu(),
            [p.grad.cpu() for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["fsvae", "esvae"])
def test_training_step_same_on_every_device(tiny_cfg, device, kind):
    """A whole model on the torch kernels: the same latent spikes as the numba kernels,
    the loss bit for bit on the CPU (to rounding on CUDA), gradients to float rounding."""
    cfg = tiny_cfg(kind)
    x = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    l_ref, z_ref, g_ref = _train_step(cfg, x)
    l_dev, z_dev, g_dev = _torch_path(lambda dev: _train_step(cfg, x, dev), device)
    assert torch.equal(z_ref, z_dev) and z_ref.any()
    if device == "cpu":
        assert torch.equal(l_ref, l_dev)
    else:
        assert close(l_ref, l_dev, 1e-6)
    assert len(g_ref) == len(g_dev) > 4
    assert all(close(a, b, _rtol(device)) for a, b in zip(g_ref, g_dev))


class _CpuAllocations(torch.overrides.TorchFunctionMode):
    """Records neurovae code that makes a CPU tensor of its own (a factory call without a
    device) or hands a tensor to numpy: what would break or stall on a GPU."""

    FACTORIES = {torch.zeros, torch.ones, torch.empty, torch.full, torch.arange, torch.tensor,
                 torch.rand, torch.randn, torch.randint, torch.linspace, torch.eye}
    PACKAGE = os.path.dirname(checkpoint.__file__)     # neurovae, wherever it is installed
    TORCH = os.path.dirname(torch.__file__)

    def __init__(self):
        super().__init__()
        self.found = []

    def _caller(self) -> str:
        f = sys._getframe(2)
        while f is not None and f.f_code.co_filename.startswith(self.TORCH):
            f = f.f_back
        return "" if f is None else f"{f.f_code.co_filename}:{f.f_lineno}"

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        own = ((func in self.FACTORIES and kwargs.get("device") is None
                and torch.is_tensor(out) and out.dim() > 0 and out.device.type == "cpu")
               or name == "numpy")
        if own:
            where = self._caller()
            if where.startswith(self.PACKAGE):
                self.found.append(f"{name} at {where}")
        return out


@pytest.mark.parametrize("kind", ["fsvae", "esvae"])
def test_gpu_path_makes_every_tensor_on_its_inputs_device(tiny_cfg, kind):
    """Training step, micro-batches, reconstruction and sampling on the torch kernels make
    no CPU tensor of their own and never reach numba: on a GPU everything stays there."""
    cfg = tiny_cfg(kind)
    model = build_model(cfg)
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    mode = _CpuAllocations()
    with torch_cuba.everywhere(), mode:
        batch_gradients(model, x, seed=2, images=torch.arange(4), ss_p=0.5, gen=None,
                        micro=2 if kind == "fsvae" else 0)
        model.reconstruct(x[:2])
        model.sample(3)
    assert mode.found == []
    # the check sees such a call: the CPU reference simulator allocates its state on the CPU
    layer = Layer("pop", "dense", (1,), (3,), np.zeros((3, 1), np.int64), NeuronParams())
    with mode:
        Population(layer, 2)
    assert len(mode.found) == 1 and "zeros at" in mode.found[0]
    # the deploy core's index ranges follow their input's device
    with mode:
        sampling.pick_index(torch.zeros(1), 0, torch.arange(2), 0, 3, 4)
    assert len(mode.found) == 1


def test_resolve_device(monkeypatch):
    assert devices.resolve("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve("auto") == torch.device("cpu")
    for spec in ("cuda", "cuda:0"):
        with pytest.raises(devices.DeviceError, match="use --device cpu or auto"):
            devices.resolve(spec)
    with pytest.raises(devices.DeviceError, match="unknown device 'tpu'"):
        devices.resolve("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert devices.resolve("auto") == torch.device("cuda", 0)
    assert devices.resolve("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(devices.DeviceError, match="has 2 CUDA devices"):
        devices.resolve("cuda:2")
    monkeypatch.setenv("LOCAL_RANK", "1")          # under torchrun: the rank's own GPU
    assert devices.resolve("auto") == devices.resolve("cuda") == torch.device("cuda", 1)
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(devices.DeviceError, match="LOCAL_RANK is 2"):
        devices.resolve("cuda")


def test_distributed_backend_follows_the_device(monkeypatch):
    """NCCL and DDP device_ids for a CUDA rank, gloo and none on the CPU."""
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", calls.append)
    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel",
                        lambda model, device_ids=None: ("ddp", device_ids))
    assert Distributed(torch.device("cuda", 1)).wrap(None) == ("ddp", [1])
    assert Distributed(torch.device("cpu")).wrap(None) == ("ddp", None)
    assert calls == ["nccl", "gloo"]


@pytest.mark.parametrize("device", DEVICES)
def test_checkpoint_loads_on_any_device(tmp_path, tiny_cfg, device):
    cfg = tiny_cfg("esvae")
    model = build_model(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.zeros(2, 1, 28, 28, dtype=torch.uint8, device=device), seed=0)["loss"].backward()
    opt.step()
    checkpoint.save(tmp_path / "c.pt", cfg=cfg, model=model, optimizer=opt, epoch=1)
    raw = torch.load(tmp_path / "c.pt", weights_only=True)       # stored on the CPU
    assert all(t.device.type == "cpu" for t in raw["model"].values())
    state = checkpoint.load(tmp_path / "c.pt", map_location=device)
    assert all(t.device.type == device for t in state["model"].values())
    loaded, _ = checkpoint.load_model(tmp_path / "c.pt", device=device)
    want = model.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in loaded.state_dict().items())


def _missing_cuda_specs():
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ["cuda"] if n == 0 else [f"cuda:{n}"]


@pytest.mark.parametrize("spec", _missing_cuda_specs())
def test_cli_and_bench_refuse_a_missing_device_with_exit_2(tmp_path, spec):
    for cmd in ([sys.executable, "-m", "neurovae.cli", "train", "--device", spec, "--quiet",
                 "--out", str(tmp_path / "run")],
                [sys.executable, str(ROOT / "bench" / "train_step.py"), "--device", spec]):
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --device ") and "cuda" in lines[0]
    assert not (tmp_path / "run").exists()


def test_gpu_session_script_plans_its_steps():
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_session.py"), "--plan"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "train_step.py --device cuda" in res.stdout, res.stderr
