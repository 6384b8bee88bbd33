"""One variant's training run and its evaluation, skipped when both are already on disk.

Run directories: <out>/<data>/runs/<variant> for the models of all appearances (protocol a, and protocol b's
PAV, which is protocol a's), <out>/<data>/runs/insta_<appearance> for protocol b's per-appearance INSTA, each
trained on a one-appearance view of the collection (<out>/<data>/collections/<appearance>: collection.json and
links to the original files).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..data.collection import META_FILE, SHAPE_FILE, Collection
from ..evaluate import EvaluateConfig, evaluate
from ..train.config import typed_config
from ..train.run import run as train_run

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# budget name -> training overrides; every variant of a protocol gets the same one
BUDGETS = {
    "smoke": ["trainer=smoke"],  # a few dozen steps: checks the pipeline, not the models
    "demo": ["trainer=cpu"],  # this 2-core machine's budget: about 17 min per model on the default collection
    "paper": ["trainer=gpu"],  # the paper's 15k steps on a GPU
}


@dataclass
class Run:
    name: str  # variant, or insta_<appearance>
    model: str  # configs/model/<model>.yaml
    directory: Path
    overrides: list[str] = field(default_factory=list)  # beyond the protocol's shared ones

    @property
    def checkpoint(self) -> Path:
        return self.directory / "checkpoints" / "last.ckpt"

    @property
    def train_metrics(self) -> Path:
        return self.directory / "metrics.json"

    @property
    def eval_metrics(self) -> Path:
        return self.directory / "eval" / "test" / "metrics.json"

    def split_metrics(self, split: str) -> Path:
        return self.directory / "eval" / split / "metrics.json"

    def done(self) -> bool:
        return self.checkpoint.exists() and self.train_metrics.exists() and self.eval_metrics.exists()


@dataclass
class RunResult:
    name: str
    train: dict  # the training run's metrics.json (steps, train_minutes, parameters, checkpoint_mb, ...)
    scores: dict  # the evaluation's scores (per_appearance, overall, unavailable)
    curve: list[tuple[int, float, float]]  # (step, training minutes, validation PSNR: validation frames) from the log
    skipped: bool


def compose_config(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO_CONFIGS), version_base="1.3"):
        return compose("train", overrides=overrides)


def ensure_collection(overrides: list[str]) -> Collection:
    """The protocol's collection (generated first when it is the synthetic one and missing)."""
    from ..data.datamodule import AvatarDataModule

    typed = typed_config(compose_config(overrides))
    if not (Path(typed.data.root) / META_FILE).exists():
        AvatarDataModule(typed.data).load(typed.loss.depth_regions)  # generates it, or names what is missing
    return Collection.open(typed.data.root, verify_images="none")


def single_appearance(collection: Collection, name: str, folder: Path) -> Path:
    """A collection of one appearance of `collection`: its own collection.json, links to the original files."""
    folder.mkdir(parents=True, exist_ok=True)
    for link, target in ((folder / SHAPE_FILE, collection.root / SHAPE_FILE), (folder / name, collection.root / name)):
        if not link.exists():
            os.symlink(target.resolve(), link)
    meta = collection.meta.to_json()
    meta["appearances"] = [a for a in meta["appearances"] if a["name"] == name]
    meta["cross"] = []
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def read_curve(directory: Path) -> list[tuple[int, float, float]]:
    """(step, train/minutes, val/psnr) rows of every CSV log of the run (a resumed run writes a new version folder);
    the minutes are the last logged at or before the validation's step."""
    psnr: dict[int, float] = {}
    minutes: dict[int, float] = {}
    for path in sorted((directory / "logs").glob("version_*/metrics.csv")):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("val/psnr"):
                    psnr[int(row["step"])] = float(row["val/psnr"])
                if row.get("train/minutes"):
                    minutes[int(row["step"])] = float(row["train/minutes"])
    logged = sorted(minutes)
    out = []
    for step, value in sorted(psnr.items()):
        before = [s for s in logged if s <= step]
        out.append((step, minutes[before[-1]] if before else 0.0, value))
    return out


def train_and_evaluate(run: Run, shared: list[str], eval_cfg: dict) -> RunResult:
    """Trains (or resumes) the run, evaluates its checkpoint on the test split; skips what is already done."""
    skipped = run.done()
    if skipped:
        print(f"[pav] {run.name}: checkpoint and metrics exist in {run.directory}, skipped")
    else:
        if not (run.checkpoint.exists() and run.train_metrics.exists()):
            train_run(compose_config([*shared, f"model={run.model}", *run.overrides]), run.directory)
        evaluate(EvaluateConfig(ckpt=str(run.checkpoint), split="test", out=str(run.eval_metrics.parent),
                                **eval_cfg))
    train = json.loads(run.train_metrics.read_text())
    scores = json.loads(run.eval_metrics.read_text())["scores"]
    return RunResult(run.name, train, scores, read_curve(run.directory), skipped)


def split_evaluate(run: Run, split: str, collection: Path, eval_cfg: dict, views: int) -> dict:
    """The run's scores on `split` (cross: the cross-appearance set with truth; novel: the other videos' poses and
    expressions without truth) of `collection`, which may hold more appearances than the run was trained on."""
    metrics = run.split_metrics(split)
    stale = not metrics.exists() or metrics.stat().st_mtime < run.checkpoint.stat().st_mtime
    if stale:  # missing, or older than a retrained checkpoint
        evaluate(EvaluateConfig(ckpt=str(run.checkpoint), split=split, collection=str(collection),
                                out=str(metrics.parent), **{**eval_cfg, "views": views}))
    return json.loads(metrics.read_text())["scores"]


def shared_overrides(data: str, budget: str, steps: int, extra: list[str]) -> list[str]:
    """The training overrides every run of a protocol shares: data, budget, CSV logs (the PSNR curves)."""
    out = [f"data={data}", *BUDGETS[budget], "logger=csv"]
    if steps:
        out += [f"trainer.max_steps={steps}", f"trainer.val_check_interval={max(1, steps // 2)}"]
    return [*out, *extra]
