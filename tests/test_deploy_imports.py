"""One direction of imports: the deploy side (export/, loihi_runtime/) never loads training.

Checked twice: by walking every import of the deploy side's source, lazy ones included,
through the package, and by running a `.net` file on Lava in a fresh process and listing
what got imported. `import neurovae` itself has no side effects.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "examples" / "pretrained" / "fsvae-mnist-small.net"
# the training side: models, training loop and its kernels, checkpoints, lava-dl's SLAYER
FORBIDDEN = ("neurovae.models", "neurovae.train", "neurovae.cuba_kernel",
             "neurovae.li_dynamics", "neurovae.spiking_block", "neurovae.kernels",
             "neurovae.neuron", "neurovae.deploy", "neurovae.checkpoint", "neurovae.cli",
             "neurovae.torch_cuba", "neurovae.devices",
             "lava.lib.dl")
PACKAGE_DIRS = {"neurovae.export": ROOT / "export",
                "neurovae.loihi_runtime": ROOT / "loihi_runtime", "neurovae": ROOT / "neurovae"}


def _file_of(module: str) -> Path | None:
    """The source file of a neurovae module (None outside the project)."""
    for prefix, folder in PACKAGE_DIRS.items():     # longest prefixes first
        if module == prefix or module.startswith(prefix + "."):
            rest = module[len(prefix):].lstrip(".").split(".") if module != prefix else []
            base = folder.joinpath(*rest)
            for f in (base.with_suffix(".py"), base / "__init__.py"):
                if rest and f.is_file() or not rest and f.name == "__init__.py" and f.is_file():
                    return f
            return None
    return None


def _module_of(path: Path) -> str:
    for prefix, folder in PACKAGE_DIRS.items():
        if folder in path.parents or path.parent == folder:
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            return ".".join([prefix] + parts)
    raise ValueError(path)


def _imports(path: Path) -> set[str]:
    """Every module a file imports anywhere in it (function bodies included), absolute."""
    mod = _module_of(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names)   # submodules imported by name
    return out


def _reachable(start: list[Path]) -> dict[str, str]:
    """Modules reachable from the files, each with the module that first imported it."""
    seen: dict[str, str] = {}
    todo = [(_module_of(p), "") for p in start]
    while todo:
        mod, by = todo.pop()
        if mod in seen:
            continue
        seen[mod] = by
        f = _file_of(mod)
        if f is None:
            continue
        parent = mod.rsplit(".", 1)[0]
        if parent != mod and _file_of(parent) is not None:
            todo.append((parent, mod))     # importing a.b runs a/__init__.py
        todo.extend((m, mod) for m in _imports(f))
    return seen


def _deploy_files() -> list[Path]:
    return sorted(p for d in ("export", "loihi_runtime") for p in (ROOT / d).rglob("*.py"))


def test_deploy_side_source_never_imports_training_code():
    seen = _reachable(_deploy_files())
    bad = sorted(f"{m} (imported by {by})" for m, by in seen.items()
                 if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert not bad, "the deploy side reaches training code: " + "; ".join(bad)
    # the walk does follow imports: the deploy core and the PRNG are reached
    assert {"neurovae.hw.net", "neurovae.prng", "neurovae.sim.emulator"} <= set(seen)


def test_the_walk_finds_a_forbidden_import(tmp_path, monkeypatch):
    """The checker itself: a deploy module that imports the models is caught."""
    fake = tmp_path / "loihi_runtime"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "bad.py").write_text("def f():\n    from neurovae.models import build_model\n")
    monkeypatch.setitem(PACKAGE_DIRS, "neurovae.loihi_runtime", fake)
    seen = _reachable([fake / "bad.py"])
    assert "neurovae.models" in seen


def _fresh(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=240, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_import_neurovae_has_no_side_effects():
    out = _fresh("import sys, neurovae; "
                 "print(sorted(m for m in sys.modules if m.startswith(('neurovae', 'torch', "
                 "'lava', 'numba'))))")
    assert out.strip() == "['neurovae']"


@pytest.mark.slow
def test_running_a_net_on_lava_loads_no_training_code():
    out = _fresh(f"""
import sys
import numpy as np
from neurovae.export import load
from neurovae.loihi_runtime import run
net = load({str(PRETRAINED)!r})
x = np.zeros((1, *net.image_shape), np.uint8)
x[..., 8:20, 12:16] = 255
images, _ = run(net, "lava-sim", x_bytes=x, seed=0)
assert images.shape == (1, *net.image_shape), images.shape
print("\\n".join(sorted(sys.modules)))
""")
    loaded = set(out.split())
    assert "lava.magma.runtime.runtime" in loaded        # it did run on Lava
    bad = sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert not bad, f"a Lava run imported training code: {bad}"
