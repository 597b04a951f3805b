"""CelebA: the aligned face jpgs and list_eval_partition.txt under data_dir/celeba/, decoded lazily (no labels)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..cache import CACHE, signature
from ..errors import DatasetError
from ..image_files import open_image, pil_to_tensor
from ..imageset import ImageSet
from ..registry import register
from ..transforms import resize

_NATIVE_SIZE = 64
_CROP = 148
_PARTITION = {"train": 0, "test": 2}


def _base_dir(root: Path) -> Path:
    """The folder holding img_align_celeba/: data_dir/celeba, or data_dir itself."""
    if not (root / "celeba").is_dir() and (root / "img_align_celeba").is_dir():
        return root  # data_dir points at the celeba folder itself
    return root / "celeba"


def _read_partition(path: Path) -> list[tuple[str, int]]:
    """Rows (file name, partition) of list_eval_partition.txt (space separated) or .csv (with header)."""
    rows = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    sep = "," if path.suffix == ".csv" else None
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        fields = line.split(sep)
        try:
            rows.append((fields[0].strip(), int(fields[1])))
        except (IndexError, ValueError):
            if sep == "," and lineno == 1:
                continue  # csv header: image_id,partition
            raise DatasetError(f"{path} line {lineno} is not '<image>.jpg <0|1|2>': {line[:60]!r}") from None
    return rows


@register("celeba", channels=3, flip=True)
def load(split: str, root: Path | None, image_size, channels) -> ImageSet:
    """The split listed in list_eval_partition.txt (.csv also read), as a lazy set decoding one image per item."""
    layout = (
        "<data-dir>/celeba/img_align_celeba/*.jpg and <data-dir>/celeba/list_eval_partition.txt "
        "(torchvision's CelebA layout); nothing is downloaded"
    )
    if root is None:
        raise DatasetError(f"celeba needs --data-dir: expected {layout}")
    if not root.is_dir():
        raise DatasetError(f"CelebA data dir {root} does not exist; expected {layout}")
    base = _base_dir(root)
    img_dir = base / "img_align_celeba"
    part = base / "list_eval_partition.txt"
    if not part.is_file() and (base / "list_eval_partition.csv").is_file():
        part = base / "list_eval_partition.csv"
    if not img_dir.is_dir() or not part.is_file():
        missing = [str(p) for p in (img_dir, part) if not p.exists()]
        raise DatasetError(f"CelebA not found in {root}: missing {', '.join(missing)}; expected {layout}")
    key = ("celeba", split, signature(part), image_size, channels)
    paths = CACHE.get(key)
    if paths is None:
        want = _PARTITION[split]
        paths = tuple(img_dir / f for f, p in _read_partition(part) if p == want)
        if not paths:
            raise DatasetError(f"{part} lists no images for the {split} split (partition {want})")
        for p in (paths[0], paths[-1]):
            if not p.is_file():
                raise DatasetError(f"CelebA image {p} listed in {part.name} is missing; expected {layout}")
        CACHE[key] = paths
    size = image_size or _NATIVE_SIZE
    ch = channels or 3
    return ImageSet("celeba", split, ch, size, paths=paths, load_item=CelebaItem(size, ch), source=str(base))


class CelebaItem:
    """Decode one CelebA jpg: 148-px center crop (torchvision's rounding), resize, 1 or 3 channels (picklable for DataLoader workers)."""

    def __init__(self, size: int, channels: int):
        self.size = size
        self.mode = "L" if channels == 1 else "RGB"

    def __call__(self, path: Path) -> torch.Tensor:
        img = open_image(path, self.mode)
        w, h = img.size
        c = min(_CROP, w, h)
        top, left = int(round((h - c) / 2.0)), int(round((w - c) / 2.0))
        img = img.crop((left, top, left + c, top + c))
        return resize(pil_to_tensor(img).unsqueeze(0), self.size)[0]
