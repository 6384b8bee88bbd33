"""`python -m pav.evaluate` and `python -m pav.experiments` on the shared tiny checkpoint and collection."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from pav.common.cli import ConfigError, parse_overrides
from pav.data.collection import Collection
from pav.evaluate import EvaluateConfig, EvaluateError, evaluate
from pav.evaluate.__main__ import main
from pav.experiments import ExperimentsConfig, run_protocol
from pav.metrics.weights import ALEXNET_FILE

NAMES = ["short_dark", "long_auburn"]
TINY = ["render.max_samples=32", "data.rays_per_batch=64", "data.eval_size=16", "data.eval_views_per_appearance=1",
        "data.val_size=16", "checkpoint_every=1000", "model.log2_hashmap_size=10", "model.texture_size=16",
        "render.grid_resolution=16", "model.finest_resolution=64"]


@pytest.fixture
def empty_hub(tmp_path):
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield
    torch.hub.set_dir(before)


def run_eval(avatar, out, *options):
    return evaluate(parse_overrides(EvaluateConfig, [f"ckpt={avatar.ckpt}", f"out={out}", "device=cpu",
                                                      "progress=false", *options]))


@pytest.mark.parametrize("split", ["test", "val", "cross"])
def test_evaluate_writes_every_file(tiny_avatar, tmp_path, empty_hub, split):
    result = run_eval(tiny_avatar, tmp_path, f"split={split}")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["split"] == split and list(saved["scores"]["per_appearance"]) == NAMES
    for row in (*saved["scores"]["per_appearance"].values(), saved["scores"]["overall"]):
        assert isinstance(row["psnr"], float) and isinstance(row["ssim"], float)
        assert row["lpips"].startswith("unavailable: ") and ALEXNET_FILE in row["lpips"]
        assert isinstance(row["fid"], float) or row["fid"].startswith("unavailable: ")
    markdown = (tmp_path / "metrics.md").read_text()
    assert all(f"| {name} |" in markdown for name in NAMES) and "| **overall** |" in markdown
    assert f"LPIPS unavailable: lpips needs {torch.hub.get_dir()}/checkpoints/{ALEXNET_FILE}" in markdown
    for name in NAMES:
        panel = np.asarray(Image.open(tmp_path / "error_maps" / f"{name}.png"))
        assert panel.shape[1] == 3 * panel.shape[0] and panel.shape[0] >= 256  # prediction | truth | error
    assert result["image_size"] == [32, 32]
    for row in (*saved["regions"]["per_appearance"].values(), saved["regions"]["overall"]):  # face and rest apart
        assert isinstance(row["psnr_face"], float) and isinstance(row["psnr_rest"], float)
        assert 0 < row["face_pixels"] < 1 and 0 <= row["face_error"] <= 1
    assert "| appearance | face PSNR ↑ | rest PSNR ↑ |" in markdown
    if split == "cross":  # every row is one appearance drawn in the other video's poses
        assert " as " in saved["error_maps"]["short_dark"]["view"]
    collection = Collection.open(tiny_avatar.collection, verify_images="none")
    for name in NAMES:  # split=val scores the validation frames, never a test frame
        video, _, frame = saved["error_maps"][name]["view"].split(" as ")[-1].split("/")
        shown = collection[video].split
        assert int(frame) in (shown.val if split == "val" else shown.test), (name, video, frame)


def test_novel_split_compares_renders_with_the_appearances_own_images(tiny_avatar, tmp_path, empty_hub):
    run_eval(tiny_avatar, tmp_path, "split=novel")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    test = run_eval(tiny_avatar, tmp_path / "test", "split=test")["scores"]["per_appearance"]
    for name in NAMES:  # each appearance in the other video's held-out frames: as many as that video has
        row = saved["scores"]["per_appearance"][name]
        other = next(n for n in NAMES if n != name)
        assert row["views"] == test[other]["views"]
        assert row["psnr"].startswith("unavailable: no ground truth") and row["ssim"].startswith("unavailable")
        assert isinstance(row["fid"], float) or row["fid"].startswith("unavailable: ")
    assert saved["error_maps"] == {}  # nothing to take an error against
    assert saved["regions"] == "unavailable: no truth per render"
    assert "novel poses and expressions without truth" in (tmp_path / "metrics.md").read_text()


def test_missing_checkpoint_or_collection_is_named(tiny_avatar, tmp_path):
    with pytest.raises(EvaluateError, match="no such checkpoint"):
        run_eval(type(tiny_avatar)(tmp_path / "none.ckpt", tmp_path), tmp_path)
    with pytest.raises(EvaluateError, match=f"collection {tmp_path / 'gone'} .* pass collection=DIR"):
        run_eval(tiny_avatar, tmp_path, f"collection={tmp_path / 'gone'}")
    with pytest.raises(SystemExit, match="python -m pav.evaluate: .*no such checkpoint"):
        main([f"ckpt={tmp_path / 'none.ckpt'}"])
    with pytest.raises(ConfigError, match="splt"):  # a mistyped key fails at start
        main([f"ckpt={tiny_avatar.ckpt}", "splt=cross"])
    with pytest.raises(EvaluateError, match="split='train' is not one of test, val, cross"):
        run_eval(tiny_avatar, tmp_path, "split=train")


def test_cross_split_without_ground_truth_says_so(tiny_avatar, tmp_path):
    root = tmp_path / "no_cross"
    shutil.copytree(tiny_avatar.collection, root, ignore=shutil.ignore_patterns("cross"))
    meta = json.loads((root / "collection.json").read_text())
    (root / "collection.json").write_text(json.dumps({**meta, "cross": []}))
    with pytest.raises(EvaluateError, match="no cross-appearance ground truth .* use split=test"):
        run_eval(tiny_avatar, tmp_path / "out", "split=cross", f"collection={root}")


def test_experiments_write_both_protocols_and_skip_finished_models(tiny_avatar, tmp_path, empty_hub):
    def protocol(name):
        return run_protocol(ExperimentsConfig(protocol=name, budget="smoke", out=str(tmp_path),
                                              root=str(tiny_avatar.collection), steps=2, eval_size=16, eval_views=1,
                                              device="cpu", overrides=TINY, equal_compute=name == "b"))

    b = protocol("b").read_text()
    for name in NAMES:
        assert f"| {name} |" in b
    assert "| INSTA per appearance | 2 | 4 |" in b and "| PAV | 1 | 2 |" in b and "| **mean** |" in b
    assert "| PAV (equal compute) | 1 | 4 |" in b  # as many steps as the two INSTAs together
    # the tiny collection has the cross-appearance set: a second table, each appearance's own INSTA in other poses;
    # a third with no truth, FID only
    assert "other videos (the cross-appearance set" in b and b.count("| **mean** |") == 3
    assert "| appearance | FID ↓ INSTA | FID ↓ PAV | FID ↓ PAV (equal compute) |" in b
    runs = tmp_path / "synthetic" / "runs"
    for name in NAMES:
        assert b.count(f"| {name} |") == 3
        novel = json.loads((runs / f"insta_{name}" / "eval" / "novel" / "metrics.json").read_text())
        assert list(novel["scores"]["per_appearance"]) == [name]
        cross = json.loads((runs / f"insta_{name}" / "eval" / "cross" / "metrics.json").read_text())
        assert list(cross["scores"]["per_appearance"]) == [name]
        assert " as " in cross["error_maps"][name]["view"]
    # a one-appearance model on its own one-video collection has no other poses to take: refused
    single = type(tiny_avatar)(runs / "insta_short_dark" / "checkpoints" / "last.ckpt",
                               tmp_path / "synthetic" / "collections" / "short_dark")
    with pytest.raises(EvaluateError, match="holds one appearance"):
        run_eval(single, tmp_path / "one", "split=novel", f"collection={single.collection}")
    # a one-appearance model is scored on the whole collection's test split only by mistake: refused
    with pytest.raises(EvaluateError, match=r"trained on \['short_dark'\]; pass the right collection=DIR"):
        run_eval(type(tiny_avatar)(runs / "insta_short_dark" / "checkpoints" / "last.ckpt", tiny_avatar.collection),
                 tmp_path / "wrong", f"collection={tiny_avatar.collection}")
    pav_checkpoint = tmp_path / "synthetic" / "runs" / "pav" / "checkpoints" / "last.ckpt"
    stamp = pav_checkpoint.stat().st_mtime_ns
    a = protocol("a").read_text()  # pav is protocol b's model: skipped, not retrained
    assert pav_checkpoint.stat().st_mtime_ns == stamp
    for variant in ("insta", "pav_glo", "pav_no_offset", "pav"):
        assert f"| {variant} |" in a
    assert "unavailable" in a and "LPIPS unavailable" in a
    for png in ("a_psnr_steps.png", "a_psnr.png", "b_psnr_steps.png", "b_psnr.png", "b_psnr_minutes.png",
                "a_psnr_minutes.png"):
        assert (tmp_path / "synthetic" / png).stat().st_size > 0
    assert not (tmp_path / "synthetic" / "a_lpips.png").exists()  # no chart for an unavailable metric
    # Figure 3: per appearance a row of truth + predictions and a row of error maps, 128 px tiles
    for png, models in (("a_error_maps.png", 4), ("b_error_maps.png", 2)):
        figure = np.asarray(Image.open(tmp_path / "synthetic" / png).convert("RGB"))
        assert figure.shape[0] == 2 * len(NAMES) * 128, png
        tile_width = figure.shape[1] / (1 + models)
        assert tile_width == round(tile_width) and 0.5 < tile_width / 128 < 2, (png, figure.shape)
        truth = figure[40:128, : int(tile_width)]  # below the label
        assert truth.std() > 5, f"{png}: the truth tile is blank"
    assert "![a_error_maps](a_error_maps.png)" in a
    # a retrained checkpoint is scored again on the cross set; an unchanged one is not
    kept, renewed = (runs / f"insta_{NAMES[0]}" / "eval" / "cross" / "metrics.json",
                     runs / "pav" / "eval" / "cross" / "metrics.json")
    stamps = {p: p.stat().st_mtime_ns for p in (kept, renewed)}
    os.utime(pav_checkpoint)
    protocol("b")
    assert kept.stat().st_mtime_ns == stamps[kept] and renewed.stat().st_mtime_ns > stamps[renewed]


def test_psnr_curves_of_protocol_b_never_share_a_style():
    from pav.experiments.plots import curve_styles

    names = ["insta_short_dark", "insta_long_auburn", "insta_bob_black", "insta_beard_brown", "insta_bun_grey",
             "pav", "pav_equal", "insta x5 (minutes summed)"]
    styles = curve_styles(names)
    looks = {(s["color"], s["linestyle"]) for s in styles.values()}
    assert len(looks) == len(names)
    assert len({styles["pav"]["color"], styles["pav_equal"]["color"]}) == 2
    pav_colours = {styles[n]["color"] for n in names if n.startswith("pav")}
    assert not pav_colours & {styles[n]["color"] for n in names if not n.startswith("pav")}
