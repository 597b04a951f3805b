import numpy as np
import torch

from neurovae import prng


def _reference(seed, image, step, neuron):
    """Plain-Python murmur3 fmix32 chain: the specification the vectorized code must meet."""
    M = 0xFFFFFFFF

    def fmix(x):
        x ^= x >> 16
        x = (x * 0x85EBCA6B) & M
        x ^= x >> 13
        x = (x * 0xC2B2AE35) & M
        return x ^ (x >> 16)

    h = fmix((seed + 0x9E3779B9) & M)
    for v in (image, step, neuron):
        h = fmix(h ^ ((v + 0x9E3779B9) & M))
    return h


def test_numpy_and_torch_bit_identical_on_a_million_draws():
    n = np.arange(1_000_000)
    a = prng.draw_numpy(123, 7, 11, n)
    b = prng.draw_torch(123, 7, 11, torch.arange(1_000_000)).numpy()
    assert a.dtype == np.int64 and (a == b).all()
    steps = np.arange(1000)[:, None]
    imgs = np.arange(1000)[None, :]
    assert (prng.draw_numpy(5, imgs, steps, 3) ==
            prng.draw_torch(5, torch.as_tensor(imgs), torch.as_tensor(steps), 3).numpy()).all()


def test_matches_plain_python_reference():
    for seed, image, step, neuron in [(0, 0, 0, 0), (1, 2, 3, 4), (2**32 - 1, 99, 1000, 123456),
                                      (42, 5, 17, 2**31 + 5)]:
        assert int(prng.draw_numpy(seed, image, step, neuron)) == _reference(seed, image, step, neuron)


def test_uniform_and_sensitive_to_every_counter():
    x = prng.randint_numpy(9, 0, 0, np.arange(200_000), 20)
    counts = np.bincount(x, minlength=20)
    assert counts.min() > 9_400 and counts.max() < 10_600
    base = prng.draw_numpy(1, 2, 3, np.arange(1000))
    for args in ((2, 2, 3), (1, 3, 3), (1, 2, 4)):
        assert (prng.draw_numpy(*args, np.arange(1000)) != base).mean() > 0.99
