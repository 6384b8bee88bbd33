"""Frames/s of `python -m pav.render`: `python bench/render.py [ckpt=PATH frames=2 sizes=[256,512] device=auto]`.

Prints a table: one appearance and the grid of all appearances at each size, driven by the first appearance's
own frames from its own camera. Without `ckpt` it first trains a tiny checkpoint (2 synthetic appearances,
smoke trainer) in a temporary folder and says so in the header: its numbers are then of a far smaller model.
Times cover rendering and mp4 writing after the checkpoint, collection and head model are loaded.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from pav.common.cli import parse_overrides
from pav.render.video import RenderResult, RenderVideoConfig, render_video
from pav.train.checkpoint import load_avatar

CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")


@dataclass
class BenchConfig:
    ckpt: str = ""  # default: a tiny checkpoint trained here first
    frames: int = 2  # frames timed per row
    sizes: list[int] = field(default_factory=lambda: [256, 512])
    device: str = "auto"
    chunk: int = 0  # 0: the CLI's default for the device


def train_tiny(folder: Path) -> Path:
    from pav.synthetic.generate import SyntheticConfig, generate
    from pav.train.run import run

    root = folder / "collection"
    threads = torch.get_num_threads()
    generate(SyntheticConfig(out=str(root), appearances=2, frames=8, size=64, seed=0, workers=1, cross=False))
    torch.set_num_threads(threads)  # generate's in-process worker leaves torch at one thread
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose("train", overrides=["trainer=smoke", f"data.root={root}", "logger=none"])
    run(cfg, folder / "run")
    return folder / "run" / "checkpoints" / "last.ckpt"


def describe(ckpt: Path, trained_here: bool) -> str:
    renderer, meta, config = load_avatar(ckpt)
    params = sum(p.numel() for p in renderer.field.parameters()) / 1e6
    which = "a tiny checkpoint trained here (trainer=smoke)" if trained_here else str(ckpt)
    return (f"{which}: model={config['model']['name']}, {params:.2f} M parameters, "
            f"{len(meta.appearance_names)} appearances, {config['render']['max_samples']} samples per ray max, "
            f"{config['trainer']['max_steps']} training steps")


def time_render(cfg: BenchConfig, ckpt: Path, appearance: str, drive: str, size: int, folder: Path) -> RenderResult:
    return render_video(RenderVideoConfig(ckpt=str(ckpt), appearance=appearance, drive=drive, size=size,
                                          max_frames=cfg.frames, out=str(folder / f"{appearance}_{size}.mp4"),
                                          device=cfg.device, chunk=cfg.chunk))


def main(argv=None) -> None:
    cfg = parse_overrides(BenchConfig, argv, prog="python bench/render.py")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ckpt = Path(cfg.ckpt) if cfg.ckpt else train_tiny(folder)
        header = describe(ckpt, not cfg.ckpt)
        names = load_avatar(ckpt)[1].appearance_names
        time_render(BenchConfig(frames=1, device=cfg.device, chunk=cfg.chunk), ckpt, names[0], names[0], 32,
                    folder)  # warm-up: native ops, allocator
        rows = []
        for size in cfg.sizes:
            for appearance in (names[0], "all"):
                result = time_render(cfg, ckpt, appearance, names[0], size, folder)
                rows.append((appearance, size, result))
    device = "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() and cfg.device != "cpu" else \
        f"cpu, {torch.get_num_threads()} threads"
    print(f"\n{header}\ndevice {device}; drive: {names[0]}'s own frames and camera (camera=source)\n")
    print("| appearance | tile | output HxW | frames | seconds | frames/s | rendered Mpixels/s |")
    print("|---|---|---|---|---|---|---|")
    for appearance, size, r in rows:
        print(f"| {appearance} | {size}² | {r.height}x{r.width} | {r.frames} | {r.seconds:.1f} | "
              f"{r.frames_per_second:.3f} | {r.frames * r.tiles * size * size / r.seconds / 1e6:.3f} |")
    for appearance, size, r in rows:
        print(f"FIG render_fps_{size}_{'grid' if appearance == 'all' else 'one'}: {r.frames_per_second:.3f}")


if __name__ == "__main__":
    main()
