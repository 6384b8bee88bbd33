"""Appearances of the synthetic subject: skin albedo, hair and beard geometry, hair colour.

Hair and beard are shells over the head's own surface: per-vertex thicknesses along the
rest normal, posed by the same skinning as the head but never part of the tracked mesh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..head.procedural.fields import both_sides, gauss, hairline_y, smoothstep

MIN_THICKNESS = 0.0006  # hair at the hairline starts this far above the skin


@dataclass(frozen=True)
class Look:
    name: str
    skin: tuple  # linear RGB base tone
    hair_colour: tuple
    iris: tuple
    hair: str  # short | long | bob | beard | bun
    freckles: bool = False
    makeup: bool = False
    stubble: bool = False
    light: tuple = (0.45, -0.55, -0.70)  # direction towards the light, camera space


PRESETS = [
    Look("short_dark", skin=(0.72, 0.55, 0.44), hair_colour=(0.12, 0.08, 0.05), iris=(0.30, 0.20, 0.10), hair="short"),
    Look("long_auburn", skin=(0.86, 0.68, 0.58), hair_colour=(0.55, 0.22, 0.08), iris=(0.25, 0.45, 0.30),
         hair="long", freckles=True, light=(-0.4, -0.5, -0.75)),
    Look("bob_black", skin=(0.80, 0.62, 0.50), hair_colour=(0.04, 0.04, 0.05), iris=(0.15, 0.10, 0.07),
         hair="bob", makeup=True, light=(0.2, -0.7, -0.65)),
    Look("beard_brown", skin=(0.62, 0.45, 0.34), hair_colour=(0.28, 0.17, 0.09), iris=(0.35, 0.25, 0.12),
         hair="beard", stubble=True, light=(0.55, -0.35, -0.75)),
    Look("bun_grey", skin=(0.78, 0.63, 0.54), hair_colour=(0.55, 0.53, 0.50), iris=(0.30, 0.40, 0.55),
         hair="bun", light=(-0.25, -0.6, -0.75)),
]


def make_looks(count: int, seed: int) -> list[Look]:
    """The presets in order; beyond five, recoloured copies of them."""
    rng = np.random.default_rng(seed + 77)
    looks = []
    for i in range(count):
        base = PRESETS[i % len(PRESETS)]
        if i < len(PRESETS):
            looks.append(base)
            continue
        tint = lambda c: tuple(np.clip(np.asarray(c) * rng.uniform(0.8, 1.2, 3), 0.02, 0.95))  # noqa: E731
        looks.append(Look(f"{base.name}_{i}", skin=tint(base.skin), hair_colour=tint(base.hair_colour),
                          iris=tint(base.iris), hair=base.hair, freckles=base.freckles, makeup=base.makeup,
                          stubble=base.stubble, light=base.light))
    return looks


def hair_thickness(style: str, p: np.ndarray, region: np.ndarray, region_names: list[str]) -> np.ndarray:
    """Thickness [V] in metres of the hair shell over each rest vertex p [V, 3]; 0 means bald there."""
    y, z, ax = p[:, 1], p[:, 2], np.abs(p[:, 0])
    line = hairline_y(p)
    if style == "bun":  # receding hairline at the temples
        line = line + 0.014 * np.exp(-0.5 * ((ax - 0.035) / 0.02) ** 2) * smoothstep(0.02, 0.06, z)
    above = smoothstep(line - 0.002, line + 0.012, y)
    if style == "short":
        h = 0.005 * above
    elif style == "beard":
        beard = beard_mask(p) * (region != region_names.index("lips"))
        h = np.maximum(0.005 * above, 0.0075 * beard)
    elif style == "bun":
        h = 0.005 * above + 0.045 * gauss(p, (0.0, 0.095, -0.085), (0.024, 0.022, 0.022)) * above
    elif style == "bob":
        # a fringe over the forehead and sides down to the jaw, ears covered
        fringe = smoothstep(0.035, 0.05, y) * smoothstep(0.0, 0.02, z)
        sides = smoothstep(-0.075, -0.055, y) * smoothstep(0.05, 0.025, z)
        cover = np.maximum(np.maximum(above, fringe), sides)
        h = cover * (0.012 + 0.012 * smoothstep(0.0, 0.1, y)) + 0.004 * fringe
    elif style == "long":
        # down the back and sides of the neck, over the ears, with volume on the crown
        hang = smoothstep(0.045, 0.015, z) * smoothstep(-0.245, -0.2, y)
        cover = np.maximum(above, hang)
        h = cover * (0.015 + 0.015 * smoothstep(0.0, 0.12, y) + 0.018 * smoothstep(-0.05, -0.15, y))
    else:
        raise ValueError(f"unknown hair style {style!r}")
    return np.where(h > 0.001, np.maximum(h, MIN_THICKNESS), 0.0)


def beard_mask(p: np.ndarray) -> np.ndarray:
    """[N] full beard: jaw, chin and lower cheeks, with a moustache; clear of the neck's lower part."""
    y, z = p[:, 1], p[:, 2]
    top = -0.046 + 0.05 * smoothstep(0.075, 0.0, z)  # below the nose in front, sideburns by the ears
    jaw_zone = smoothstep(top, top - 0.008, y) * smoothstep(-0.03, 0.0, z) * smoothstep(-0.13, -0.115, y)
    moustache = gauss(p, (0.0, -0.038, 0.1), (0.024, 0.005, 0.02))
    return np.clip(jaw_zone + moustache, 0.0, 1.0)


def _waves(p: np.ndarray, rng: np.random.Generator, wavelength: float, count: int = 12) -> np.ndarray:
    """Smooth pseudo-noise [N] in [-1, 1] at about `wavelength` metres: a sum of random plane waves."""
    dirs = rng.normal(size=(count, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    k = dirs * (2 * np.pi / wavelength) * rng.uniform(0.7, 1.3, (count, 1))
    phase = rng.uniform(0, 2 * np.pi, count)
    return np.sin(p @ k.T + phase).sum(1) / np.sqrt(count / 2.0) / 2.0


def skin_albedo(look: Look, p: np.ndarray, region: np.ndarray, region_names: list[str], eye_uv: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """Albedo [N, 3] of texels whose rest positions are p [N, 3]; `eye_uv` [N] is the polar radius on eyeballs."""
    rid = {name: i for i, name in enumerate(region_names)}
    skin = np.asarray(look.skin)
    col = skin * (1.0 + 0.07 * _waves(p, rng, 0.06)[:, None] + 0.035 * _waves(p, rng, 0.004, 24)[:, None])
    brows = both_sides(gauss, p, (0.032, 0.0445, 0.085), (0.017, 0.0035, 0.04))
    brows = np.clip(brows * (1.0 + 0.5 * _waves(p, rng, 0.003)), 0, 1)
    col = _mix(col, 0.6 * np.asarray(look.hair_colour) + 0.02, 0.9 * brows)
    lips = np.asarray(look.skin) * (1.05, 0.62, 0.62)
    if look.makeup:
        lips = np.array([0.60, 0.08, 0.15])
        shadow = both_sides(gauss, p, (0.032, 0.027, 0.08), (0.014, 0.005, 0.03))
        blush = both_sides(gauss, p, (0.045, -0.02, 0.07), (0.014, 0.012, 0.03))
        col = _mix(col, np.array([0.45, 0.30, 0.55]), 0.55 * shadow)
        col = _mix(col, np.array([0.90, 0.45, 0.45]), 0.35 * blush)
    col = _mix(col, lips, (region == rid["lips"]) * gauss(p, (0, -0.0525, 0.093), (0.03, 0.012, 0.05)) ** 0.3)
    if look.freckles:
        spots = (_waves(p, rng, 0.0035, 32) > 0.62) * both_sides(gauss, p, (0.03, -0.005, 0.09), (0.03, 0.02, 0.05))
        col = _mix(col, skin * (0.7, 0.45, 0.3), 0.85 * np.clip(spots * 1.5, 0, 1))
    if look.stubble:
        dots = (_waves(p, rng, 0.0025, 32) > 0.3) * beard_mask(p)
        col = _mix(col, np.asarray(look.hair_colour) * 0.6, 0.5 * dots)
    mouth = region == rid["mouth"]
    col[mouth] = (0.38, 0.09, 0.09)
    eyes = region == rid["eyes"]
    sclera = np.array([0.92, 0.90, 0.86])
    iris = np.asarray(look.iris) * (1.0 + 0.3 * _waves(p[eyes], rng, 0.001)[:, None])
    r = eye_uv[eyes]
    eye_col = np.where((r < 0.55)[:, None], iris, sclera)
    eye_col = np.where((r < 0.22)[:, None], 0.03, eye_col)
    col[eyes] = eye_col
    return np.clip(col, 0.0, 1.0)


def hair_albedo(look: Look, uv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Hair colour [N, 3] with strands running along the head UV's meridians (radial in the atlas)."""
    d = uv - 0.5
    angle = np.arctan2(d[:, 1], d[:, 0])
    radius = np.linalg.norm(d, axis=1)
    strands = np.zeros(len(uv))
    for freq in (140, 310, 620):
        strands += np.sin(angle * freq + 3.0 * np.sin(radius * 40 + rng.uniform(0, 6)) + rng.uniform(0, 6))
    shade = 0.78 + 0.12 * strands / 3.0 + 0.1 * np.sin(radius * 25 + rng.uniform(0, 6))
    return np.clip(np.asarray(look.hair_colour) * shade[:, None] + 0.015, 0.0, 1.0)


def _mix(col: np.ndarray, target, weight: np.ndarray) -> np.ndarray:
    w = np.clip(np.asarray(weight, dtype=np.float64), 0.0, 1.0)[:, None]
    return col * (1.0 - w) + np.asarray(target) * w
