"""`python -m pav.data.renderme`: a RenderMe-360 subject's hair sequences -> one multiview collection.

One appearance per part (h0, h1_<wig><colour>, ...). Images are cropped to the centred square, resized,
undistorted and masked. The identity shape is the mean of the subject's expression-part FLAME fits; parts
without a fit get their pose and expression from keypoints (see keypoints.py, fit.py). Every part is saved
as it finishes, so a rerun resumes with the first unfinished one.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ...common.cli import parse_overrides
from ...head.flame import FLAME
from ..collection import AppearanceSpec, Collection, CollectionMeta, CollectionWriter
from .flame_fits import RenderMeError
from .identity import Identity, build_identity
from .keypoints import KeypointEmbedding
from .options import RenderMeConfig, select_parts
from .part import convert_part
from .reader import SMCError, SMCReader, find_parts

N_SHAPE, N_EXPR = 100, 50  # RenderMe-360's fits
STATE_DIR = "renderme"


def _settings(cfg: RenderMeConfig) -> dict:
    """What a saved part depends on: a rerun with other values converts it again."""
    keep = ("subject", "cameras", "frames", "size", "head_model", "test_cameras", "embed_frames", "fit", "torso_cut")
    return {k: v for k, v in asdict(cfg).items() if k in keep}


def _load_identity(state: Path, settings: dict) -> Identity | None:
    meta = state / "identity.json"
    if not meta.is_file():
        return None
    saved = json.loads(meta.read_text())
    if saved.get("settings") != settings:
        return None
    with np.load(state / "identity.npz") as f:
        shape = f["shape"]
    return Identity(shape, KeypointEmbedding.load(state / "keypoints3d.npz"),
                    KeypointEmbedding.load(state / "keypoints2d.npz"), saved["report"])


def _save_identity(state: Path, identity: Identity, settings: dict) -> None:
    np.savez(state / "identity.npz", shape=identity.shape)
    identity.emb3d.save(state / "keypoints3d.npz")
    identity.emb2d.save(state / "keypoints2d.npz")
    (state / "identity.json").write_text(json.dumps({"settings": settings, "report": identity.report}, indent=2))


def _part_done(state: Path, out: Path, part: str, settings: dict) -> dict | None:
    path = state / f"{part}.json"
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    files = all((out / part / name).is_file() for name in ("cameras.npz", "flame.npz", "split.json"))
    return saved["report"] if saved.get("settings") == settings and files else None


def convert(cfg: RenderMeConfig) -> Path:
    """Converts the subject into cfg.out; returns the collection's root."""
    start = time.time()
    if cfg.size < 16:
        raise RenderMeError(f"size={cfg.size}: need at least 16 pixels")
    parts = find_parts(cfg.root, cfg.subject)
    chosen = select_parts(list(parts), cfg.parts)
    expression = {p: files for p, files in parts.items() if p.startswith("e")}
    flame = FLAME.from_file(cfg.head_model, n_shape=N_SHAPE, n_expr=N_EXPR, uv_layout=cfg.uv_layout)
    out = Path(cfg.out)
    state = out / STATE_DIR
    if cfg.restart and state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True, exist_ok=True)
    settings = _settings(cfg)

    identity = _load_identity(state, settings)
    if identity is None:
        identity = build_identity(flame, expression, cfg)
        _save_identity(state, identity, settings)
    else:
        print(f"[renderme] identity: resumed from {state}")
    meta = CollectionMeta(subject=f"renderme-{cfg.subject}", head_model=cfg.head_model, n_shape=N_SHAPE,
                          n_expr=N_EXPR, image_size=(cfg.size, cfg.size),
                          appearances=[AppearanceSpec(p, "multiview") for p in chosen], uv_layout=cfg.uv_layout)
    writer = CollectionWriter(out, meta)
    writer.write_shape(identity.shape.astype(np.float32))

    reports: dict[str, dict] = {}
    failed: dict[str, str] = {}
    with tqdm(total=0, desc="images", unit="img") as bar:
        for part in chosen:
            done = _part_done(state, out, part, settings)
            if done is not None:
                reports[part] = {**done, "resumed": True}
                continue
            shutil.rmtree(out / part, ignore_errors=True)
            try:
                with SMCReader(*parts[part]) as reader:
                    result = convert_part(part, reader, identity, flame, cfg, writer, bar)
            except (SMCError, RenderMeError) as err:
                failed[part] = str(err)
                bar.write(f"[renderme] {part}: skipped: {err}")
                continue
            writer.write_appearance(part, result.cameras, result.flame, result.split)
            (state / f"{part}.json").write_text(json.dumps({"settings": settings, "report": result.report},
                                                           indent=2))
            reports[part] = result.report
            bar.write(f"[renderme] {part}: {result.report['frames']} frames x {len(result.report['cameras'])} "
                      f"cameras, {_describe_fit(result.report['flame'])}")
    converted = [p for p in chosen if p in reports]
    every = sorted({c for p in converted for c in reports[p]["cameras"]})
    for p in converted:  # real files sometimes lack a camera: say which, the part trains without it
        reports[p]["missing_cameras"] = [c for c in every if c not in reports[p]["cameras"]]
        if reports[p]["missing_cameras"] and not reports[p].get("resumed"):
            print(f"[renderme] {p}: cameras {reports[p]['missing_cameras']} are missing from its file")
    if not converted:
        raise RenderMeError("no part converted: " + "; ".join(f"{p}: {e}" for p, e in failed.items()))
    final = CollectionMeta(subject=meta.subject, head_model=meta.head_model, n_shape=N_SHAPE, n_expr=N_EXPR,
                           image_size=meta.image_size, appearances=[AppearanceSpec(p, "multiview") for p in converted],
                           uv_layout=cfg.uv_layout)
    CollectionWriter(out, final).finalize()
    Collection.open(out, verify_images="header")
    summary = {"subject": cfg.subject, "seconds": round(time.time() - start, 1), "identity": identity.report,
               "parts": reports, "failed": failed}
    (out / "renderme.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"[renderme] {len(converted)} of {len(chosen)} parts -> {out} in {time.time() - start:.0f} s"
          + (f"; failed: {', '.join(failed)} (see renderme.json)" if failed else ""))
    return out


def _describe_fit(report: dict) -> str:
    if report["source"] == "keypoint fit":
        e3, e2 = report["keypoints3d_error_mm"], report["keypoints2d_error_px512"]
        text = "keypoint fit " + (f"{e3:.2f} mm 3D" if e3 is not None else "no 3D keypoints")
        text += f", {e2:.2f} px 2D" if e2 is not None else ""
    else:
        text = f"RenderMe-360 fit ({report['vertex_error_mm']:.2f} mm from its vertices)"
    return text + f", {100 * report['mask_coverage']:.0f}% of face vertices inside the masks"


def main(argv: list[str] | None = None) -> None:
    cfg = parse_overrides(RenderMeConfig, argv, prog="python -m pav.data.renderme")
    try:
        convert(cfg)
    except (RenderMeError, SMCError) as err:
        raise SystemExit(f"pav.data.renderme: {err}") from None
