"""The tiny avatar with its two latent textures pulled far apart, so a browser screenshot tells them apart."""

from types import SimpleNamespace

import pytest
import torch

# the viewer is served by viser; a machine without it (a bare GPU image) skips these tests with this reason
pytest.importorskip("viser", reason="the viewer needs viser (pip install viser)", exc_type=ImportError)

TEXTURES = "renderer.field.latent.textures"


@pytest.fixture(scope="module")
def contrasting_avatar(tiny_avatar, tmp_path_factory):
    """30 training steps leave the appearances a grey level or two apart; the viewer must show whichever is picked,
    so the second texture is replaced by a strong, fixed pattern of its own."""
    ckpt = torch.load(tiny_avatar.ckpt, map_location="cpu", weights_only=False)
    textures = ckpt["state_dict"][TEXTURES]  # [A, H, W, C]
    generator = torch.Generator().manual_seed(0)
    textures[1] = 3.0 * torch.randn(textures[1].shape, generator=generator)
    path = tmp_path_factory.mktemp("contrasting") / "contrasting.ckpt"
    torch.save(ckpt, path)
    return SimpleNamespace(ckpt=path, collection=tiny_avatar.collection)
