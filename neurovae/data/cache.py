"""Per-process cache of decoded datasets, keyed by their source files, so a repeated load costs nothing."""

from __future__ import annotations

from pathlib import Path

# (name, split, source signature, image_size, channels) -> (uint8 tensor (N, C, H, W),
# int64 labels (N,) or None) for mnist-like and cifar10, a uint8 tensor for folder (no
# labels; its keys leave out the split), or for celeba a tuple of image paths.
CACHE: dict[tuple, object] = {}
# Further caches of intermediate decodes (see side_cache), emptied with CACHE.
_SIDE_CACHES: list[dict] = []


def side_cache() -> dict:
    """A new cache dict for a source's intermediate decodes; :func:`clear_cache` empties it too."""
    cache: dict = {}
    _SIDE_CACHES.append(cache)
    return cache


def signature(*paths: Path) -> tuple:
    """Cache key part identifying files by resolved path, size and modification time."""
    out = []
    for p in paths:
        st = p.stat()
        out.append((str(p.resolve()), st.st_size, st.st_mtime_ns))
    return tuple(out)


def clear_cache() -> None:
    """Forget all decoded datasets held by this process (frees their memory)."""
    CACHE.clear()
    for cache in _SIDE_CACHES:
        cache.clear()
