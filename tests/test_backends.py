"""Backend dispatch: canonical names and the old alias, and what the deploy side imports.

The Lava run itself and its failures are tested in test_lava_runtime.py and
test_reliability.py.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from conftest import TINY
from neurovae import deploy
from neurovae.config import make_config
from neurovae.errors import NeurovaeError
from neurovae.export import load, write
from neurovae.models import build_model


@pytest.fixture(scope="module")
def net_file(tmp_path_factory):
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("backends") / "model.net"
    write(deploy.from_model(build_model(make_config("mnist-small", "fsvae", TINY)).eval(),
                            seed=5), path)
    return path


def test_backend_names_and_the_torch_alias():
    from neurovae.loihi_runtime import BACKENDS
    from neurovae.loihi_runtime.backends import BACKEND_ALIASES, BACKEND_CHOICES, canonical
    assert BACKENDS == ("lava-sim", "loihi2", "emulator", "reference")
    assert BACKEND_ALIASES == {"torch": "reference"}
    assert BACKEND_CHOICES == BACKENDS + ("torch",)
    assert [canonical(b) for b in BACKEND_CHOICES] == list(BACKENDS) + ["reference"]
    with pytest.raises(NeurovaeError, match="unknown backend 'gpu'.*reference"):
        canonical("gpu")


def test_torch_runs_the_reference_backend(net_file):
    from neurovae.loihi_runtime import run
    net = load(net_file)
    ref, rec_ref = run(net, "reference", n=2, seed=4, record=True)
    old, rec_old = run(net, "torch", n=2, seed=4, record=True)
    emu, _ = run(net, "emulator", n=2, seed=4)
    assert torch.equal(ref, old) and torch.equal(ref, emu)
    assert rec_ref.keys() == rec_old.keys() and sum(int(v.sum()) for v in rec_ref.values())
    with pytest.raises(NeurovaeError, match="unknown backend"):
        run(net, "gpu", n=1)


# Training-side modules the deploy side must never load (test_deploy_imports.py checks the
# whole deploy side and a lava-sim run; here: the tensor backends, and what stays lazy).
FORBIDDEN = ("neurovae.models", "neurovae.train", "neurovae.kernels", "neurovae.deploy",
             "neurovae.checkpoint", "lava.lib.dl")
PROBE = r"""
import json, sys
from neurovae.loihi_runtime.backends import BACKENDS
after_import = sorted(sys.modules)
if len(sys.argv) > 1:
    from neurovae.export import load
    from neurovae.loihi_runtime import run
    net = load(sys.argv[1])
    for backend in ("reference", "emulator"):
        run(net, backend, n=1, seed=0)
print(json.dumps({"import": after_import, "run": sorted(sys.modules)}))
"""


def _loaded(*argv) -> dict:
    res = subprocess.run([sys.executable, "-c", PROBE, *map(str, argv)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    mods = json.loads(res.stdout.strip().splitlines()[-1])
    lazy = FORBIDDEN + ("neurovae.sim", "neurovae.loihi_runtime.graph", "lava.lib")
    return {"import": [m for m in mods["import"] if m.startswith(lazy)],
            "run": [m for m in mods["run"] if m.startswith(FORBIDDEN)]}


def test_deploy_side_never_imports_training(net_file):
    """The CLI reads BACKENDS without loading the simulators or the Lava graph; a run of
    the tensor backends on a `.net` loads neither the models, training nor lava-dl."""
    loaded = _loaded(net_file)
    assert loaded == {"import": [], "run": []}, loaded
