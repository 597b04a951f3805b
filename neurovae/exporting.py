"""`neurovae export` without the command line: a trained spiking VAE -> `.net` (or one
stage, or NIR), with the float and deployed reconstruction MSE side by side."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CheckpointError
from .outputs import check_output

MSE_IMAGES = 64     # test images the float and deployed reconstruction MSE are measured on


@dataclass
class ExportResult:
    """What an export wrote. The MSE fields are set for a whole-model `.net` only."""

    path: Path
    kind: str                   # fsvae | esvae
    source: Path                # the run folder or checkpoint it came from
    checkpoint: str             # where the checkpoint stands ('epoch 2')
    fmt: str = "net"
    stage: str | None = None
    size: int = 0               # bytes
    seconds: float = 0.0        # building and writing the file
    n_images: int = 0
    float_mse: float | None = None
    deploy_mse: float | None = None
    not_expressible: list = field(default_factory=list)   # NIR: stages left out, with reasons

    @property
    def mse_change(self) -> float:
        """Deployed MSE relative to float, in percent."""
        return 100 * (self.deploy_mse - self.float_mse) / max(self.float_mse, 1e-12)


def latest_run(root="runs") -> Path:
    """The run folder under `root` with the newest checkpoint."""
    runs = sorted(Path(root).glob("*/checkpoint.pt"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise CheckpointError("no trained run under ./runs; train one with 'neurovae train' "
                              "or pass --from RUN_DIR")
    return runs[-1].parent


def load_spiking_model(source):
    """(model, checkpoint state) of a spiking VAE checkpoint; other models are refused."""
    from . import checkpoint
    model, state = checkpoint.load_model(source)
    if model.kind not in ("fsvae", "esvae"):
        raise CheckpointError(f"{source} holds an {model.kind} model; only the spiking models "
                              f"(fsvae, esvae) deploy to Lava")
    return model, state


def reconstruction_mse(model, net, seed: int, n: int = MSE_IMAGES):
    """(n, float MSE, deployed MSE) on the first n test images, images in [-1, 1]."""
    import torch
    from . import data
    from .hw.readout import to_signed
    from .sim.emulator import Emulator
    cfg = model.cfg
    test = data.load_images(cfg.dataset, "test", cfg.data_dir, cfg.image_size, cfg.channels)
    x = test.tensor(torch.arange(min(n, len(test))))
    target = to_signed(x, torch.float64)
    float_mse = float(((model.reconstruct(x, seed=seed).double() - target) ** 2).mean())
    deploy_img, _ = Emulator(net).run(x, len(x), seed)
    return len(x), float_mse, float(((deploy_img - target) ** 2).mean())


def export_model(output, source=None, *, stage: str | None = None, fmt: str = "net",
                 seed: int = 0, on_start=None) -> ExportResult:
    """Export the checkpoint `source` (default: the latest run under ./runs) to `output`.

    `fmt` "net" writes the HDF5 file for Lava, "nir" the stages NIR expresses; `stage`
    writes one stage as a standalone lava-dl netx network. `seed` is the PRNG seed stored
    in the file. `on_start(line)` is told what is exported once the checkpoint is read.
    """
    from . import checkpoint, deploy
    path = check_output(output)
    src = Path(source) if source else latest_run()
    model, state = load_spiking_model(src)
    result = ExportResult(path, model.kind, src, checkpoint.describe(state), fmt, stage)
    if on_start:
        on_start(f"exporting {model.kind} from {src} ({result.checkpoint})")
    t0 = time.time()
    net = deploy.from_model(model, seed=seed)
    if fmt == "nir":
        from .export.nir_export import write_nir
        result.not_expressible = list(write_nir(net, output))
    elif stage:
        from .export import write_stage
        write_stage(net, stage, output)
    else:
        from .export import write
        write(net, output)
        result.seconds = time.time() - t0
        result.n_images, result.float_mse, result.deploy_mse = reconstruction_mse(model, net,
                                                                                  seed)
    result.size = path.stat().st_size if path.exists() else 0
    return result
