"""Fashion-MNIST: IDX files in data_dir, else in the system folders where Debian's dataset-fashion-mnist package installs them."""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from ..imageset import ImageSet
from ..registry import register
from . import mnist_like

SUBFOLDERS = ("fashion-mnist", "FashionMNIST/raw")

# System directories searched after data_dir (Debian's dataset-fashion-mnist installs into
# the first one).  The live setting is neurovae.data.FASHION_MNIST_DIRS (see _system_dirs).
DEFAULT_DIRS: tuple[str, ...] = (
    "/usr/share/datasets/fashion-mnist",
    "/usr/share/dataset-fashion-mnist",
    "/usr/local/share/datasets/fashion-mnist",
)


def _system_dirs() -> tuple[str, ...]:
    """neurovae.data.FASHION_MNIST_DIRS, read at each load so that assigning it (e.g. in tests) overrides the search."""
    from .. import FASHION_MNIST_DIRS

    return FASHION_MNIST_DIRS


@register("fashion-mnist", channels=1)
def load(split: str, root: Path | None, image_size, channels) -> ImageSet:
    """The split from IDX files in data_dir (or its fashion-mnist/, FashionMNIST/raw/ subfolders) or a system folder."""
    system = _system_dirs()
    dirs = mnist_like.search_dirs(root, SUBFOLDERS) + [Path(d) for d in system]
    found = mnist_like.load_idx_folder("fashion-mnist", split, dirs, image_size, channels)
    if found is not None:
        return found
    searched = f" (searched {', '.join(system)})" if system else ""
    raise DatasetError(
        f"Fashion-MNIST not found: put {mnist_like.FILES} in {mnist_like.where(root, SUBFOLDERS)}, or install "
        f"Debian's package with `apt-get install dataset-fashion-mnist`, which puts them in "
        f"/usr/share/datasets/fashion-mnist (`dpkg -L dataset-fashion-mnist` lists them){searched}"
    )
