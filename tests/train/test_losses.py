"""Loss terms: their weights come from the config and the depth term sees only masked rays."""

import torch

from pav.train.losses import LossConfig, loss_depth, loss_rgb, total_loss


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
