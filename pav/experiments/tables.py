"""Markdown of the protocols: metric tables, per-appearance PSNR, efficiency; reasons for unavailable metrics."""

from __future__ import annotations

import numpy as np

from ..evaluate.results import LABELS, cell
from ..metrics import METRICS

VARIANT_NOTES = {"insta": "INSTA (no appearance input)", "pav_glo": "PAV without latent textures (GLO vector)",
                 "pav_no_offset": "PAV without density offset", "pav": "PAV"}


def _header(cfg, title: str) -> list[str]:
    steps = f"{cfg.steps} steps" if cfg.steps else "the budget's steps"
    return [f"# {title}", "",
            f"Data `{cfg.data}`{f' ({cfg.root})' if cfg.root else ''}, budget `{cfg.budget}` ({steps}) for every "
            f"model; held-out test views composited on white"
            f"{f', scored at {cfg.eval_size} px' if cfg.eval_size else ''}.", ""]


def _reasons(results) -> list[str]:
    found: dict[str, str] = {}
    for r in results:
        for metric, reason in r.scores.get("unavailable", {}).items():
            found.setdefault(metric, reason)
    if not found:
        return []
    return ["Unavailable metrics:", ""] + [f"- {LABELS[m].split()[0]} unavailable: {why}" for m, why in found.items()]


def protocol_a_markdown(results, cfg) -> str:
    lines = _header(cfg, "Protocol a: one model for all appearances")
    lines += ["| model | " + " | ".join(LABELS[m] for m in METRICS) + " | steps | train min | parameters | "
              "checkpoint MB |", "|---|" + "---:|" * (len(METRICS) + 4)]
    for r in results:
        o, t = r.scores["overall"], r.train
        lines.append(f"| {r.name} | " + " | ".join(cell(m, o[m]) for m in METRICS)
                     + f" | {t['steps']} | {t['train_minutes']:.1f} | {t['parameters'] / 1e6:.2f} M"
                     f" | {t['checkpoint_mb']:.1f} |")
    names = list(results[0].scores["per_appearance"])
    lines += ["", "Held-out PSNR per appearance:", "",
              "| model | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for r in results:
        lines.append(f"| {r.name} | " + " | ".join(cell("psnr", r.scores["per_appearance"][n]["psnr"])
                                                  for n in names) + " |")
    lines += ["", *(f"- {r.name}: {VARIANT_NOTES.get(r.name, r.name)}" for r in results), "", *_reasons(results)]
    return "\n".join(lines).rstrip()


def _mean(values: list) -> float | str:
    """Mean of numbers, or the first "unavailable: ..." among them."""
    text = [v for v in values if isinstance(v, str)]
    return text[0] if text else float(np.mean(values))


def _versus(own: dict[str, dict], joint: dict[str, dict[str, dict]], names: list[str],
            metrics: tuple[str, ...] = METRICS) -> list[str]:
    """Rows per appearance of each appearance's own INSTA against each one-for-all model (joint: label ->
    appearance -> scores), then their means."""
    who = ["INSTA", *joint]
    cols = [f"{LABELS[m]} {w}" for m in metrics for w in who]
    lines = ["| appearance | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    rows = {m: {w: [] for w in who} for m in metrics}
    for name in names:
        cells = []
        for m in metrics:
            for w in who:
                value = own[name][m] if w == "INSTA" else joint[w][name][m]
                rows[m][w].append(value)
                cells.append(cell(m, value))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{cell(m, _mean(rows[m][w]))}**" for m in metrics for w in who)
                 + " |")
    return lines


MODEL_LABELS = {"pav": "PAV", "pav_equal": "PAV (equal compute)"}
SPLIT_NOTES = {
    "cross": ("Each appearance in the held-out poses, expressions and cameras of the other videos (the "
              "cross-appearance set, scored against the generator's truth):", METRICS),
    "novel": ("Each appearance in the held-out poses, expressions and cameras of the other videos, with no truth "
              "(the paper's protocol b set): FID of the renders against the appearance's own held-out images:",
              ("fid",)),
}


def protocol_b_markdown(insta: dict, models: dict, cfg, extra: dict[str, tuple[dict, dict]] | None = None) -> str:
    """insta: appearance -> its own INSTA's RunResult, in the collection's order; models: name (pav, pav_equal) ->
    RunResult of a model of all appearances; extra: split (cross, novel) -> (appearance -> its INSTA's scores on
    the split, model name -> that model's scores on it)."""
    lines = _header(cfg, "Protocol b: one INSTA per appearance against one PAV for all")
    names = list(insta)
    own = {name: r.scores["per_appearance"][name] for name, r in insta.items()}
    label = {m: MODEL_LABELS.get(m, m) for m in models}
    if "pav_equal" in models:
        steps = sum(int(r.train["steps"]) for r in insta.values())
        lines += [f"PAV (equal compute) trained {models['pav_equal'].train['steps']} steps, the {steps} steps of the "
                  f"{len(insta)} INSTAs together.", ""]
    lines += _versus(own, {label[m]: r.scores["per_appearance"] for m, r in models.items()}, names)
    for split, (insta_scores, model_scores) in (extra or {}).items():
        note, metrics = SPLIT_NOTES[split]
        lines += ["", note, ""]
        lines += _versus({n: insta_scores[n]["per_appearance"][n] for n in names},
                         {label[m]: s["per_appearance"] for m, s in model_scores.items()}, names, metrics)
    t_insta = [r.train for r in insta.values()]
    lines += ["", "Efficiency (INSTA: all per-appearance models together):", "",
              "| | models | steps | train minutes | parameters | checkpoint MB |", "|---|---:|---:|---:|---:|---:|",
              f"| INSTA per appearance | {len(insta)} | {sum(int(t['steps']) for t in t_insta)} | "
              f"{sum(t['train_minutes'] for t in t_insta):.1f} | "
              f"{sum(t['parameters'] for t in t_insta) / 1e6:.2f} M | "
              f"{sum(t['checkpoint_mb'] for t in t_insta):.1f} |"]
    for m, r in models.items():
        lines.append(f"| {label[m]} | 1 | {r.train['steps']} | {r.train['train_minutes']:.1f} | "
                     f"{r.train['parameters'] / 1e6:.2f} M | {r.train['checkpoint_mb']:.1f} |")
    lines += ["", "Means are over appearances (FID: the mean of the per-appearance FIDs).", "",
              *_reasons([*insta.values(), *models.values()])]
    return "\n".join(lines).rstrip()
