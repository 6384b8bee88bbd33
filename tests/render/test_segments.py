"""Rays canonicalized segment by segment stop where they turn opaque, and render what one pass renders."""

from pathlib import Path

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


def test_segments_skip_hidden_samples_and_render_the_same(tiny_collection):
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        t = typed_config(compose("train", overrides=["trainer=smoke", f"data.root={tiny_collection}"]))
    dm = AvatarDataModule(t.data, 0)
    dm.load(t.loss.depth_regions)
    dm.setup("fit")
    renderer = AvatarSystem(t.model, t.render, t.loss, t.optim, make_meta(dm, t.model)).renderer
    renderer.field.cfg.density_bias = 4.0  # an opaque head: rays saturate a few samples in
    frames = dm.train_frames
    renderer.update_grid(frames, 0)
    batch = dm.train_dataloader().dataset.batch(torch.Generator().manual_seed(0))
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
