"""Rays canonicalized segment by segment stop where they turn opaque, and render what one pass renders; the
transmittance cut (samples behind T < render.min_transmittance) moves outputs and gradients by its threshold only."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from pav.data.datamodule import AvatarDataModule
from pav.train.config import typed_config
from pav.train.run import make_meta
from pav.train.system import AvatarSystem

REPO = Path(__file__).resolve().parents[2]


class Counting:
    """The canonicalizer, counting the points it is asked about."""

    def __init__(self, inner) -> None:
        self.inner, self.points = inner, 0

    def __call__(self, points, *args):
        self.points += len(points)
        return self.inner(points, *args)

    def to(self, device):
        self.inner.to(device)
        return self


@pytest.fixture
def opaque_head(tiny_collection):
    """The smoke model's renderer with an opaque head, the tiny collection's training frames and one batch of their
    rays. Seeded: the same field and occupancy grid every run."""
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        t = typed_config(compose("train", overrides=["trainer=smoke", f"data.root={tiny_collection}"]))
    dm = AvatarDataModule(t.data, 0)
    dm.load(t.loss.depth_regions)
    dm.setup("fit")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        renderer = AvatarSystem(t.model, t.render, t.loss, t.optim, make_meta(dm, t.model)).renderer
        renderer.field.cfg.density_bias = 4.0  # an opaque head: rays saturate a few samples in
        renderer.update_grid(dm.train_frames, 0)
    batch = dm.train_dataloader().dataset.batch(torch.Generator().manual_seed(0))
    return renderer, dm.train_frames, batch


def test_segments_skip_hidden_samples_and_render_the_same(opaque_head):
    renderer, frames, batch = opaque_head
    renderer.canonicalizer = counting = Counting(renderer.canonicalizer)
    outputs, asked = {}, {}
    for seg in (0, 4):
        renderer.cfg.segment_samples = seg
        counting.points = 0
        with torch.no_grad():
            outputs[seg] = renderer.render_rays(batch["origins"], batch["dirs"], batch["frame_idx"], frames,
                                                batch["background"])
        asked[seg] = counting.points
    assert float(outputs[0].opacity.max()) > 0.99  # some rays did turn opaque
    assert asked[4] < 0.7 * asked[0]  # the samples behind them were never canonicalized
    assert len(outputs[4].weights) == len(outputs[0].weights)  # and the same samples reach the colour pass
    for name in ("rgb", "opacity", "depth", "weights"):
        torch.testing.assert_close(getattr(outputs[4], name), getattr(outputs[0], name), atol=1e-5, rtol=1e-5)


def relative_change(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    """|got - want| / |want|, L2 over all the tensors together."""
    diff = torch.cat([(g - w).flatten() for g, w in zip(got, want, strict=True)])
    return float(diff.norm() / torch.cat([w.flatten() for w in want]).norm())


def test_the_transmittance_cut_moves_outputs_and_gradients_by_its_threshold_only(opaque_head):
    renderer, frames, batch = opaque_head
    renderer.cfg.segment_samples = 4  # several segments a ray: the cut stops rays part way, as in training
    min_t = renderer.cfg.min_transmittance
    named = list(renderer.field.named_parameters())
    params = [p for _, p in named]
    colour = [i for i, (name, _) in enumerate(named) if name.startswith("mlp_color.")]  # MLP-C
    rest = [i for i, (name, _) in enumerate(named) if not name.startswith("mlp_color.")]  # grid, MLP-D, -O, texture
    upstream = None
    outputs, grads = {}, {}
    for threshold in (min_t, min_t / 10, 0.0):  # 0: no density pass, every valid sample is rendered
        renderer.cfg.min_transmittance = threshold
        out = renderer.render_rays(batch["origins"], batch["dirs"], batch["frame_idx"], frames, batch["background"])
        if upstream is None:  # one random upstream gradient, shared by the three renders
            gen = torch.Generator().manual_seed(1)
            upstream = [torch.randn(o.shape, generator=gen) for o in (out.rgb, out.opacity, out.depth)]
        outputs[threshold] = out
        grads[threshold] = torch.autograd.grad([out.rgb, out.opacity, out.depth], params, upstream)
    full = outputs[0.0]
    for threshold in (min_t, min_t / 10):
        cut = outputs[threshold]
        assert len(cut.weights) < 0.8 * len(full.weights)  # the cut did drop samples
        # what it dropped lay behind T < threshold: under threshold of each ray's weight (+ float32 sums near 1)
        dropped_weight = (full.opacity - cut.opacity).detach()
        assert 0 < float(dropped_weight.max()) < threshold + 1e-6
        torch.testing.assert_close(cut.opacity, full.opacity, atol=threshold + 1e-6, rtol=0)
        # each dropped sample moved rgb by its weight times |colour - background| <= 1, depth by weight times t
        torch.testing.assert_close(cut.rgb, full.rgb, atol=threshold + 1e-6, rtol=0)
        far = float(full.sample_t.max())
        torch.testing.assert_close(cut.depth, full.depth, atol=threshold * far + 1e-6, rtol=0)
        # MLP-C's gradient flows through the weights alone: the kept samples' are unchanged, the dropped ones sum
        # to under threshold a ray (x2: rays add up with random signs, the sums' ratio is not each ray's)
        assert relative_change([grads[threshold][i] for i in colour], [grads[0.0][i] for i in colour]) < 2 * threshold
    # a saturated ray's density gradients are themselves of the order of its leftover transmittance, so the cut's
    # share of them has no bound in the threshold alone; but it is the cut's: it goes as t ln(1/t) with the threshold
    # t (a kept density's gradient carries its optical depth, which sum to ln(1/t)): t / 10 leaves 7.5 times less
    # at t = 1e-3 (8.3 here), where a cut that lost gradients, or kept wrong samples, would leave the same
    change = {threshold: relative_change([grads[threshold][i] for i in rest], [grads[0.0][i] for i in rest])
              for threshold in (min_t, min_t / 10)}
    assert change[min_t / 10] < change[min_t] / 4, change
