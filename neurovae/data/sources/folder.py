"""Image folder: every png/jpg/jpeg/bmp/gif file under data_dir, decoded into memory at once (no labels, no splits)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..cache import CACHE, signature
from ..errors import DatasetError
from ..image_files import header_size, is_gray, open_image, pil_to_tensor
from ..imageset import ImageSet
from ..registry import register
from ..transforms import resize

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def folder_root(data_dir) -> Path:
    """data_dir as an existing folder (user-expanded); DatasetError when it is not given or not a folder."""
    if data_dir is None:
        raise DatasetError("the 'folder' dataset needs --data-dir: a directory of png/jpg/jpeg/bmp/gif images")
    root = Path(os.path.expanduser(os.fspath(data_dir)))
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist or is not a directory")
    return root


def folder_files(root: Path) -> list[Path]:
    """All image files under root (recursive, sorted; hidden files and folders skipped); a non-image file is an error."""
    files = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or p.is_dir():
            continue
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DatasetError(
                f"{p} is not an image file (supported: {', '.join(IMAGE_EXTENSIONS)}); "
                f"remove it from {root}"
            )
        files.append(p)
    if not files:
        raise DatasetError(f"image folder {root} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def default_channels(data_dir) -> int:
    """1 if every image under data_dir is grayscale (from the headers), else 3."""
    if data_dir is None:
        raise DatasetError(
            "the channel count of a 'folder' dataset depends on its images: pass data_dir "
            "or use load_images('folder', data_dir=...).channels"
        )
    files = folder_files(folder_root(data_dir))
    return 1 if all(is_gray(f) for f in files) else 3


@register("folder", channels=default_channels)
def load(split: str, root: Path | None, image_size, channels) -> ImageSet:
    """Every image of the folder, decoded at once (the split is ignored: both splits are all images)."""
    root = folder_root(root)
    files = folder_files(root)
    key = ("folder", signature(*files), image_size, channels)  # split ignored: both are all images
    data = CACHE.get(key)
    if data is None:
        sizes = [header_size(f) for f in files]
        if image_size is None:
            for f, s in zip(files, sizes):
                if s != sizes[0]:
                    raise DatasetError(
                        f"images differ in size: {files[0].name} is {sizes[0][0]}x{sizes[0][1]} but "
                        f"{f.relative_to(root)} is {s[0]}x{s[1]}; pass image_size (--set image_size=N) to resize them all"
                    )
            if sizes[0][0] != sizes[0][1]:
                raise DatasetError(
                    f"images in {root} are {sizes[0][0]}x{sizes[0][1]}, not square; pass image_size "
                    "(--set image_size=N) to center-crop and resize them"
                )
        ch = channels or (1 if all(is_gray(f) for f in files) else 3)
        mode = "L" if ch == 1 else "RGB"
        items = []
        for f in files:
            x = pil_to_tensor(open_image(f, mode)).unsqueeze(0)
            h, w = x.shape[-2:]
            if h != w:  # only reachable with image_size: center-crop to a square first
                c = min(h, w)
                top, left = (h - c) // 2, (w - c) // 2
                x = x[..., top:top + c, left:left + c]
            items.append(resize(x, image_size) if image_size is not None else x)
        data = torch.cat(items)
        CACHE[key] = data
    return ImageSet("folder", split, data.shape[1], data.shape[-1], data=data, source=str(root))
