"""The GPU smoke run: every GPU path of pav once, in a few minutes, on one GPU (`bash bench/gpu_smoke.sh`).

Each stage runs as its own process with its own time limit, prints `STAGE <name>: PASS|FAIL|SKIP (<s> s) <why>`
and its figures as `FIG <name>: <value>` lines, and a failed stage never stops the next one. Stages, in order of
what matters most when time runs short: the CUDA build, the CUDA parity tests, `trainer=gpu`, the native ops at
scale, rendering, evaluation, the viewer's refine, the step split, `trainer=ddp devices=1`, tracking on CUDA, and
`trainer=gpu` on a real clip (when the bundle has one) for the time that is left.

`python bench/gpu_smoke.py bundle=.gpu_smoke out=DIR [device=cuda budget=480 steps=500]`; `device=cpu` runs the
same stages at toy sizes, which checks the plumbing on a machine without a GPU (its figures mean nothing).
`bench/gpu_prepare.sh` makes the bundle (wheels the GPU machine lacks, a small synthetic collection).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pav.common.cli import parse_overrides  # noqa: E402


@dataclass
class SmokeConfig:
    bundle: str = ".gpu_smoke"  # made by bench/gpu_prepare.sh: collection/ (and wheels/, used by the .sh)
    out: str = "/tmp/pav_gpu_smoke"  # smoke.log, summary.json and the validation sheet: what comes back
    work: str = "/tmp/pav_gpu_smoke_work"  # runs, renders, evaluations
    device: str = "cuda"  # cuda: the real run; cpu: the same stages at toy sizes (plumbing only)
    budget: float = 480.0  # seconds for all stages; a stage that would start after this is skipped
    deadline: float = 570.0  # seconds: a stage still running then is stopped (the summary must get out)
    steps: int = 500  # trainer=gpu steps (at most train_seconds of training)
    train_seconds: int = 150
    real_seconds: int = 200  # trainer=gpu on the real clip, at most (the paper's 15k steps run ~6 min on an H200)
    only: str = ""  # comma-separated stage names to run (e.g. build,real_clip to re-check one fix); "": all
    stage: str = ""  # internal: run one in-process stage (viewer)
    ckpt: str = ""  # internal: the checkpoint of the in-process stage


@dataclass
class Result:
    name: str
    status: str
    seconds: float
    why: str = ""


class Smoke:
    def __init__(self, cfg: SmokeConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(cfg.work).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.bundle = Path(cfg.bundle).resolve()
        self.collection = self.bundle / "collection"
        self.log = (self.out / "smoke.log").open("w")
        self.started = time.monotonic()
        self.results: list[Result] = []
        self.figs: dict[str, str] = {}
        self.gpu = cfg.device == "cuda"
        self.ckpt = self.work / "runs" / "gpu" / "checkpoints" / "last.ckpt"
        self.only = only_stages(cfg.only)

    # ------------------------------------------------------------------ running and reporting
    def say(self, line: str) -> None:
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()

    def fig(self, name: str, value) -> None:
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        self.figs[name] = text
        self.say(f"FIG {name}: {text}")

    def run(self, name: str, cmd: list[str], timeout: float, env: dict | None = None) -> tuple[int, str]:
        """Runs cmd, logs its output under the stage's name, forwards its FIG lines; rc 124 on a timeout."""
        timeout = max(min(timeout, self.cfg.deadline - (time.monotonic() - self.started)), 1.0)
        self.say(f"--- {name} (at most {timeout:.0f} s): {' '.join(cmd)}")
        # this checkout's pav first, whatever is installed: bench scripts import it as a package
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path, **(env or {})}
        # its own process group: a timeout stops what it started too (DDP ranks, data workers)
        proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            rc = 124
            output += f"\n[timed out after {timeout:.0f} s]"
        try:  # whatever the stage left behind
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.write(output + "\n")
        self.log.flush()
        for line in output.splitlines():
            match = re.match(r"FIG (\S+): (.*)", line.strip())
            if match:
                self.fig(match.group(1), match.group(2))
        return rc, output

    def stage(self, name: str, fn, needs_ckpt: bool = False) -> None:
        elapsed = time.monotonic() - self.started
        if self.only and name not in self.only:
            self.results.append(Result(name, "SKIP", 0.0, f"not in only={self.cfg.only}"))
        elif elapsed > self.cfg.budget:
            self.results.append(Result(name, "SKIP", 0.0, f"out of time ({elapsed:.0f} s of {self.cfg.budget:.0f})"))
        elif needs_ckpt and not self.ckpt.exists():
            self.results.append(Result(name, "SKIP", 0.0, "no checkpoint: trainer=gpu did not finish"))
        else:
            start = time.monotonic()
            try:
                why = fn()
                status = "PASS" if not why else "SKIP" if why.startswith("SKIP: ") else "FAIL"
                why = why.removeprefix("SKIP: ")
            except Exception as exc:  # noqa: BLE001 - a broken stage is a FAIL line, the others still run
                status, why = "FAIL", f"{type(exc).__name__}: {exc}"
            self.results.append(Result(name, status, time.monotonic() - start, why or ""))
        r = self.results[-1]
        self.say(f"STAGE {r.name}: {r.status} ({r.seconds:.0f} s) {r.why}".rstrip())

    def summary(self) -> int:
        self.say("\n| stage | result | seconds | note |\n|---|---|---|---|")
        for r in self.results:
            self.say(f"| {r.name} | {r.status} | {r.seconds:.0f} | {r.why[:160]} |")
        self.say("\n| figure | value |\n|---|---|")
        for name, value in self.figs.items():
            self.say(f"| {name} | {value} |")
        total = time.monotonic() - self.started
        failed = [r.name for r in self.results if r.status == "FAIL"]
        skipped = [r.name for r in self.results if r.status == "SKIP"]
        passed = len(self.results) - len(failed) - len(skipped)
        self.say(f"\nSMOKE {'PASS' if not failed else 'FAIL'}: {passed} of {len(self.results)} stages passed in "
                 f"{total:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else "")
                 + (f"; skipped: {', '.join(skipped)}" if skipped else ""))
        (self.out / "summary.json").write_text(json.dumps({"stages": [r.__dict__ for r in self.results],
                                                           "figures": self.figs, "seconds": total}, indent=1))
        return 0 if not failed else 1

    # ------------------------------------------------------------------ stages
    def python(self, *args: str) -> list[str]:
        return [sys.executable, *args]

    def environment(self) -> str:
        code = ("import torch, lightning; print('FIG torch:', torch.__version__); "
                "print('FIG lightning:', lightning.__version__); "
                "print('FIG gpu:', torch.cuda.get_device_name() if torch.cuda.is_available() else 'none')")
        rc, _ = self.run("environment", self.python("-c", code), 60)
        if rc != 0:
            return "torch or lightning does not import"
        if self.gpu and self.figs.get("gpu") == "none":
            return "torch sees no GPU"
        return ""

    def build(self) -> str:
        start = time.monotonic()
        rc, output = self.run("build", self.python("-m", "pav.ops.build"), 420)
        self.fig("ext_build_s", time.monotonic() - start)
        if rc != 0:
            return "pav._C did not build: " + output.strip().splitlines()[-1][:200]
        if self.gpu and "CUDA: yes" not in output:
            return "built without CUDA: " + next((ln for ln in output.splitlines() if "CUDA:" in ln), "")[:200]
        return ""

    def parity(self) -> str:
        rc, output = self.run("parity", self.python("-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                                                    "-m", "cuda", "tests"), 300)
        counts = dict((k, int(v)) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error)", output))
        for key in ("passed", "failed", "skipped"):
            self.fig(f"cuda_tests_{key}", counts.get(key, 0))
        if rc not in (0, 5):  # 5: nothing selected
            return f"{counts.get('failed', 0)} failed, {counts.get('error', 0)} errors (see smoke.log)"
        skips = re.findall(r"SKIPPED \[(\d+)\] [^:]+:\d+: (.*)", output)
        for n, reason in skips:
            self.say(f"    skipped {n}: {reason}")
        missing_gpu = sum(int(n) for n, reason in skips if "CUDA" in reason)  # not e.g. "nvdiffrast is not installed"
        if self.gpu and missing_gpu:
            return f"{missing_gpu} CUDA tests skipped on a GPU machine (see smoke.log)"
        return ""

    def train_args(self, preset: str, run_dir: Path, steps: int, *extra: str) -> list[str]:
        args = [f"trainer={preset}", f"data.root={self.collection}", f"hydra.run.dir={run_dir}", "logger=csv",
                f"trainer.max_steps={steps}", "data.eval_views_per_appearance=2", f"checkpoint_every={steps}"]
        if not self.gpu:  # the plumbing at toy sizes on a CPU
            args += ["trainer.accelerator=cpu", "data.rays_per_batch=256", "render.max_samples=128",
                     "render.grid_resolution=32", "model.log2_hashmap_size=14", "model.texture_size=64",
                     "data.eval_size=32", "data.val_size=32", "data.num_workers=1"]
        return self.python("train.py", *args, *extra)

    def train_gpu(self) -> str:
        steps = self.cfg.steps if self.gpu else 12
        run_dir = self.work / "runs" / "gpu"
        interval = max(steps // 2, 1)
        rc, output = self.run("train_gpu", self.train_args(
            "gpu", run_dir, steps, f"trainer.val_check_interval={interval}",
            f"trainer.max_time=00:00:{self.cfg.train_seconds // 60:02d}:{self.cfg.train_seconds % 60:02d}"),
            self.cfg.train_seconds + 150)
        if rc != 0 or not (run_dir / "metrics.json").exists():
            return f"exit {rc}: " + _last_error(output)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        self.fig("train_steps", metrics["steps"])
        self.fig("heldout_psnr", metrics["mean"]["psnr"])
        self.fig("train_minutes", metrics["train_minutes"])
        self.fig("final_eval_s_per_view", metrics["eval_seconds"] / max(sum(
            a["views"] for a in metrics["per_appearance"].values()), 1))
        rate, samples = _rate_and_samples(run_dir)
        if rate:
            self.fig("train_steps_per_s", rate)  # over the second half: the grid has settled
            self.fig("train_15k_minutes_extrapolated", 15000 / rate / 60)
        if samples:
            self.fig("samples_per_ray", samples)
        sheets = sorted((run_dir / "val").glob("*.png"))
        if not sheets:
            return "no validation sheet was written"
        shutil.copy(sheets[-1], self.out / "val_sheet.png")
        return ""

    def ops(self) -> str:
        rc, output = self.run("ops", self.python("bench/ops.py", "--device", self.cfg.device), 240)
        return "" if rc == 0 else f"exit {rc}: " + _last_error(output)

    def render(self) -> str:
        sizes = "[512]" if self.gpu else "[32]"
        rc, output = self.run("render", self.python("bench/render.py", f"ckpt={self.ckpt}", f"sizes={sizes}",
                                                    f"frames={12 if self.gpu else 2}", f"device={self.cfg.device}"),
                              240)
        return "" if rc == 0 else f"exit {rc}: " + _last_error(output)

    def evaluate(self) -> str:
        out = self.work / "eval"
        start = time.monotonic()
        rc, output = self.run("evaluate", self.python("-m", "pav.evaluate", f"ckpt={self.ckpt}", f"out={out}",
                                                      f"device={self.cfg.device}", "views=4", "progress=false",
                                                      f"size={256 if self.gpu else 32}"), 240)
        self.fig("evaluate_s", time.monotonic() - start)
        if rc != 0:
            return f"exit {rc}: " + _last_error(output)
        return "" if any(out.glob("*")) else f"nothing written to {out}"

    def viewer(self) -> str:
        rc, output = self.run("viewer", self.python("bench/gpu_smoke.py", "stage=viewer", f"ckpt={self.ckpt}",
                                                    f"device={self.cfg.device}"), 180)
        return "" if rc == 0 else f"exit {rc}: " + _last_error(output)

    def train_step(self) -> str:
        extra = [f"data.root={self.collection}", "trainer=gpu"]
        if not self.gpu:
            extra += ["data.rays_per_batch=256", "render.max_samples=128", "model.log2_hashmap_size=14",
                      "model.texture_size=64", "render.grid_resolution=32"]
        rc, output = self.run("train_step", self.python("bench/train_step.py", f"ckpt={self.ckpt}",
                                                        f"device={self.cfg.device}", *extra), 180)
        return "" if rc == 0 else f"exit {rc}: " + _last_error(output)

    def ddp(self) -> str:
        run_dir = self.work / "runs" / "ddp"
        steps = 40 if self.gpu else 6
        rc, output = self.run("ddp", self.train_args("ddp", run_dir, steps, "trainer.devices=1",
                                                     f"trainer.val_check_interval={steps // 2}"), 300)
        if rc != 0 or not (run_dir / "metrics.json").exists():
            return f"exit {rc}: " + _last_error(output)
        if "[pav] sanity validation" not in output:
            return "no sanity validation ran"
        return ""

    def real_clip(self) -> str:
        """trainer=gpu on the bundle's real clip for what time is left: the validation curve and its largest fall."""
        coll = self.bundle / "real"
        if not (coll / "collection.json").exists():
            return "SKIP: no real collection in the bundle (bench/gpu_prepare.sh makes one when the clip is there)"
        left = self.cfg.deadline - (time.monotonic() - self.started)
        seconds = int(min(self.cfg.real_seconds, left - 60)) if self.gpu else 60  # on a CPU: 8 steps, any time
        if seconds < 60:
            return f"SKIP: {left:.0f} s left, too little for the real clip"
        run_dir = self.work / "runs" / "real"
        args = ["data=vidcol", f"data.root={coll}", f"hydra.run.dir={run_dir}", "logger=csv",
                f"trainer.max_time=00:00:{seconds // 60:02d}:{seconds % 60:02d}", "data.eval_views_per_appearance=4",
                "checkpoint_every=100000"]
        args += ["trainer=gpu", "trainer.val_check_interval=500"] if self.gpu else [
            "trainer=smoke", "trainer.val_check_interval=4", "trainer.max_steps=8"]
        rc, output = self.run("real_clip", self.python("train.py", *args), seconds + 60)
        if rc != 0 or not (run_dir / "metrics.json").exists():
            return f"exit {rc}: " + _last_error(output)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        self.fig("real_steps", metrics["steps"])
        self.fig("real_heldout_psnr", metrics["mean"]["psnr"])
        curve = _logged(run_dir, "val/psnr")
        train = _logged(run_dir, "train/psnr")
        if curve:
            self.fig("real_val_psnr_curve", " ".join(f"{step}:{value:.2f}" for step, value in curve))
            self.fig("real_val_psnr_peak", max(value for _, value in curve))
        if len(train) > 1:
            # the largest fall of the logged training PSNR from its best so far: a diverging run shows here
            best, fall, at = -1.0, 0.0, 0
            for step, value in train:
                best = max(best, value)
                if best - value > fall:
                    fall, at = best - value, step
            self.fig("real_train_psnr_fall", f"{fall:.2f} dB at step {at}")
            if self.gpu and fall > 2.0:
                return f"training PSNR fell {fall:.1f} dB from its best at step {at} (a diverging run)"
        shutil.copy(sorted((run_dir / "val").glob("*.png"))[-1], self.out / "real_val_sheet.png")
        return ""

    def tracking(self) -> str:
        rc, output = self.run("tracking", self.python("bench/tracking.py", f"device={self.cfg.device}",
                                                      f"truth={self.collection}", f"out={self.work / 'tracking'}"),
                               240)
        return "" if rc == 0 else f"exit {rc}: " + _last_error(output)


def _last_error(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.search(r"(Error|error:|Exception|FAILED)", ln)]
    return (errors[-1] if errors else lines[-1] if lines else "no output")[:240]


def _logged(run_dir: Path, key: str) -> list[tuple[int, float]]:
    """(step, value) of one logged key from the run's CSV log."""
    logs = sorted(run_dir.glob("logs/**/metrics.csv"))
    if not logs:
        return []
    return [(int(r["step"]), float(r[key])) for r in csv.DictReader(logs[-1].open()) if r.get(key)]


def _rate_and_samples(run_dir: Path) -> tuple[float | None, float | None]:
    """Steps per second over the second half of the run and the last samples-per-ray, from the CSV log."""
    logs = sorted(run_dir.glob("logs/**/metrics.csv"))
    if not logs:
        return None, None
    rows = list(csv.DictReader(logs[-1].open()))
    timed = [(int(r["step"]), float(r["train/minutes"])) for r in rows if r.get("train/minutes")]
    samples = [float(r["train/samples_per_ray"]) for r in rows if r.get("train/samples_per_ray")]
    rate = None
    if len(timed) >= 4:
        (s0, m0), (s1, m1) = timed[len(timed) // 2], timed[-1]
        rate = (s1 - s0) / max((m1 - m0) * 60, 1e-9)
    return rate, samples[-1] if samples else None


def viewer_stage(cfg: SmokeConfig) -> None:
    """The viewer's server side without a browser: pose a frame, swap the appearance, refine at 512 rows."""
    import numpy as np
    import torch
    from scipy.spatial.transform import Rotation

    from pav.render.cameras import look_at
    from pav.viewer.avatar import load_viewer_avatar
    from pav.viewer.camera import BrowserCamera
    from pav.viewer.pose import PanelPose

    avatar = load_viewer_avatar(cfg.ckpt, cfg.device)
    start = avatar.start
    c2w = look_at(np.asarray(start.position, float), np.asarray(start.look_at, float), np.array([0.0, 1.0, 0.0]))
    x, y, z, w = Rotation.from_matrix(c2w[:3, :3]).as_quat()
    camera = BrowserCamera((w, x, y, z), tuple(start.position), start.fov, 1.0)
    rows = 512 if cfg.device == "cuda" else 32
    for label, height in (("warmup", 64), ("preview", 64), ("refine", rows)):
        times = []
        for appearance in range(len(avatar.names)):
            t0 = time.perf_counter()
            frame = avatar.frame(PanelPose(jaw=0.1, yaw=10.0), appearance)
            image = avatar.render(frame, camera, height)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            assert image is not None and image.shape[0] == height and image.std() > 0, "a blank or missing image"
        if label != "warmup":
            print(f"FIG viewer_{label}_{height}_s: {np.median(times):.4f}")


# name, Smoke method, needs the trainer=gpu checkpoint; run in this order
STAGES = (("environment", False), ("build", False), ("parity", False), ("train_gpu", False), ("ops", False),
          ("render", True), ("evaluate", True), ("viewer", True), ("train_step", True), ("ddp", False),
          ("tracking", False), ("real_clip", False))


def only_stages(spec: str) -> set[str]:
    """only=a,b -> {a, b}; empty: every stage. An unknown name is refused with the list."""
    names = {n.strip() for n in spec.split(",") if n.strip()}
    unknown = names - {name for name, _ in STAGES}
    if unknown:
        raise ValueError(f"only={spec}: no stage named {', '.join(sorted(unknown))} "
                         f"(stages: {', '.join(name for name, _ in STAGES)})")
    return names


def main(argv: list[str] | None = None) -> int:
    cfg = parse_overrides(SmokeConfig, sys.argv[1:] if argv is None else argv, prog="python bench/gpu_smoke.py")
    if cfg.stage == "viewer":
        viewer_stage(cfg)
        return 0
    try:
        only_stages(cfg.only)
    except ValueError as exc:
        print(exc)
        return 2
    smoke = Smoke(cfg)
    smoke.say(f"pav GPU smoke run: device={cfg.device}, bundle {smoke.bundle}, out {smoke.out}")
    if not smoke.collection.is_dir():
        smoke.say(f"no collection at {smoke.collection}: run bench/gpu_prepare.sh first")
        return 2
    for name, needs_ckpt in STAGES:
        smoke.stage(name, getattr(smoke, name), needs_ckpt=needs_ckpt)
    return smoke.summary()


if __name__ == "__main__":
    sys.exit(main())
