"""Latent textures and codes: lookups, and gradients that stay in their own appearance."""

import torch

from pav.fields.appearance import AppearanceCodes, LatentTextures
from pav.fields.avatar import AvatarField, ModelConfig
from pav.fields.mlp import sh_encode


def test_sample_of_one_appearance_only_trains_its_texture():
    tex = LatentTextures(3, channels=4, size=16)
    uv = torch.rand(50, 2)
    tex(uv, torch.full((50,), 1)).sum().backward()
    grad = tex.textures.grad
    assert grad[1].abs().sum() > 0
    assert grad[0].abs().sum() == 0 and grad[2].abs().sum() == 0


def test_texel_centres_read_back_exactly_and_between_is_bilinear():
    tex = LatentTextures(2, channels=3, size=8)
    size = 8
    col, row = 5, 2
    uv = torch.tensor([[(col + 0.5) / size, 1.0 - (row + 0.5) / size]])
    torch.testing.assert_close(tex(uv, torch.tensor([1])), tex.textures.data[1, row, col][None])
    mid = torch.tensor([[(col + 1.0) / size, 1.0 - (row + 0.5) / size]])  # halfway to the next column
    expected = 0.5 * (tex.textures.data[1, row, col] + tex.textures.data[1, row, col + 1])
    torch.testing.assert_close(tex(mid, torch.tensor([1])), expected[None])


def test_glo_codes_gradient_stays_in_its_appearance():
    codes = AppearanceCodes(4, channels=8)
    codes(torch.rand(10, 2), torch.full((10,), 2)).sum().backward()
    assert codes.codes.grad[2].abs().sum() > 0
    assert codes.codes.grad[[0, 1, 3]].abs().sum() == 0


def test_field_variants_and_their_inputs():
    box = (torch.tensor([-0.2, -0.3, -0.2]), torch.tensor([0.2, 0.2, 0.2]))
    n = 64
    inputs = (torch.rand(n, 3) * 0.2 - 0.1, torch.nn.functional.normalize(torch.randn(n, 3), dim=-1),
              torch.rand(n, 2), torch.randint(3, (n,)), torch.randn(n, 50), 0.2 * torch.randn(n, 6))
    small = dict(log2_hashmap_size=12, texture_size=16, hashgrid_backend="torch")
    for appearance, offset in [("texture", True), ("glo", True), ("texture", False), ("none", False)]:
        field = AvatarField(ModelConfig(appearance=appearance, offset=offset, **small), 3, *box)
        sigma, rgb = field(*inputs)
        assert sigma.shape == (n,) and rgb.shape == (n, 3)
        assert (sigma >= 0).all() and (rgb >= 0).all() and (rgb <= 1).all()
        assert (field.mlp_offset is not None) == offset
        assert (field.latent is None) == (appearance == "none")
    insta = AvatarField(ModelConfig(appearance="none", offset=False, **small), 3, *box)
    other = (*inputs[:3], (inputs[3] + 1) % 3, *inputs[4:])
    torch.testing.assert_close(insta(*inputs)[1], insta(*other)[1])  # no appearance input at all


def test_offset_group_has_its_own_parameters():
    field = AvatarField(ModelConfig(log2_hashmap_size=12, texture_size=16, hashgrid_backend="torch"), 2,
                        torch.zeros(3) - 0.2, torch.zeros(3) + 0.2)
    groups = field.param_groups()
    assert {id(p) for p in groups["offset"]} == {id(p) for p in field.mlp_offset.parameters()}
    assert len(groups["main"]) + len(groups["offset"]) == len(list(field.parameters()))


def test_sh_degree_four_is_orthonormal_on_the_sphere():
    dirs = torch.nn.functional.normalize(torch.randn(200_000, 3, dtype=torch.float64), dim=-1)
    basis = sh_encode(dirs, 4)
    gram = basis.T @ basis * (4 * torch.pi / len(dirs))
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), atol=0.03, rtol=0)


def test_glo_codes_enter_the_first_layer_as_if_concatenated():
    from pav.fields.mlp import MLP, mlp_with_codes

    torch.manual_seed(0)
    mlp, codes = MLP(512 + 20, 3, 64, 2), torch.randn(4, 512, requires_grad=True)
    index, rest = torch.randint(4, (30,)), torch.randn(30, 20, requires_grad=True)
    fast = mlp_with_codes(mlp, codes, index, rest)
    fast.square().sum().backward()
    grads = [codes.grad.clone(), rest.grad.clone(), *(p.grad.clone() for p in mlp.parameters())]
    for t in [codes, rest, *mlp.parameters()]:
        t.grad = None
    naive = mlp(torch.cat([codes[index], rest], -1))
    naive.square().sum().backward()
    torch.testing.assert_close(fast, naive)
    for got, want in zip(grads, [codes.grad, rest.grad, *(p.grad for p in mlp.parameters())], strict=True):
        torch.testing.assert_close(got, want)


def test_paper_sized_glo_codes_change_colour_per_appearance():
    field = AvatarField(ModelConfig(appearance="glo", latent_channels=512, log2_hashmap_size=12,
                                    hashgrid_backend="torch"), 3, torch.zeros(3) - 0.2, torch.zeros(3) + 0.2)
    assert field.latent.codes.shape == (3, 512)
    n = 16
    inputs = [torch.rand(n, 3) * 0.2 - 0.1, torch.nn.functional.normalize(torch.randn(n, 3), dim=-1),
              torch.rand(n, 2), torch.zeros(n, dtype=torch.long), torch.randn(n, 50), torch.zeros(n, 6)]
    first = field(*inputs)[1]
    inputs[3] = torch.ones(n, dtype=torch.long)
    assert (field(*inputs)[1] - first).abs().max() > 1e-4
