"""What each spiking half and the latent draw cost the ESVAE's reconstruction MSE: the ESVAE
trained with its encoder or decoder swapped for the ANN baseline's float layers of the
same widths, or with its draw replaced by the window read in order (one JSON line).

- `--encoder float`: the ANN encoder, a rate sigmoid(.) rounded to count / T (straight-
  through), its window the count's spikes in order, so the draw applies the model's rule.
- `--decoder float`: the ANN decoder reading the T sampling steps of z, flattened.
- `--latent replay`: z at sampling step T + j is the window's step j (no random pick), the
  gradient still the rate's; `draw` is the ESVAE's own.
With every option at its default this is the ESVAE itself: its MSE equals the quality
bench's `mse_float` at the same flags. A diagnostic only: the swapped models do not export.
Usage: python bench/esvae_halves.py [--encoder spiking|float] [--decoder spiking|float]
           [--latent draw|replay] [--config mnist-small] [--steps 1120 | --full]
           [--set KEY=VALUE ...] [--seed 0] [--n-test 1000]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

BENCH = Path(__file__).resolve().parent
for p in (str(BENCH.parent), str(BENCH)):     # run as a script from any folder
    if p not in sys.path:
        sys.path.insert(0, p)


def halves_model(cfg, encoder: str, decoder: str, latent: str):
    """The config's ESVAE with the chosen halves float and the chosen latent channel."""
    import torch
    from neurovae.models import ann
    from neurovae.models.esvae import ESVAE
    from neurovae.models.recon_loss import to_target

    class FloatEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            flat = cfg.enc_channels[-1] * (cfg.image_size // 2 ** len(cfg.enc_channels)) ** 2
            self.net = torch.nn.Sequential(ann._encoder(cfg), torch.nn.Linear(flat, cfg.latent),
                                           torch.nn.Sigmoid())

        def forward(self, x_bytes):
            rate = self.net(to_target(x_bytes))
            count = torch.round(rate * cfg.T)
            hard = (torch.arange(cfg.T, device=rate.device) < count.unsqueeze(-1)).float()
            return hard + (rate - rate.detach()).unsqueeze(-1)

    class FloatDecoder(torch.nn.Module):
        def __init__(self, start: int):
            super().__init__()
            self.start = start
            self.net = ann._Decoder(cfg, cfg.latent * cfg.T)

        def forward(self, z, silent=0):
            return self.net(z[..., self.start:self.start + cfg.T].flatten(1))

        for_loss = forward

    class Halves(ESVAE):
        def __init__(self):
            super().__init__(cfg)
            if encoder == "float":
                self.float_encoder = FloatEncoder()
            if decoder == "float":
                self.decoder = FloatDecoder(self.sample_start)

        def posterior_window(self, x_bytes):
            if encoder == "float":
                return self.float_encoder(x_bytes)
            return super().posterior_window(x_bytes)

        def window_spikes(self, window, seed, images):
            if latent == "replay":
                rate = window.mean(-1, keepdim=True)
                return self._full_window(window.detach() + (rate - rate.detach()))
            return super().window_spikes(window, seed, images)

    return Halves()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--encoder", choices=("spiking", "float"), default="spiking",
                    help="float: the ANN encoder, rates rounded to count / T")
    ap.add_argument("--decoder", choices=("spiking", "float"), default="spiking",
                    help="float: the ANN decoder on the flattened sampling steps of z")
    ap.add_argument("--latent", choices=("draw", "replay"), default="draw",
                    help="replay: z is the window read in order, no random pick")
    ap.add_argument("--config", default="mnist-small")
    ap.add_argument("--steps", type=int, default=1120, help="optimizer steps (the bench's plan)")
    ap.add_argument("--full", action="store_true", help="train the config's own epochs")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="KEY=VALUE config override, repeatable")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-test", type=int, default=1000)
    args = ap.parse_args(argv)
    from neurovae.cli.errors import quiet_imports
    quiet_imports()              # lava-dl's import notice would share stdout with the line

    import torch
    from neurovae import checkpoint, data, train as training
    from neurovae.config import make_config
    from neurovae.kernels import enable_kernels
    from neurovae.models.recon_loss import to_target
    from quality import _batched, step_plan

    enable_kernels()
    cfg = make_config(args.config, "esvae", args.overrides + [f"seed={args.seed}"])
    per_epoch = None
    if not args.full:
        cfg.epochs, per_epoch = step_plan(cfg, args.steps)
    build = lambda c: halves_model(c, args.encoder, args.decoder, args.latent)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(training, "build_model", build):
        metrics = training.train(cfg, Path(tmp) / "run", progress=False,
                                 max_batches=per_epoch)
        model = build(cfg)
        model.load_state_dict(checkpoint.load(Path(tmp) / "run")["model"])
    train_s = time.perf_counter() - t0
    model.eval()
    test = data.load_images(cfg.dataset, "test", cfg.data_dir, cfg.image_size, cfg.channels)
    x = test.tensor(torch.arange(args.n_test))
    with torch.no_grad():
        recon = _batched(lambda lo, hi: model.reconstruct(x[lo:hi], cfg.seed,
                                                          torch.arange(lo, hi)), args.n_test)
    line = {"bench": "esvae_halves", "encoder": args.encoder, "decoder": args.decoder,
            "latent": args.latent, "config": args.config, "overrides": args.overrides,
            "seed": args.seed, "epochs": cfg.epochs,
            "steps": cfg.epochs * (per_epoch or metrics["batches"]),
            "n_test": args.n_test,
            "mse": float(torch.mean((recon.double() - to_target(x).double()) ** 2)),
            "train_mse": metrics["mse"], "train_s": round(train_s, 1)}
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
