"""The faster CPU leaky-integrator loop gives exactly lava-dl's results, forward and backward."""
import pytest
import torch

from neurovae import cuba_kernel, li_dynamics
from neurovae.models import build_model


@pytest.mark.parametrize("shape,threshold,decay", [
    ((4, 3, 5, 5, 16), None, 0.0),                 # current: no reset, no memory
    ((4, 3, 5, 5, 16), 1.25 + 0.01 / 4096, 1024.0),  # voltage with reset, FSVAE's leak
    ((8, 100, 20), 0.2 + 0.01 / 4096, 3072.0),
    ((2, 7, 30), 3.0, 0.0),                        # threshold on an exact integer
])
def test_matches_lava_dl(shape, threshold, decay):
    torch.manual_seed(0)
    x = (torch.randn(*shape) * 2).requires_grad_()
    d = torch.tensor([decay])
    state = torch.randn(*shape[:-1]) * 0.5
    ref = li_dynamics._ORIGINAL(x, d, state, 4096, threshold)
    got = li_dynamics.dynamics(x, d, state, 4096, threshold)
    assert torch.equal(ref, got)
    g = torch.randn_like(ref)
    assert torch.equal(*(torch.autograd.grad(y, x, g)[0] for y in (ref, got)))


def test_reset_comparison_follows_float32_rounding():
    # lava-dl compares int64 states with a float threshold in float32
    assert li_dynamics.first_integer_at_or_above(5120.01) == 5121
    assert li_dynamics.first_integer_at_or_above(5120.0) == 5120


@pytest.mark.parametrize("kind", ["fsvae", "esvae"])
def test_training_step_is_unchanged(tiny_cfg, kind, monkeypatch):
    """Loss and every gradient of a model equal lava-dl's own dynamics bit for bit.

    The fused CUBA kernel is switched off here, so lava-dl's neurons integrate through the
    code under test; a counter proves the faster loop really ran."""
    calls = []
    real = li_dynamics._FastLI.apply
    monkeypatch.setattr(li_dynamics._FastLI, "apply",
                        lambda *a: calls.append(1) or real(*a))
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    results = []
    cuba_kernel.uninstall()
    try:
        for use_fast in (False, True):
            (li_dynamics.install if use_fast else li_dynamics.uninstall)()
            calls.clear()
            torch.manual_seed(3)
            model = build_model(tiny_cfg(kind))
            out = model(x, seed=1, images=torch.arange(4), ss_p=0.5,
                        gen=torch.Generator().manual_seed(1))
            out["loss"].backward()
            results.append((out["loss"].detach(), [p.grad.clone() for p in model.parameters()
                                                   if p.grad is not None], len(calls)))
    finally:
        li_dynamics.install()
        cuba_kernel.install()
    (l0, g0, n0), (l1, g1, n1) = results
    assert n0 == 0 and n1 > 0, (n0, n1)
    assert torch.equal(l0, l1) and len(g0) == len(g1) > 4
    assert all(torch.equal(a, b) for a, b in zip(g0, g1))
