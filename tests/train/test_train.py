"""Training end to end on a tiny collection: loss goes down, runs resume after kill -9, bad data stops early."""

import copy
import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from pav.data.collection import Collection, CollectionError
from pav.data.datamodule import AvatarDataModule
from pav.fields.avatar import ModelConfig
from pav.train.checkpoint import load_avatar
from pav.train.config import typed_config
from pav.train.run import check_resume, make_meta, run
from pav.train.system import AvatarSystem, lr_factor, ray_subset, rays_for_samples

REPO = Path(__file__).resolve().parents[2]


def config(*overrides):
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return compose("train", overrides=["trainer=smoke", *overrides])


def test_three_cpu_steps_lower_the_loss(tiny_collection):
    t = typed_config(config(f"data.root={tiny_collection}", "render.grid_warmup_steps=1000"))
    dm = AvatarDataModule(t.data, 0)
    dm.load(t.loss.depth_regions)
    dm.setup("fit")
    system = AvatarSystem(t.model, t.render, t.loss, t.optim, make_meta(dm, t.model))
    renderer, frames = system.renderer, dm.train_frames
    renderer.update_grid(frames, 0)
    batch = dm.train_dataloader().dataset.batch(torch.Generator().manual_seed(0))
    opt = system.configure_optimizers()
    torch.manual_seed(0)

    def loss():
        from pav.train.losses import total_loss

        out = renderer.render_rays(batch["origins"], batch["dirs"], batch["frame_idx"], frames, batch["background"])
        return total_loss(t.loss, out.rgb, batch["rgb"], out.depth, batch["mesh_depth"], batch["depth_mask"])["total"]

    losses = []
    for _ in range(3):
        value = loss()
        opt.zero_grad()
        value.backward()
        opt.step()
        losses.append(float(value))
    losses.append(float(loss()))
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses  # every step helps this batch


def test_insta_gives_the_expression_to_samples_near_the_mouth_only(tiny_collection):
    t = typed_config(config(f"data.root={tiny_collection}", "model=insta"))
    dm = AvatarDataModule(t.data, 0)
    dm.load(t.loss.depth_regions)
    meta = make_meta(dm, t.model)
    assert meta.expr_faces is not None and 0 < int(meta.expr_faces.sum()) < 0.2 * len(meta.expr_faces)
    renderer = AvatarSystem(t.model, t.render, t.loss, t.optim, meta).renderer
    frames = dm.train_frames
    mesh = frames.posed_verts[0]  # [V, 3] frame 0's head
    centres = mesh[meta.faces].mean(1)  # [F, 3]
    tri = mesh[meta.faces]  # [F, 3, 3]
    normals = torch.nn.functional.normalize(torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1), dim=-1)
    mouth, other = torch.nonzero(meta.expr_faces)[:, 0][:40], torch.nonzero(~meta.expr_faces)[:, 0][::50][:40]
    points = torch.cat([centres[mouth], centres[other]]) + 0.002 * torch.cat([normals[mouth], normals[other]])
    with torch.no_grad():
        for p in renderer.field.mlp_density.parameters():  # a field that listens to the expression
            p.normal_(0, 0.5)
        before = renderer.head_density(points, 0, frames)
        frames.expr[0] += 2.0
        after = renderer.head_density(points, 0, frames)
    changed = (after - before).abs() > 1e-6 * (1 + before.abs())
    assert changed[:len(mouth)].float().mean() > 0.9  # near the mouth the expression is heard
    assert not changed[len(mouth):].any()  # elsewhere it is not


def test_learning_rates_warm_up_then_decay_to_the_final_ratio():
    rates = [lr_factor(step, 100, 10, 0.05) for step in range(120)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(0.05 ** 0.09)
    assert all(b < a for a, b in zip(rates[9:100], rates[10:101], strict=True))  # decays after the warm-up
    assert rates[100] == pytest.approx(0.05) and rates[119] == pytest.approx(0.05)  # held past max_steps
    assert lr_factor(500, -1, 0, 0.05) == 1.0  # no step budget (max_steps=-1): nothing to decay towards
    with pytest.raises(ValueError, match="final_ratio"):
        typed_config(config("optim.final_ratio=0"))


def test_a_late_decay_holds_the_rate_until_it_starts():
    rates = [lr_factor(step, 100, 0, 0.1, decay_start=0.7) for step in range(101)]
    assert all(rate == 1.0 for rate in rates[:71])  # constant through the first 70 % of the steps
    assert rates[85] == pytest.approx(0.1 ** 0.5) and rates[100] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="decay_start"):
        typed_config(config("optim.decay_start=1.0"))


def test_a_sample_target_trains_on_fewer_rays_while_rays_are_long(tiny_collection):
    assert rays_for_samples(2048, 0, 80.0) == 2048  # no target: every ray
    assert rays_for_samples(2048, 49152, None) == 2048  # the first step: nothing measured yet
    assert rays_for_samples(2048, 49152, 40.0) == 1229  # 49152 / 40 samples per ray
    assert rays_for_samples(2048, 49152, 110.0) == 512  # never under a quarter of the batch
    assert rays_for_samples(2048, 49152, 12.0) == 2048  # short rays: the whole batch, never more
    t = typed_config(config(f"data.root={tiny_collection}", "data.rays_per_batch=400"))
    batch = AvatarDataModule(t.data, 0)
    batch.load()
    batch.setup("fit")
    full = batch.train_dataloader().dataset.batch(torch.Generator().manual_seed(0))
    part = ray_subset(full, 100)
    assert {k: len(v) for k, v in part.items()} == dict.fromkeys(full, 100)
    fg_share = (full["alpha"] > 0.5).float().mean()
    assert abs(float((part["alpha"] > 0.5).float().mean() - fg_share)) < 0.1  # the foreground's share is kept
    same = {k: torch.equal(v[::4], part[k]) for k, v in full.items()}
    assert all(same.values()), same  # rays of the batch itself, not new draws
    with pytest.raises(ValueError, match="target_samples"):
        typed_config(config("optim.target_samples=-1"))


def test_mistyped_key_fails_at_start():
    with pytest.raises(Exception, match="lamda_rgb"):
        config("loss.lamda_rgb=3")  # Hydra refuses while composing
    with pytest.raises(Exception, match="lamda_rgb"):
        typed_config(config("+loss.lamda_rgb=3"))  # even when forced in with +
    with pytest.raises(ValueError, match="data.root"):
        typed_config(config("data=vidcol"))


def _train_cmd(root: Path, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "train.py"), "trainer=smoke", f"data.root={root}", f"hydra.run.dir={run_dir}",
            "trainer.max_steps=60", "checkpoint_every=10", *extra]


def test_resume_after_kill_continues_at_the_saved_step(tiny_collection, tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    schedule = ("optim.warmup_steps=5", "optim.final_ratio=0.1", "optim.target_samples=1")
    proc = subprocess.Popen(_train_cmd(tiny_collection, run_dir, *schedule), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    step = 0
    while time.time() < deadline and proc.poll() is None:
        if last.exists():
            time.sleep(0.5)
            try:
                step = int(torch.load(last, map_location="cpu", weights_only=False)["global_step"])
            except Exception:  # noqa: BLE001 - caught mid-write
                continue
            if step >= 10:
                break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 10 <= step < 60, f"no checkpoint before the kill (step {step})"
    saved = torch.load(last, map_location="cpu", weights_only=False)
    saved_step = int(saved["global_step"])
    out = subprocess.run(_train_cmd(tiny_collection, run_dir, *schedule), capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert f"Resuming from {last} at step {saved_step}" in log
    final = torch.load(last, map_location="cpu", weights_only=False)
    assert final["global_step"] == 60
    # optimizer state and the occupancy grid came back with the weights
    assert final["optimizer_states"][0]["state"]
    assert "renderer.grid.occupied" in final["state_dict"]
    # the learning-rate schedule went on from the saved step: it ends at final_ratio of each group's rate
    optim = final["pav"]["config"]["optim"]
    lrs = [g["lr"] for g in final["optimizer_states"][0]["param_groups"]]
    assert lrs == pytest.approx([0.1 * optim["lr"], 0.1 * optim["lr_offset"]], rel=1e-6)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"] == 60
    assert set(metrics["per_appearance"]) == {"short_dark", "long_auburn"}
    assert np.isfinite(metrics["mean"]["psnr"]) and 0 < metrics["mean"]["ssim"] <= 1
    assert metrics["parameters"] > 0 and metrics["checkpoint_mb"] > 0
    assert (run_dir / "config.yaml").exists()
    rays = [float(row["train/rays"]) for sheet in sorted(run_dir.glob("logs/*/metrics.csv"))
            for row in csv.DictReader(sheet.open()) if row.get("train/rays")]
    assert rays and set(rays) == {64.0}  # a one-sample target: a quarter of the smoke batch's 256 rays each step
    pav = final["pav"]
    assert pav["meta"]["appearance_names"] == ["short_dark", "long_auburn"]
    assert pav["meta"]["head_model"] == "procedural:0"
    assert pav["config"]["model"]["name"] == "pav"
    # the checkpoint alone rebuilds the renderer: no collection, no config file
    renderer, meta, _ = load_avatar(last)
    assert meta.appearance_names == ["short_dark", "long_auburn"]
    torch.testing.assert_close(renderer.grid.occupied, final["state_dict"]["renderer.grid.occupied"])


def _train_recording(monkeypatch, run_dir: Path, *overrides: str) -> dict[int, tuple[dict, float | None]]:
    """step -> (the batch its training step got, the sample target's samples per ray going into it)."""
    seen = {}
    step = AvatarSystem.training_step

    def recording(self, batch, batch_idx):
        seen[self.global_step] = ({k: v.clone() for k, v in batch.items()}, self._samples_per_ray)
        return step(self, batch, batch_idx)

    monkeypatch.setattr(AvatarSystem, "training_step", recording)
    run(config(*overrides, "logger=none", "trainer.val_check_interval=100", "trainer.num_sanity_val_steps=0",
               "data.eval_size=16", "optim.target_samples=2000"), run_dir)
    return seen


def test_a_resumed_run_draws_the_batches_and_rays_of_an_unbroken_one(tiny_collection, tmp_path, monkeypatch):
    data = f"data.root={tiny_collection}"
    unbroken = _train_recording(monkeypatch, tmp_path / "unbroken", data, "trainer.max_steps=6", "checkpoint_every=3")
    _train_recording(monkeypatch, tmp_path / "broken", data, "trainer.max_steps=3", "checkpoint_every=3")
    resumed = _train_recording(monkeypatch, tmp_path / "broken", data, "trainer.max_steps=6", "checkpoint_every=3")
    assert sorted(resumed) == [3, 4, 5]
    for step in resumed:
        batch, samples_per_ray = resumed[step]
        assert samples_per_ray == unbroken[step][1] and samples_per_ray is not None, step  # the same sample target
        for key, value in unbroken[step][0].items():
            assert torch.equal(batch[key], value), (step, key)
    assert not torch.equal(unbroken[3][0]["origins"], unbroken[4][0]["origins"])  # a new batch every step


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_nan_expression_stops_before_training(tiny_collection, tmp_path):
    root = _copy(tiny_collection, tmp_path / "nan")
    path = root / "short_dark" / "flame.npz"
    arrays = dict(np.load(path))
    arrays["expr"][3, 0] = np.nan
    np.savez(path, **arrays)
    with pytest.raises(CollectionError, match="expr"):
        run(config(f"data.root={root}"), tmp_path / "run_nan")
    assert not (tmp_path / "run_nan" / "checkpoints").exists()


def test_missing_frame_stops_before_training(tiny_collection, tmp_path):
    root = _copy(tiny_collection, tmp_path / "missing")
    victim = sorted((root / "long_auburn" / "frames" / "00").glob("*.png"))[2]
    victim.unlink()
    with pytest.raises(CollectionError, match=rf"long_auburn/frames/00 .*missing: {victim.stem}"):
        run(config(f"data.root={root}"), tmp_path / "run_missing")
    assert not (tmp_path / "run_missing" / "checkpoints").exists()


def test_ddp_with_two_gloo_processes(tiny_collection, tmp_path):
    run_dir = tmp_path / "ddp"
    cmd = [sys.executable, str(REPO / "train.py"), "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
           "trainer.max_steps=6", "trainer.val_check_interval=6", "data.rays_per_batch=128", "data.val_size=32",
           "data.val_views_per_appearance=1", "data.eval_views_per_appearance=1", "data.eval_size=32",
           "model.log2_hashmap_size=12", "model.texture_size=32", "render.max_samples=128",
           "render.grid_resolution=16", "render.grid_warmup_steps=2", "logger=csv", f"data.root={tiny_collection}",
           f"hydra.run.dir={run_dir}"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "distributed_backend=gloo" in out.stdout + out.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"] == 6


@pytest.mark.parametrize("precision", ["bf16-mixed"])
def test_mixed_precision_trains(tiny_collection, tmp_path, precision):
    """trainer.precision=bf16-mixed (16-mixed on a GPU takes the same path): the fields run in half precision,
    compositing and the losses in float32."""
    before = torch.get_float32_matmul_precision()
    metrics = run(config(f"data.root={tiny_collection}", f"trainer.precision={precision}", "trainer.max_steps=4",
                         "logger=none", "data.eval_size=16"), tmp_path / "run")
    assert metrics["steps"] == 4 and np.isfinite(metrics["mean"]["psnr"])
    assert torch.get_float32_matmul_precision() == before  # the fit's TF32 setting does not leak out of it


def test_held_out_views_stay_on_the_cpu_while_ray_batches_move(tiny_collection):
    """Lightning moves every batch to the training device; a validation view's images are scored and saved on the
    CPU (the meta device stands in for a GPU here)."""
    t = typed_config(config(f"data.root={tiny_collection}"))
    dm = AvatarDataModule(t.data, 0)
    dm.load(t.loss.depth_regions)
    system = AvatarSystem(t.model, t.render, t.loss, t.optim, make_meta(dm, t.model))
    meta = torch.device("meta")
    view = system.transfer_batch_to_device(dm.heldout_views(16, 1)[0], meta, 0)
    assert {view.K.device.type, view.c2w.device.type, view.rgb.device.type, view.alpha.device.type} == {"cpu"}
    batch = system.transfer_batch_to_device({"origins": torch.zeros(4, 3)}, meta, 0)
    assert batch["origins"].device.type == "meta"


def test_gpu_preset_refuses_to_start_without_a_gpu(tiny_collection, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="trainer=gpu .*needs a CUDA GPU"):
        run(config(f"data.root={tiny_collection}", "trainer=gpu"), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_ray_batches_come_from_worker_processes(tiny_collection):
    """data.num_workers > 0 (the GPU presets): batches are built in other processes, each worker its own stream;
    the dataset pickles, so a spawn or forkserver start works too."""
    import pickle

    t = typed_config(config(f"data.root={tiny_collection}", "data.num_workers=2", "data.rays_per_batch=64"))
    dm = AvatarDataModule(t.data, 0)
    dm.load(t.loss.depth_regions)
    dm.setup("fit")
    loader = dm.train_dataloader()
    batches = [b for b, _ in zip(loader, range(4), strict=False)]
    assert all(b["origins"].shape == (64, 3) and b["depth_mask"].dtype == torch.bool for b in batches)
    assert not torch.equal(batches[0]["origins"], batches[1]["origins"])  # two workers, two streams
    copy = pickle.loads(pickle.dumps(loader.dataset))
    gen = torch.Generator().manual_seed(3)
    again = copy.batch(gen)
    reference = loader.dataset.batch(torch.Generator().manual_seed(3))
    assert all(torch.equal(again[k], reference[k]) for k in reference)


def test_a_run_begun_before_pose_conditioning_is_not_resumed_into_a_mismatch(tmp_path):
    model = dataclasses.asdict(ModelConfig())
    old = {k: v for k, v in model.items() if k not in ("pose_cond", "rigid_reach")}  # what older runs saved
    path = tmp_path / "last.ckpt"
    torch.save({"pav": {"config": {"model": old}}, "global_step": 10}, path)
    with pytest.raises(RuntimeError, match=r"model.pose_cond=False there, True now.*model.rigid_reach=inf"):
        check_resume(path, {"model": model})
    check_resume(path, {"model": {**model, "pose_cond": False, "rigid_reach": float("inf")}})  # the old model: fine


def test_a_resume_names_every_option_it_cannot_change(tiny_collection, tmp_path):
    saved = OmegaConf.to_container(OmegaConf.structured(typed_config(config(f"data.root={tiny_collection}"))))
    path = tmp_path / "last.ckpt"
    torch.save({"pav": {"config": saved}, "global_step": 7}, path)
    changed = copy.deepcopy(saved)
    changed["render"]["grid_resolution"] //= 2  # the grid's shape: a state-dict mismatch before
    changed["render"]["max_samples"] *= 2  # silently another step before
    changed["data"]["rays_per_batch"] += 1
    changed["seed"] += 1
    with pytest.raises(RuntimeError, match=r"data.rays_per_batch=.*render.grid_resolution=.*render.max_samples=.*"
                                           r"seed=0 there, 1 now"):
        check_resume(path, changed)
    ok = copy.deepcopy(saved)
    ok["trainer"]["max_steps"] *= 2  # train on
    ok["data"]["num_workers"] = 2  # the batches follow the step, not the workers
    ok["render"]["segment_samples"] = 0  # the same samples, another speed
    ok["data"]["root"] = str(tmp_path / "moved")
    assert check_resume(path, ok) == 7


def test_training_reads_no_test_frame_before_its_final_figures(tiny_collection, tmp_path, monkeypatch):
    """Validation renders the validation frames; the test frames' images and poses are touched only once training
    has ended, for metrics.json."""
    from pav.data.collection import Appearance
    from pav.train import run as run_module

    phase, read, posed = ["fit"], [], []
    for method in ("frame_path", "mask_path"):
        real = getattr(Appearance, method)
        monkeypatch.setattr(Appearance, method, lambda self, cam, fid, real=real: (
            read.append((phase[0], self.name, int(fid))), real(self, cam, fid))[1])
    real_posed, real_metrics = AvatarDataModule.posed, run_module.write_metrics
    monkeypatch.setattr(AvatarDataModule, "posed", lambda self, which: (posed.append((phase[0], which)),
                                                                        real_posed(self, which))[1])
    monkeypatch.setattr(run_module, "write_metrics", lambda *a, **k: (phase.__setitem__(0, "final"),
                                                                      real_metrics(*a, **k))[1])
    metrics = run(config(f"data.root={tiny_collection}", "trainer.max_steps=4", "trainer.val_check_interval=2",
                         "logger=none", "data.eval_size=16"), tmp_path / "run")
    splits = {app.name: app.split for app in Collection.open(tiny_collection)}
    during = {(name, fid) for when, name, fid in read if when == "fit"}
    assert during and all(fid in splits[name].train + splits[name].val for name, fid in during)
    assert {(name, fid) for name in splits for fid in splits[name].val} <= during  # validation ran, on its frames
    assert ("fit", "test") not in posed and ("fit", "val") in posed
    after = {(name, fid) for when, name, fid in read if when == "final"}
    assert any(fid in splits[name].test for name, fid in after)  # the final figures: the test frames
    assert metrics["validation"]["mean"]["psnr"] > 0 and metrics["mean"]["psnr"] > 0


def test_a_collection_without_validation_frames_trains_and_says_so(tiny_collection, tmp_path, capsys):
    root = _copy(tiny_collection, tmp_path / "no_val")
    for path in root.glob("*/split.json"):
        split = json.loads(path.read_text())
        path.write_text(json.dumps({**split, "train": sorted(split["train"] + split["val"]), "val": []}))
    metrics = run(config(f"data.root={root}", "trainer.max_steps=2", "logger=none", "data.eval_size=16"),
                  tmp_path / "run")
    assert "no validation frames" in capsys.readouterr().out
    assert metrics["validation"] is None and metrics["mean"]["psnr"] > 0
