"""From training to Lava in one short script: train small -> export -> generate on Lava -> verify.

Run from the repository root after `make test` or `make demo` built .venv:
    .venv/bin/python examples/end_to_end.py
It trains a tiny FSVAE for a few batches (a minute on 2 cores), so the images are rough;
`make demo` trains longer.
"""
import torch

from neurovae import deploy
from neurovae.config import make_config
from neurovae.export import load, write
from neurovae.loihi_runtime import run
from neurovae.models import build_model
from neurovae.plots import save_grid
from neurovae.train import train

# 1. Train: a small FSVAE on MNIST (the embedded default data set).
cfg = make_config("mnist-small", "fsvae", ["epochs=1", "batch_size=32", "train_subset=1024"])
train(cfg, "runs/example", max_batches=16)

# 2. Export: quantize into Loihi integers and write one HDF5 file.
from neurovae.checkpoint import load_model  # noqa: E402
model, _ = load_model("runs/example")
write(deploy.from_model(model, seed=0), "example.net")

# 3. Run on Lava: the runtime reads only the file.
net = load("example.net")
images, _ = run(net, "lava-sim", n=8, seed=1)
save_grid(images.float(), "example_samples.png")

# 4. Verify: the step-by-step reference simulator gives the same spikes and pixels.
ref, spikes_ref = run(net, "reference", n=8, seed=1, record=True)
_, spikes_lava = run(net, "lava-sim", n=8, seed=1, record=True)
same = all((spikes_ref[k] == spikes_lava[k]).all() for k in spikes_ref)
print(f"images identical: {torch.equal(ref, images)}; all spikes identical: {same}")
