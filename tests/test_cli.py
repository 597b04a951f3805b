"""The command line package: verify --checkpoint against the float model, help texts that
name the backends, the light inspect command, and the shared test-image helper."""
import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from conftest import TINY
from neurovae import checkpoint, deploy
from neurovae.cli import main
from neurovae.config import make_config
from neurovae.export import write
from neurovae.hw.readout import to_signed
from neurovae.model_data import test_images as model_test_images
from neurovae.train import train


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny FSVAE and ESVAE runs (one batch of training) and their exported .net files."""
    root = tmp_path_factory.mktemp("cli")
    out = {}
    for kind, seed in (("fsvae", 1), ("esvae", 1), ("fsvae-other", 2)):
        run = root / kind
        train(make_config("mnist-small", kind.split("-")[0], TINY + [f"seed={seed}"]), run,
              progress=False, max_batches=1)
        model, _ = checkpoint.load_model(run)
        write(deploy.from_model(model, seed=4), root / f"{kind}.net")
        out[kind] = (run, root / f"{kind}.net")
    return out


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("kind", ["fsvae", "esvae"])
def test_verify_checkpoint_float_model_matches_lava_sim(runs, kind):
    run, net = runs[kind]
    res = _invoke("verify", net, "-n", "1", "--checkpoint", run / "checkpoint.pt")
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert out.count("float model vs lava-sim:") == 2          # reconstruct and generate
    assert out.count("reference vs lava-sim:") == out.count("emulator vs lava-sim:") == 2
    floats = out.split("float model vs lava-sim:")[1:]
    for block in floats:
        sampler, images = block.splitlines()[1:3]
        assert sampler.split()[0] == "sampler" and sampler.split()[3] == "0"
        assert int(sampler.split()[1]) > 0                     # real latent spikes compared
        assert images.split()[3] == "0" and "max abs difference" in images
    assert "OK: the float model of" in out and "note:" not in out


def test_verify_checkpoint_with_other_weights_mismatches(runs):
    run, _ = runs["fsvae-other"]
    res = _invoke("verify", runs["fsvae"][1], "-n", "1", "--mode", "reconstruct",
                  "--checkpoint", run)
    assert res.exit_code == 1
    sampler = res.stdout.split("float model vs lava-sim:")[1].splitlines()[1]
    assert int(sampler.split()[3]) > 0
    assert "not the checkpoint the file was exported from" in res.stdout
    assert "MISMATCH: the float model" in res.stderr
    assert "MISMATCH: the backends" not in res.stderr


def test_verify_refuses_a_checkpoint_of_another_model(runs, tmp_path):
    res = _invoke("verify", runs["fsvae"][1], "-n", "1", "--checkpoint", runs["esvae"][0])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
    assert "esvae" in res.stderr and "exported from" in res.stderr
    bigger = tmp_path / "big"
    train(make_config("mnist-small", "fsvae", TINY + ["latent=12"]), bigger, progress=False,
          max_batches=1)
    res = _invoke("verify", runs["fsvae"][1], "--checkpoint", bigger)
    assert res.exit_code == 2 and "latent 12 vs 8" in res.stderr and res.stdout == ""


def test_help_names_every_backend():
    for command in ("generate", "reconstruct", "evaluate", "profile"):
        text = " ".join(_invoke(command, "--help").stdout.split())
        assert "[lava-sim|loihi2|emulator|reference|torch]" in text, command
        for part in ("Lava's CPU simulator", "Loihi extension", "neurovae/sim/emulator.py",
                     "neurovae/sim/reference.py", "torch is an alias"):
            assert part in text, (command, part)


def test_inspect_does_not_import_lava_dl(runs):
    probe = ("import json, sys\nfrom neurovae.cli import main\n"
             "try:\n    main(['inspect', sys.argv[1]])\nexcept SystemExit as e:\n"
             "    code = e.code\nprint(json.dumps([code, 'lava.lib.dl.slayer' in sys.modules,"
             " 'neurovae.models' in sys.modules]))")
    res = subprocess.run([sys.executable, "-c", probe, str(runs["fsvae"][1])],
                         capture_output=True, text=True)
    assert json.loads(res.stdout.splitlines()[-1]) == [0, False, False], res.stderr


def test_test_images_are_the_models_first_test_images(runs):
    from neurovae import data
    from neurovae.export import load
    net = load(runs["fsvae"][1])
    x = model_test_images(net, 3)
    assert x.dtype == torch.uint8 and x.shape == (3, 1, 28, 28)
    assert torch.equal(x, data.load_images("mnist", "test").tensor(torch.arange(3)))
    assert torch.equal(to_signed(x, torch.float64), x.double() / 127.5 - 1)
