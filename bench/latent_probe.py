"""Which half holds a spiking VAE's reconstruction MSE back: a float decoder fitted to the
latent spikes its spiking decoder receives (one JSON line).

The trained model is frozen. Its posterior latent spikes z (the deployed ones: the same
PRNG draws, seed `--seed`) are computed for the training images, and the ANN baseline's
conv decoder, on the model's own `dec_channels`, learns to reconstruct each image from its
z for `--epochs` epochs. `probe_mse` is that decoder's test MSE, `model_mse` the spiking
decoder's on the same test images and spikes. A probe far below the model says the spiking
decoder is the limit; a probe near it says the latent code itself carries no more.
`--source window` fits it to an ESVAE's rate window instead, the code before the draw.
Usage: python bench/latent_probe.py RUN [--epochs 4] [--n-train 60000] [--n-test 1000]
                                     [--seed 0] [--batch 128] [--lr 1e-3]
                                     [--source latent|window]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:       # run as a script from any folder
    sys.path.insert(0, str(REPO))

ENCODE_BATCH = 500


def latent_spikes(model, images, first: int, n: int, seed: int, source: str = "latent"):
    """(deployed posterior spikes z (n, C, S) as floats, the probe's input (z, or with
    source "window" the ESVAE encoder's rate window (n, C, T) before the draw), targets
    (n, pixels) in [-1, 1]) of images first..first+n-1; the PRNG counters are the indices."""
    import torch
    from neurovae.models.recon_loss import to_target
    zs, fs, xs = [], [], []
    with torch.no_grad():
        for i in range(first, first + n, ENCODE_BATCH):
            idx = torch.arange(i, min(i + ENCODE_BATCH, first + n))
            x = images.tensor(idx)
            if source == "window":      # one encoder pass: z is the draw from this window
                window = model.posterior_window(x)
                zs.append(model.window_spikes(window, seed, idx).float())
                fs.append(window.float())
            else:
                zs.append(model.latent(x, seed, idx).float())
                fs.append(zs[-1])
            xs.append(to_target(x).flatten(1))
    return torch.cat(zs), torch.cat(fs), torch.cat(xs)


def fit_probe(cfg, z_train, x_train, epochs: int, batch: int, lr: float, seed: int):
    """The ANN baseline's decoder on the flattened input z, trained by MSE with Adam; in
    eval mode."""
    import torch
    from neurovae.models.ann import _Decoder
    torch.manual_seed(seed)
    flat = z_train.flatten(1)
    probe = _Decoder(cfg, flat.shape[1])
    opt = torch.optim.Adam(probe.parameters(), lr)
    for _ in range(epochs):
        for idx in torch.randperm(len(flat)).split(batch):
            loss = ((probe(flat[idx]).flatten(1) - x_train[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return probe.eval()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("run", help="run folder or checkpoint of a trained fsvae or esvae")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--n-train", type=int, default=60000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--source", choices=("latent", "window"), default="latent",
                    help="what the probe reads: the latent spikes z (default), or an "
                         "ESVAE's rate window before the draw (its code without the noise)")
    args = ap.parse_args(argv)
    from neurovae.cli.errors import quiet_imports
    quiet_imports()              # lava-dl's import notice would share stdout with the line

    import torch
    from neurovae import checkpoint, data
    from neurovae.errors import NeurovaeError
    from neurovae.kernels import enable_kernels
    enable_kernels()
    try:
        model, _ = checkpoint.load_model(args.run)
    except NeurovaeError as exc:
        raise SystemExit(f"latent_probe: {exc}") from None
    if model.kind not in ("fsvae", "esvae"):
        raise SystemExit(f"{args.run} holds a {model.kind}; the probe reads a spiking VAE's "
                         f"latent spikes (fsvae or esvae)")
    if args.source == "window" and model.kind != "esvae":
        raise SystemExit("--source window reads an ESVAE's rate window; an FSVAE has none")
    cfg = model.cfg
    load = lambda split: data.load_images(cfg.dataset, split, cfg.data_dir, cfg.image_size,
                                          cfg.channels)
    train_set, test_set = load("train"), load("test")
    n_train = min(args.n_train, len(train_set))
    t0 = time.perf_counter()
    _, f_train, x_train = latent_spikes(model, train_set, 0, n_train, args.seed, args.source)
    z_test, f_test, x_test = latent_spikes(model, test_set, 0, args.n_test, args.seed,
                                           args.source)
    encode_s = time.perf_counter() - t0
    probe = fit_probe(cfg, f_train, x_train, args.epochs, args.batch, args.lr, args.seed)
    with torch.no_grad():
        probe_mse = ((probe(f_test.flatten(1)).flatten(1) - x_test) ** 2).mean().item()
        model_mse = ((model.decode(z_test).flatten(1) - x_test) ** 2).mean().item()
    line = {"bench": "latent_probe", "run": str(args.run), "model": model.kind,
            "dataset": cfg.dataset, "latent": cfg.latent, "T": cfg.T, "seed": args.seed,
            "source": args.source,
            "epochs": args.epochs, "n_train": n_train, "n_test": args.n_test,
            "latent_rate": z_test[..., z_test.sum((0, 1)) > 0].mean().item(),
            "model_mse": model_mse, "probe_mse": probe_mse,
            "probe_share": probe_mse / model_mse,
            "encode_s": round(encode_s, 1),
            "probe_s": round(time.perf_counter() - t0 - encode_s, 1)}
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
