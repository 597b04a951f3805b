"""Package list for setuptools; all other metadata lives in pyproject.toml.

Three source folders install under one name: ``neurovae/`` as ``neurovae``, ``export/`` as
``neurovae.export`` and ``loihi_runtime/`` as ``neurovae.loihi_runtime``. pyproject.toml's
``[tool.setuptools.packages.find]`` cannot rename what it finds, so the list is computed
here: every folder with an ``__init__.py`` under those three roots, at any depth, mapped to
its dotted name. A new subpackage ships without editing this file.
"""
from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).resolve().parent

# installed name -> source folder, relative to the repository root
PACKAGE_DIR = {
    "neurovae": "neurovae",
    "neurovae.export": "export",
    "neurovae.loihi_runtime": "loihi_runtime",
}


def _packages() -> list[str]:
    packages = []
    for name, folder in PACKAGE_DIR.items():
        root = HERE / folder
        # find_namespace_packages walks into folders without __init__.py too, so a package
        # below a plain folder is still found; keep only real packages (no __pycache__).
        for sub in [""] + find_namespace_packages(str(root)):
            if (root / sub.replace(".", "/") / "__init__.py").is_file():
                packages.append(f"{name}.{sub}" if sub else name)
    return sorted(set(packages))


setup(packages=_packages(), package_dir=PACKAGE_DIR)
