"""Real videos end to end: prepare -> track -> train (CPU budget) -> evaluate -> turntable, one clip at a time.

    python bench/real_video.py VIDEO [VIDEO...] [protocol=tail|insta|flashavatar out=/tmp/pav_real size frames
                                                 trainer=cpu steps=0 views=8 eval_size turntable=12]

Each clip becomes its own one-appearance collection (a clip is one look of one person). Every stage is the
command a user runs (`python -m pav.prepare`, `pav.track`, `train.py data=vidcol`, `pav.evaluate`, `pav.render
drive=turntable`), run in order and resumed when its output is already there. The protocol names the frames held
out (pav/data/collection/splits.py) and its defaults:
  tail         the last 10 % of 500 evenly sampled frames at 512², scored at 256² (pav's figures so far)
  insta        INSTA's: every frame at 512², the last 350 held out (35 % of a clip under 1000 frames), scored at
               512²; pav's torso cut (shoulders and chest unknown) stands in for INSTA's clothing removal
  flashavatar  FlashAvatar's: the same with the last 500 (50 %) held out
A stretch of frames just before the held-out ones validates (trained on by nothing, reported by nothing else).
Prints a table: frames kept, unknown pixels, landmark error and seconds per frame of tracking, how far the mesh
pokes past the matte and its outline's distance to the matte's edge (pav/track/alignment.py), training minutes,
validation PSNR, test PSNR / SSIM on real frames (unknown pixels excluded), the face and the rest of the person
scored apart (pav/evaluate/regions.py), and where the picture (render | truth | error, the test frames of
`pav.evaluate`) and the turntable are; then `FIG <clip> <name>: <value>` lines for scripts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]  # this checkout's pav, not an installed one


def _run(args: list[str], log: Path) -> float:
    """Runs one stage (output to log); returns its seconds; a failure stops the clip and names the log."""
    start = time.time()
    with open(log, "w") as f:
        done = subprocess.run([sys.executable, *args], cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:])
        raise RuntimeError(f"{' '.join(args[:2])} failed (exit {done.returncode}); see {log}:\n{tail}")
    return time.time() - start


ALL_FRAMES = "100000"  # frames_per_video past any clip's length: every frame
PROTOCOL_DEFAULTS = {"tail": {"size": "512", "frames": "500", "eval_size": "256"},
                     "insta": {"size": "512", "frames": ALL_FRAMES, "eval_size": "512"},
                     "flashavatar": {"size": "512", "frames": ALL_FRAMES, "eval_size": "512"}}


def _parse(argv: list[str]) -> tuple[list[Path], dict[str, str]]:
    videos = [Path(a) for a in argv if "=" not in a]
    given = {"protocol": "tail", "out": "/tmp/pav_real", "trainer": "cpu", "steps": "0", "views": "8",
             "turntable": "12"}
    known = [*given, "size", "frames", "eval_size"]
    for a in argv:
        if "=" in a:
            key, value = a.split("=", 1)
            if key not in known:
                raise SystemExit(f"bench/real_video.py: unknown option {key!r} (known: {', '.join(known)})")
            given[key] = value
    if given["protocol"] not in PROTOCOL_DEFAULTS:
        raise SystemExit(f"bench/real_video.py: protocol={given['protocol']!r} is not one of "
                         f"{', '.join(PROTOCOL_DEFAULTS)}")
    opts = {**PROTOCOL_DEFAULTS[given["protocol"]], **given}
    if not videos:
        raise SystemExit(__doc__)
    missing = [str(v) for v in videos if not v.is_file()]
    if missing:
        raise SystemExit(f"bench/real_video.py: no such video: {', '.join(missing)}")
    return videos, opts


def _scores(metrics: Path) -> dict:
    """Whole-image PSNR / SSIM and, where the split has truth per view, the face and the rest apart."""
    scored = json.loads(metrics.read_text())
    row = {"psnr": scored["scores"]["overall"]["psnr"], "ssim": scored["scores"]["overall"]["ssim"]}
    regions = scored.get("regions")
    if isinstance(regions, dict):  # the face and the rest of the person apart (pav/evaluate/regions.py)
        overall = regions["overall"]
        row.update(psnr_face=overall["psnr_face"], psnr_rest=overall["psnr_rest"], face_error=overall["face_error"])
    return row


def bench_clip(video: Path, opts: dict[str, str]) -> dict:
    work = Path(opts["out"]) / opts["protocol"] / video.stem
    src, coll, run, logs = work / "videos", work / "collection", work / "run", work / "logs"
    for d in (src, logs):
        d.mkdir(parents=True, exist_ok=True)
    if not (src / video.name).exists():
        (src / video.name).symlink_to(video.resolve())
    row: dict = {"clip": video.name, "protocol": opts["protocol"]}
    seconds = {}
    seconds["prepare"] = _run(["-m", "pav.prepare", f"videos={src}", f"out={coll}", f"size={opts['size']}",
                               f"frames_per_video={opts['frames']}", f"split={opts['protocol']}"],
                              logs / "prepare.log")
    stats = next(iter(json.loads((coll / "prepare.json").read_text())["appearances"].values()))
    row.update(kept=stats["kept"], unknown_frame=stats.get("unknown_outside_frame", 0.0),
               unknown_torso=stats.get("unknown_torso", 0.0))

    from pav.track import TrackConfig, track

    start = time.time()
    summary = next(iter(track(TrackConfig(collection=str(coll), overlay=False)).values()))
    seconds["track"] = time.time() - start
    row.update(landmark_px=summary["landmark_px"], track_s_per_frame=summary["seconds"] / max(1, summary["frames"]))

    steps = [f"trainer.max_steps={opts['steps']}"] if int(opts["steps"]) > 0 else []
    seconds["train"] = _run(["train.py", "data=vidcol", f"data.root={coll}", f"trainer={opts['trainer']}",
                             f"hydra.run.dir={run}", *steps], logs / "train.log")
    metrics = json.loads((run / "metrics.json").read_text())
    row["train_minutes"] = metrics["train_minutes"]
    ckpt = run / "checkpoints" / "last.ckpt"
    split = json.loads(next(coll.glob("*/split.json")).read_text())
    row.update(frames_train=len(split["train"]), frames_val=len(split["val"]), frames_test=len(split["test"]))
    for which in ("val", "test"):  # validation first: what choices are made on; the test frames for the figure
        seconds[f"evaluate_{which}"] = _run(
            ["-m", "pav.evaluate", f"ckpt={ckpt}", f"split={which}", f"out={work / 'eval' / which}",
             f"size={opts['eval_size']}", f"views={opts['views']}"], logs / f"evaluate_{which}.log")
        scores = _scores(work / "eval" / which / "metrics.json")
        row.update(scores if which == "test" else {f"val_{k}": v for k, v in scores.items()})
    maps = sorted((work / "eval" / "test" / "error_maps").glob("*.png"))
    row["picture"] = str(maps[0]) if maps else ""
    name = next(iter(json.loads((coll / "prepare.json").read_text())["appearances"]))
    seconds["turntable"] = _run(["-m", "pav.render", f"ckpt={ckpt}", f"appearance={name}", "drive=turntable",
                                 f"out={work / 'turntable.mp4'}", f"size={opts['eval_size']}",
                                 f"max_frames={opts['turntable']}"], logs / "turntable.log")
    row["turntable"] = str(work / "turntable.mp4")
    row["sheet"] = str(picture(Path(row["picture"]), work / "turntable.mp4", work / "picture.png"))

    from pav.data.datamodule import AvatarDataModule, DataConfig
    from pav.track.alignment import mesh_alignment

    dm = AvatarDataModule(DataConfig(root=str(coll)))
    dm.load()
    fit = next(iter(mesh_alignment(dm).summary(dm.appearance_names).values()))
    row.update(mesh_outside=fit["outside_median"], mesh_outside_p95=fit["outside_p95"],
               edge_px=fit["edge_px_median"], edge_px_p95=fit["edge_px_p95"])
    row["seconds"] = seconds
    (work / "bench.json").write_text(json.dumps(row, indent=1) + "\n")
    return row


def picture(error_map: Path, turntable: Path, out: Path, views: int = 6) -> Path:
    """One image to look at: the held-out error map (render | truth | error) over `views` turntable frames."""
    import imageio.v3 as iio
    import numpy as np
    from PIL import Image

    top = Image.open(error_map).convert("RGB")
    frames = iio.imread(turntable)  # [T, H, W, 3]
    picks = np.linspace(0, len(frames) - 1, views + 1)[:-1].round().astype(int)  # the first turn, not the return
    strip = Image.fromarray(np.concatenate([frames[i] for i in picks], 1))
    strip = strip.resize((top.width, round(strip.height * top.width / strip.width)), Image.LANCZOS)
    sheet = Image.new("RGB", (top.width, top.height + strip.height), "white")
    sheet.paste(top, (0, 0))
    sheet.paste(strip, (0, top.height))
    sheet.save(out)
    return out


def _db(value) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "—"


def _share(value) -> str:
    return f"{100 * value:.0f} %" if isinstance(value, (int, float)) else "—"


def print_table(rows: list[dict]) -> None:
    head = ("clip", "protocol", "kept (train / val / test)", "unknown % (frame + torso)", "landmark px@256",
            "track s/frame", "mesh off matte % (p95)", "edge px (p95)", "train min", "val PSNR", "PSNR", "SSIM",
            "face PSNR", "rest PSNR", "face's share of the error")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print(f"| {r['clip']} | {r['protocol']} | {r['kept']} ({r['frames_train']} / {r['frames_val']} / "
              f"{r['frames_test']}) | {100 * r['unknown_frame']:.0f} + {100 * r['unknown_torso']:.0f} | "
              f"{r['landmark_px']:.2f} | {r['track_s_per_frame']:.2f} | {100 * r['mesh_outside']:.1f} "
              f"({100 * r['mesh_outside_p95']:.1f}) | {r['edge_px']:.1f} ({r['edge_px_p95']:.1f}) | "
              f"{r['train_minutes']:.1f} | {r['val_psnr']:.2f} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
              f"{_db(r.get('psnr_face'))} | {_db(r.get('psnr_rest'))} | {_share(r.get('face_error'))} |")
    for r in rows:
        print(f"{r['clip']}: picture {r.get('sheet', r['picture'])}, turntable {r['turntable']}, stage seconds "
              + ", ".join(f"{k} {v:.0f}" for k, v in r["seconds"].items()))
    for r in rows:
        for key in ("kept", "landmark_px", "track_s_per_frame", "mesh_outside", "edge_px", "train_minutes",
                    "val_psnr", "psnr", "ssim", "psnr_face", "psnr_rest", "face_error"):
            if isinstance(r.get(key), (int, float)):
                print(f"FIG {r['clip']} {key}: {r[key]:.4g}")


def main(argv: list[str] | None = None) -> None:
    videos, opts = _parse(sys.argv[1:] if argv is None else argv)
    rows, failed = [], []
    for video in videos:
        try:
            rows.append(bench_clip(video, opts))
        except RuntimeError as err:
            print(f"[bench] {video.name}: {err}", file=sys.stderr)
            failed.append(video.name)
        if rows:
            print_table(rows)
    if failed:
        raise SystemExit(f"bench/real_video.py: failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
