"""The paper's two protocols with one training budget for every model, written as results/<data>/<protocol>.md.

a: insta, pav_glo, pav_no_offset and pav, each one model for all appearances.
b: one insta model per appearance against one pav model for all of them, with the efficiency table; each
   appearance in the other videos' poses and expressions without truth (FID, any collection) and, where the
   collection has the cross-appearance set, with truth; equal_compute=true adds a pav trained for the steps of all
   the INSTAs together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING

from .figure import comparison_figure
from .plots import plot_bars, plot_curves
from .runs import (
    BUDGETS,
    Run,
    RunResult,
    ensure_collection,
    shared_overrides,
    single_appearance,
    split_evaluate,
    train_and_evaluate,
)
from .tables import protocol_a_markdown, protocol_b_markdown

PROTOCOLS = ("a", "b")
VARIANTS_A = ("insta", "pav_glo", "pav_no_offset", "pav")


@dataclass
class ExperimentsConfig:
    protocol: str = MISSING  # a | b
    data: str = "synthetic"  # configs/data/<data>.yaml
    budget: str = "demo"  # smoke | demo | paper (configs/trainer presets), the same for every model
    out: str = "results"
    root: str = ""  # the collection; default: the data config's data.root
    steps: int = 0  # training steps of every model; 0: the budget's
    eval_size: int = 0  # longest side of the scored images; 0: the collection's size
    eval_views: int = 0  # held-out views per appearance scored; 0: all
    device: str = "auto"
    overrides: list[str] = field(default_factory=list)  # further training overrides shared by every model
    equal_compute: bool = False  # protocol b: also one PAV trained for the steps of all the INSTAs together
    novel: bool = True  # protocol b: also score the no-truth set (other videos' poses and expressions, FID)


class ExperimentsError(ValueError):
    """Experiments that cannot start: an unknown protocol, budget or data config."""


def check(cfg: ExperimentsConfig, configs: Path) -> None:
    problems = []
    if cfg.protocol not in PROTOCOLS:
        problems.append(f"protocol={cfg.protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if cfg.budget not in BUDGETS:
        problems.append(f"budget={cfg.budget!r} is not one of {', '.join(BUDGETS)}")
    data_names = sorted(p.stem for p in (configs / "data").glob("*.yaml"))
    if cfg.data not in data_names:
        problems.append(f"data={cfg.data!r} is not one of {', '.join(data_names)}")
    if cfg.steps < 0 or cfg.eval_size < 0 or cfg.eval_views < 0:
        problems.append("steps, eval_size and eval_views must be 0 or more")
    if problems:
        raise ExperimentsError("; ".join(problems))


def run_protocol(cfg: ExperimentsConfig) -> Path:
    """Trains and evaluates the protocol's models (skipping finished ones); returns the markdown's path."""
    from .runs import REPO_CONFIGS

    check(cfg, REPO_CONFIGS)
    base = Path(cfg.out) / cfg.data
    runs_dir = base / "runs"
    shared = shared_overrides(cfg.data, cfg.budget, cfg.steps, list(cfg.overrides))
    root = [f"data.root={cfg.root}"] if cfg.root else []
    eval_cfg = {"size": cfg.eval_size, "views": cfg.eval_views, "device": cfg.device}
    pav = Run("pav", "pav", runs_dir / "pav", root)
    if cfg.protocol == "a":
        runs = [Run(v, v, runs_dir / v, root) for v in VARIANTS_A]
        results = [train_and_evaluate(r, shared, eval_cfg) for r in runs]
        markdown = protocol_a_markdown(results, cfg)
        groups = {r.name: r for r in results}
        names = list(results[-1].scores["per_appearance"])
        columns = {r.name: dict.fromkeys(names, r) for r in runs}
    else:
        collection = ensure_collection([*shared, *root])
        singles = {}  # appearance -> its own insta
        for name in collection.appearance_names:
            folder = single_appearance(collection, name, base / "collections" / name)
            singles[name] = Run(f"insta_{name}", "insta", runs_dir / f"insta_{name}",
                                [f"data.root={folder.resolve()}", "data.generate=null"])
        insta = {name: train_and_evaluate(r, shared, eval_cfg) for name, r in singles.items()}
        joint = train_and_evaluate(pav, shared, eval_cfg)
        models = {"pav": (pav, joint)}
        if cfg.equal_compute:  # as many steps as the INSTAs took together
            steps = sum(int(r.train["steps"]) for r in insta.values())
            equal = Run("pav_equal", "pav", runs_dir / "pav_equal", [*root, f"trainer.max_steps={steps}"])
            models["pav_equal"] = (equal, train_and_evaluate(equal, shared, eval_cfg))
        extra = {}
        if collection.cross_pairs:  # the paper's protocol b also scores poses and expressions of other videos
            per_pair = _views_per_pair(cfg.eval_views, collection.cross_pairs)
            extra["cross"] = ({n: split_evaluate(r, "cross", collection.root, eval_cfg, per_pair)
                               for n, r in singles.items()},
                              {m: split_evaluate(r, "cross", collection.root, eval_cfg, per_pair)
                               for m, (r, _) in models.items()})
        if cfg.novel:  # and with no truth at all, which any collection of two or more videos has
            extra["novel"] = ({n: split_evaluate(r, "novel", collection.root, eval_cfg, cfg.eval_views)
                               for n, r in singles.items()},
                              {m: split_evaluate(r, "novel", collection.root, eval_cfg, cfg.eval_views)
                               for m, (r, _) in models.items()})
        markdown = protocol_b_markdown(insta, {m: res for m, (_, res) in models.items()}, cfg, extra)
        groups = {**{r.name: r for r in insta.values()}, **{m: res for m, (_, res) in models.items()}}
        combined = _summed_curve(list(insta.values()))
        if combined:
            groups[f"insta x{len(insta)} (minutes summed)"] = RunResult("insta_all", {}, {}, combined, True)
        columns = {"insta (own)": singles,
                   "pav": dict.fromkeys(collection.appearance_names, pav)}
    path = base / f"{cfg.protocol}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    plots = [plot_curves({k: v for k, v in groups.items() if v.scores}, base / f"{cfg.protocol}_psnr_steps.png"),
             plot_curves(groups, base / f"{cfg.protocol}_psnr_minutes.png", x="minutes")]
    plots += plot_bars(_bar_values(cfg.protocol, {k: v for k, v in groups.items() if v.scores}), base, cfg.protocol)
    plots.append(comparison_figure(columns, pav, eval_cfg, base / f"{cfg.protocol}_error_maps.png"))
    lines = [markdown, "", "Plots:", ""] + [f"![{p.stem}]({p.name})" for p in plots if p is not None]
    path.write_text("\n".join(lines) + "\n")
    print(f"[pav] protocol {cfg.protocol} on {cfg.data} ({cfg.budget}) -> {path}")
    return path


def _summed_curve(results: list[RunResult]) -> list[tuple[int, float, float]]:
    """Per-appearance models as one: at each validation step all of them logged, their minutes summed and their
    PSNRs averaged (what the models cost together against what they reach)."""
    steps = set.intersection(*(set(p[0] for p in r.curve) for r in results)) if results else set()
    out = []
    for step in sorted(steps):
        points = [next(p for p in r.curve if p[0] == step) for r in results]
        out.append((step, sum(p[1] for p in points), sum(p[2] for p in points) / len(points)))
    return out


def _views_per_pair(per_appearance: int, pairs: list[tuple[str, str]]) -> int:
    """Cross views per (appearance, video) pair so that each appearance gets about `per_appearance`; 0: all."""
    if not per_appearance:
        return 0
    videos = max(sum(1 for a, _ in pairs if a == name) for name, _ in pairs)
    return max(1, -(-per_appearance // videos))


def _bar_values(protocol: str, groups: dict[str, RunResult]) -> dict[str, dict[str, float | str]]:
    """metric -> {bar label: value or "unavailable: ..."}: overall per variant (a), per appearance (b)."""
    from ..metrics import METRICS

    out: dict[str, dict[str, float | str]] = {m: {} for m in METRICS}
    for name, result in groups.items():
        if protocol == "a":
            for m in METRICS:
                out[m][name] = result.scores["overall"][m]
        else:
            for app, row in result.scores["per_appearance"].items():
                label = f"{app}\n{name if name.startswith('pav') else 'insta'}"
                for m in METRICS:
                    out[m][label] = row[m]
    return out
