"""Shared fixtures: a tiny config that trains in seconds on real MNIST."""
import pytest

from neurovae.config import make_config
from neurovae.kernels import enable_cpu_kernels

enable_cpu_kernels()   # the suite trains on the kernels `neurovae train` enables


TINY = ["batch_size=16", "T=4", "train_subset=64", "epochs=1", "latent=8", "k=4",
        "enc_channels=8,16", "dec_channels=16,8,8"]


@pytest.fixture
def tiny_cfg():
    def make(model="fsvae", *extra):
        return make_config("mnist-small", model, TINY + list(extra))
    return make
