"""The avatar's radiance field in canonical space: hash grid + MLP-D, appearance latent, MLP-O, MLP-C.

Variants (ModelConfig.appearance / .offset):
  pav           texture + offset   density s' = s + MLP-O(z, e), colour MLP-C(z, SH(d), s')
  pav_glo       one code per appearance (512 wide, the paper's GLO ablation) instead of the texture
  pav_no_offset texture, no MLP-O
  insta         no appearance input, no MLP-O: colour MLP-C(SH(d), s)

e is the conditioning: the leading expression coefficients and, with pose_cond, the head's global and neck rotation
(hair and shoulders beyond the mesh follow the head's pose, not rigidly the nearest triangle).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .appearance import AppearanceCodes, LatentTextures
from .encoding import HashGrid
from .mlp import MLP, mlp_with_codes, sh_encode, trunc_exp

APPEARANCE_KINDS = ("texture", "glo", "none")
EXPR_REGIONS = ("all", "mouth")
POSE_DIMS = 6  # global and neck rotation, axis-angle
POSE_SCALE = 5.0  # radians of head motion (~0.1-0.3) to the expression coefficients' range (~1)


@dataclass
class ModelConfig:
    name: str = "pav"
    appearance: str = "texture"  # texture | glo | none
    offset: bool = True  # MLP-O density offset from the appearance latent
    latent_channels: int = 16
    texture_size: int = 512
    n_expr_cond: int = 16  # leading expression coefficients fed to MLP-D and MLP-O
    expr_region: str = "all"  # all | mouth: only samples whose nearest triangle is near the mouth see the
    # expression, the others zeros (INSTA's conditioning; pav/head/regions.py: mouth_faces)
    pose_cond: bool = True  # MLP-D and MLP-O also see the global and neck rotation (FrameSet.pose, 6 values)
    density_dims: int = 16  # s, the density feature; density = trunc_exp(s[0])
    hidden: int = 64
    n_levels: int = 16
    n_features: int = 2
    log2_hashmap_size: int = 18
    base_resolution: int = 16
    finest_resolution: int = 2048
    sh_degree: int = 4
    hashgrid_backend: str = "auto"
    deform: str = "rigid"  # rigid | affine
    rigid_reach: float = 0.01  # metres: samples farther from their triangle move with its closest point instead
    # (fully at twice this), so a thin triangle's turn (an eyelid's) cannot swing them across the face; inf: never
    outer_dist: float = 0.06  # metres: samples farther outside the mesh have no density (the least reach)
    reach: str = "mattes"  # mattes: outer_dist grows to what the training mattes show (pav/data/reach.py) | fixed
    max_reach: float = 0.25  # metres: the most that `reach=mattes` may grow outer_dist to
    inner_dist: float = 0.015  # metres: samples deeper inside the mesh have no density
    box_margin: float = 0.07  # metres around the canonical mesh: the head box and the hash grid's box
    density_bias: float = -1.0  # added to s[0] before trunc_exp; starts the field nearly empty


class AvatarField(nn.Module):
    """Density and colour of canonical samples; never sees rays, only points, directions and conditioning."""

    def __init__(self, cfg: ModelConfig, n_appearances: int, box_min: Tensor, box_max: Tensor,
                 pose_range: Tensor | None = None) -> None:
        """pose_range [2, 6]: the training frames' least and most pose; a render's pose is clamped to it, since the
        MLPs know nothing of poses past it (a turntable's 60 degrees of yaw). None: unclamped."""
        super().__init__()
        if cfg.appearance not in APPEARANCE_KINDS:
            raise ValueError(f"model.appearance must be one of {APPEARANCE_KINDS}, got {cfg.appearance!r}")
        if cfg.offset and cfg.appearance == "none":
            raise ValueError("model.offset=true needs an appearance latent (model.appearance texture or glo)")
        if cfg.expr_region not in EXPR_REGIONS:
            raise ValueError(f"model.expr_region must be one of {EXPR_REGIONS}, got {cfg.expr_region!r}")
        self.cfg = cfg
        self.register_buffer("box_min", box_min.float().clone())  # [3]
        self.register_buffer("box_max", box_max.float().clone())  # [3]
        if pose_range is not None and tuple(pose_range.shape) != (2, POSE_DIMS):
            raise ValueError(f"AvatarField: pose_range must be [2, {POSE_DIMS}], got {tuple(pose_range.shape)}")
        # kept in the checkpoint's meta, not its weights
        self.register_buffer("pose_range", None if pose_range is None else pose_range.float().clone(), persistent=False)
        self.encoding = HashGrid(cfg.n_levels, cfg.n_features, cfg.log2_hashmap_size, cfg.base_resolution,
                                 cfg.finest_resolution, backend=cfg.hashgrid_backend)
        n_cond = cfg.n_expr_cond + (POSE_DIMS if cfg.pose_cond else 0)
        self.mlp_density = MLP(self.encoding.n_output_dims + n_cond, cfg.density_dims, cfg.hidden, 1)
        self.latent: nn.Module | None = None
        z_dims = 0
        if cfg.appearance == "texture":
            self.latent = LatentTextures(n_appearances, cfg.latent_channels, cfg.texture_size)
            z_dims = cfg.latent_channels
        elif cfg.appearance == "glo":
            self.latent = AppearanceCodes(n_appearances, cfg.latent_channels)
            z_dims = cfg.latent_channels
        self.mlp_offset = MLP(z_dims + n_cond, cfg.density_dims, cfg.hidden, 1) if cfg.offset else None
        self.mlp_color = MLP(z_dims + cfg.sh_degree ** 2 + cfg.density_dims, 3, cfg.hidden, 2)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by optimiser group: 'offset' (MLP-O) and 'main' (everything else)."""
        offset = list(self.mlp_offset.parameters()) if self.mlp_offset is not None else []
        ids = {id(p) for p in offset}
        return {"main": [p for p in self.parameters() if id(p) not in ids], "offset": offset}

    def normalize(self, canon_points: Tensor) -> Tensor:
        """Canonical points [N, 3] -> the hash grid's unit box."""
        return ((canon_points - self.box_min) / (self.box_max - self.box_min)).clamp(0.0, 1.0)

    def _cond(self, expr: Tensor, pose: Tensor) -> Tensor:
        """expr [N, n_expr], pose [N, 6] -> the conditioning [N, n_expr_cond (+ 6)] MLP-D and MLP-O see."""
        n = self.cfg.n_expr_cond
        e = expr[:, :n] if expr.shape[1] >= n else torch.cat([expr, expr.new_zeros(len(expr), n - expr.shape[1])], 1)
        if not self.cfg.pose_cond:
            return e
        if pose.shape != (len(expr), POSE_DIMS):
            raise ValueError(f"AvatarField: pose must be [N, {POSE_DIMS}] (global and neck rotation), got "
                             f"{tuple(pose.shape)} for {len(expr)} samples")
        pose = pose.to(e.dtype)
        if self.pose_range is not None:
            pose = torch.maximum(torch.minimum(pose, self.pose_range[1]), self.pose_range[0])
        return torch.cat([e, POSE_SCALE * pose], 1)

    def density(self, canon_points: Tensor, uv: Tensor, appearance: Tensor, expr: Tensor,
                pose: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """canon_points [N, 3], uv [N, 2], appearance [N], expr [N, n_expr], pose [N, 6] -> sigma [N], s' [N, D],
        z [N, C] (the texture's features; None for GLO, whose code enters each MLP's first layer once per
        appearance)."""
        e = self._cond(expr, pose)
        s = self.mlp_density(torch.cat([self.encoding(self.normalize(canon_points)), e], -1))  # [N, D]
        glo = isinstance(self.latent, AppearanceCodes)
        z = self.latent(uv, appearance) if self.latent is not None and not glo else None
        if self.mlp_offset is not None:
            if glo:
                s = s + mlp_with_codes(self.mlp_offset, self.latent.codes, appearance.long(), e)
            else:
                s = s + self.mlp_offset(torch.cat([z, e], -1))
        sigma = trunc_exp(s[:, 0] + self.cfg.density_bias)
        return sigma, s, z

    def forward(self, canon_points: Tensor, canon_dirs: Tensor, uv: Tensor, appearance: Tensor, expr: Tensor,
                pose: Tensor) -> tuple[Tensor, Tensor]:
        """-> sigma [N], rgb [N, 3] in [0, 1]."""
        sigma, s, z = self.density(canon_points, uv, appearance, expr, pose)
        rest = torch.cat([sh_encode(canon_dirs, self.cfg.sh_degree), s], -1)
        if isinstance(self.latent, AppearanceCodes):
            rgb = mlp_with_codes(self.mlp_color, self.latent.codes, appearance.long(), rest)
        else:
            rgb = self.mlp_color(rest if z is None else torch.cat([z, rest], -1))
        return sigma, torch.sigmoid(rgb)
