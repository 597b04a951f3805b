"""Run by torchrun in tests: train a few DDP steps on the CPU (gloo), then each rank saves
its weights; rank 0 also writes the process group's backend."""
import sys
from pathlib import Path

import torch

from neurovae.config import make_config
from neurovae.models import build_model
from neurovae.train import train

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TINY  # noqa: E402

out = Path(sys.argv[1])
cfg = make_config("mnist-small", "fsvae", TINY)
torch.manual_seed(cfg.seed)
if torch.distributed.is_torchelastic_launched() and int(__import__("os").environ["RANK"]) == 0:
    torch.save(build_model(cfg).state_dict(), out / "start.pt")
import neurovae.train as tr  # noqa: E402

captured = {}
real_build = tr.build_model


def build_and_keep(c):
    captured["model"] = real_build(c)
    return captured["model"]


tr.build_model = build_and_keep
train(cfg, out / "run", progress=False, max_batches=3, device="cpu")
rank = torch.distributed.get_rank()
if rank == 0:
    (out / "backend").write_text(str(torch.distributed.get_backend()))
torch.save(captured["model"].state_dict(), out / f"rank{rank}.pt")
torch.distributed.destroy_process_group()
