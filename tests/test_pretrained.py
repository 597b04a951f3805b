"""The shipped pretrained models load, generate and run on Lava as on the emulator."""
from pathlib import Path

import pytest
import torch

from neurovae.export import load
from neurovae.loihi_runtime import run

PRETRAINED = Path(__file__).resolve().parent.parent / "examples" / "pretrained"


@pytest.mark.parametrize("name", ["fsvae-mnist-small", "esvae-mnist-small",
                                  "fsvae-fashion-mnist-small", "esvae-fashion-mnist-small"])
def test_pretrained_model_generates_identically_on_lava_and_emulator(name):
    net = load(PRETRAINED / f"{name}.net")
    kind, dataset = name.split("-", 1)
    assert net.kind == kind and tuple(net.image_shape) == (1, 28, 28)
    assert net.config["dataset"] == dataset.removesuffix("-small")
    emu, _ = run(net, "emulator", n=2, seed=4)
    lava, _ = run(net, "lava-sim", n=2, seed=4)
    assert torch.equal(emu, lava)
    assert float(emu.std()) > 0.1            # a trained model draws strokes, not a flat image
