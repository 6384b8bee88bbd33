"""Loss terms: their weights come from the config and the depth term sees only masked rays."""

import pytest
import torch

from pav.train.losses import LossConfig, loss_depth, loss_distortion, loss_rgb, total_loss


def test_depth_loss_ignores_unmasked_rays():
    pred = torch.tensor([1.0, 2.0, 5.0])
    mesh = torch.tensor([1.5, 2.0, 0.0])
    mask = torch.tensor([True, True, False])
    assert float(loss_depth(pred, mesh, mask)) == 0.25
    assert float(loss_depth(pred, mesh, torch.zeros(3, dtype=torch.bool))) == 0.0


def test_total_applies_the_configured_weights():
    pred, target = torch.zeros(4, 3), torch.full((4, 3), 0.5)
    depth, mesh, mask = torch.ones(4), torch.zeros(4), torch.ones(4, dtype=torch.bool)
    assert float(loss_rgb(pred, target)) == 0.25
    terms = total_loss(LossConfig(lambda_rgb=50.0, lambda_depth=10.0), pred, target, depth, mesh, mask)
    assert float(terms["total"]) == 50 * 0.25 + 10 * 1.0
    terms = total_loss(LossConfig(lambda_rgb=2.0, lambda_depth=0.0), pred, target, depth, mesh, mask)
    assert float(terms["total"]) == 0.5


def test_depth_gradient_reaches_only_masked_rays():
    pred = torch.tensor([1.0, 2.0], requires_grad=True)
    loss_depth(pred, torch.zeros(2), torch.tensor([True, False])).backward()
    assert pred.grad[0] != 0 and pred.grad[1] == 0


def test_alpha_term_joins_only_when_given():
    pred, target = torch.zeros(2, 3), torch.zeros(2, 3)
    depth, mask = torch.zeros(2), torch.zeros(2, dtype=torch.bool)
    cfg = LossConfig(lambda_rgb=1.0, lambda_depth=1.0, lambda_alpha=4.0)
    opacity, alpha = torch.tensor([1.0, 0.5]), torch.tensor([1.0, 0.0])
    assert float(total_loss(cfg, pred, target, depth, depth, mask, opacity, alpha)["total"]) == 4.0 * 0.25
    assert "alpha" not in total_loss(cfg, pred, target, depth, depth, mask)


def _distortion_by_pairs(weights, t, deltas, ray_idx, n_rays, span):
    """The definition, one ray at a time over every pair of samples."""
    total = weights.sum() * 0.0
    for r in range(n_rays):
        on = ray_idx == r
        w, m, d = weights[on], t[on] / span, deltas[on] / span
        total = total + (w[:, None] * w[None, :] * (m[:, None] - m[None, :]).abs()).sum() + (w ** 2 * d).sum() / 3
    return total / n_rays


def test_distortion_matches_its_definition_forward_and_backward():
    generator = torch.Generator().manual_seed(0)
    counts = [5, 0, 1, 9, 3]  # a ray with no sample and one with a single sample among them
    ray_idx = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    deltas = 0.01 + 0.02 * torch.rand(len(ray_idx), generator=generator)
    t = torch.cat([torch.cumsum(deltas[ray_idx == r], 0) for r in range(len(counts))]) + 0.3
    weights = (0.3 * torch.rand(len(ray_idx), generator=generator)).requires_grad_()
    fast = loss_distortion(weights, t, deltas, ray_idx, len(counts), span=0.5)
    slow = _distortion_by_pairs(weights, t, deltas, ray_idx, len(counts), span=0.5)
    assert torch.allclose(fast, slow, rtol=1e-5)
    (fast_grad,) = torch.autograd.grad(fast, weights)
    (slow_grad,) = torch.autograd.grad(slow, weights)
    assert torch.allclose(fast_grad, slow_grad, rtol=1e-4, atol=1e-7)


def test_distortion_prefers_a_surface_to_fog():
    t = torch.linspace(0.0, 0.2, 41)
    deltas, ray_idx = torch.full((41,), 0.005), torch.zeros(41, dtype=torch.long)
    fog = torch.full((41,), 1.0 / 41)  # the same total opacity spread along the ray
    surface = torch.zeros(41)
    surface[20] = 1.0
    spread, sharp = (float(loss_distortion(w, t, deltas, ray_idx, 1, span=0.5)) for w in (fog, surface))
    assert sharp < spread / 10
    assert sharp == pytest.approx(0.005 / 0.5 / 3)  # a single sample's own stretch


def test_distortion_term_joins_with_its_weight():
    pred, target = torch.zeros(2, 3), torch.zeros(2, 3)
    depth, mask = torch.zeros(2), torch.zeros(2, dtype=torch.bool)
    cfg = LossConfig(lambda_rgb=1.0, lambda_depth=1.0, lambda_alpha=0.0, lambda_distortion=3.0)
    terms = total_loss(cfg, pred, target, depth, depth, mask, distortion=torch.tensor(0.5))
    assert float(terms["total"]) == 1.5 and float(terms["distortion"]) == 0.5
    assert "distortion" not in total_loss(cfg, pred, target, depth, depth, mask)
