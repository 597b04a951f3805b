"""The wheel ships every package of the source tree under its installed name, and declares scipy.

Three source folders install under one name (see setup.py): ``neurovae/`` as ``neurovae``,
``export/`` as ``neurovae.export`` and ``loihi_runtime/`` as ``neurovae.loihi_runtime``.
Every folder with an ``__init__.py`` below them is a package that a plain ``pip install .``
must ship with all its modules; a hand-kept package list once dropped ``neurovae.metrics``,
so ``neurovae evaluate`` failed outside an editable install. Lava compiles a Process by
executing every .py file in the Process's folder, so ``loihi_runtime/processes/`` needs
all its files, not just the ones something imports.

The wheel is built from a copy of the build inputs in a temporary folder (no network, the
venv's own setuptools), so no ``build/`` or ``*.egg-info`` lands in the repository.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# source folder -> installed dotted name
SOURCE_ROOTS = {"neurovae": "neurovae", "export": "neurovae.export",
                "loihi_runtime": "neurovae.loihi_runtime"}
BUILD_INPUTS = ("pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in", "README*", "LICENSE*")


def source_packages() -> dict[str, list[str]]:
    """Dotted name -> the .py files directly in that package's folder, for every source
    folder with an __init__.py."""
    packages = {}
    for folder, name in SOURCE_ROOTS.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder).parts
            packages[".".join((name, *rel))] = sorted(p.name for p in init.parent.glob("*.py"))
    return packages


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for pattern in BUILD_INPUTS:
        for path in ROOT.glob(pattern):
            if path.is_file():
                shutil.copy2(path, src / path.name)
    for folder in SOURCE_ROOTS:
        shutil.copytree(ROOT / folder, src / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    dist = tmp / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
           "--no-index", "--disable-pip-version-check", "-q", "-w", str(dist), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"wheel build failed:\n{proc.stdout}\n{proc.stderr}"
    wheels = sorted(dist.glob("neurovae-*.whl"))
    assert len(wheels) == 1, f"expected one neurovae wheel in {dist}, found {wheels}"
    with zipfile.ZipFile(wheels[0]) as zf:
        yield zf


def test_source_scan_sees_the_known_packages():
    """Guards the scan itself: an empty or misrooted scan would make the next test vacuous."""
    found = source_packages()
    for name in ("neurovae", "neurovae.models", "neurovae.metrics", "neurovae.export",
                 "neurovae.loihi_runtime", "neurovae.loihi_runtime.processes"):
        assert name in found, f"{name} not found under {ROOT}"
    assert "recorder.py" in found["neurovae.loihi_runtime.processes"]


def test_every_source_package_is_in_the_wheel_with_all_its_modules(wheel):
    names = set(wheel.namelist())
    missing = {}
    for package, files in source_packages().items():
        folder = package.replace(".", "/")
        absent = [f for f in files if f"{folder}/{f}" not in names]
        if absent:
            missing[package] = absent
    assert not missing, (f"the wheel lacks these packages' files (package: files): {missing}; "
                         "the package list in setup.py no longer covers the source tree")


def test_wheel_installs_nothing_outside_neurovae(wheel):
    """export/ and loihi_runtime/ must not also land as top-level `export`/`loihi_runtime`."""
    stray = sorted(n for n in wheel.namelist()
                   if not n.startswith(("neurovae/", "neurovae-")))
    assert not stray, f"files outside the neurovae package: {stray}"
    shipped = {n.rsplit("/", 1)[0].replace("/", ".") for n in wheel.namelist()
               if n.endswith("/__init__.py")}
    assert shipped == set(source_packages()), (
        f"extra in wheel: {sorted(shipped - set(source_packages()))}, "
        f"missing from wheel: {sorted(set(source_packages()) - shipped)}")


def test_metadata_declares_scipy(wheel):
    (meta_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    meta = Parser().parsestr(wheel.read(meta_name).decode())
    requires = meta.get_all("Requires-Dist") or []
    hard = {re.split(r"[\s;<>=!~\[(]", r, maxsplit=1)[0].lower().replace("_", "-")
            for r in requires if ";" not in r}
    assert "scipy" in hard, f"scipy is not a hard dependency; Requires-Dist: {requires}"
