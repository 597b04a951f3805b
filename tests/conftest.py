"""Shared fixtures: a tiny config that trains in seconds on real MNIST."""
import importlib.util
from pathlib import Path

import pytest

from neurovae.config import make_config
from neurovae.kernels import enable_kernels

enable_kernels()   # the suite trains on the kernels `neurovae train` enables


TINY = ["batch_size=16", "T=5", "train_subset=64", "epochs=1", "latent=8", "k=4",
        "enc_channels=8,16", "dec_channels=16,8,8"]


@pytest.fixture
def tiny_cfg():
    def make(model="fsvae", *extra):
        return make_config("mnist-small", model, TINY + list(extra))
    return make


def load_bench(name: str):
    """The script bench/NAME.py as a module (bench/ is not a package)."""
    path = Path(__file__).resolve().parent.parent / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def close(a, b, rtol: float = 1e-5) -> bool:
    """Tensors equal to float rounding: max |a - b| within rtol of max |a|."""
    a, b = a.detach().cpu(), b.detach().cpu()
    scale = max(float(a.abs().max()), 1e-12)
    return float((a - b).abs().max()) <= rtol * scale


def neuron_params(threshold, i_decay, v_decay) -> dict:
    """lava-dl CUBA neuron keyword arguments with neurovae's surrogate settings."""
    return dict(threshold=threshold, current_decay=i_decay, voltage_decay=v_decay,
                tau_grad=0.01, scale_grad=12.0)

