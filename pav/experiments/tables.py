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


def _versus(own: dict[str, dict], joint: dict[str, dict], names: list[str]) -> list[str]:
    """Rows per appearance of each appearance's own INSTA against the one PAV, then their means."""
    cols = [f"{LABELS[m]} {who}" for m in METRICS for who in ("INSTA", "PAV")]
    lines = ["| appearance | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    rows = {m: {"INSTA": [], "PAV": []} for m in METRICS}
    for name in names:
        cells = []
        for m in METRICS:
            rows[m]["INSTA"].append(own[name][m])
            rows[m]["PAV"].append(joint[name][m])
            cells += [cell(m, own[name][m]), cell(m, joint[name][m])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{cell(m, _mean(rows[m][who]))}**" for m in METRICS
                                              for who in ("INSTA", "PAV")) + " |")
    return lines


def protocol_b_markdown(insta: dict, pav, cfg, cross: tuple[dict, dict] | None = None) -> str:
    """insta: appearance -> its own INSTA's RunResult, in the collection's order; `cross`: (appearance -> its
    INSTA's cross-set scores, PAV's cross-set scores), when the collection has one."""
    lines = _header(cfg, "Protocol b: one INSTA per appearance against one PAV for all")
    names = list(insta)
    own = {name: r.scores["per_appearance"][name] for name, r in insta.items()}
    lines += _versus(own, pav.scores["per_appearance"], names)
    if cross is not None:
        insta_cross, pav_cross = cross
        lines += ["", "Each appearance in the held-out poses, expressions and cameras of the other videos (the "
                  "cross-appearance set, scored against the generator's truth):", ""]
        lines += _versus({n: insta_cross[n]["per_appearance"][n] for n in names}, pav_cross["per_appearance"], names)
    t_insta = [r.train for r in insta.values()]
    lines += ["", "Efficiency (INSTA: all per-appearance models together):", "",
              "| | models | train minutes | parameters | checkpoint MB |", "|---|---:|---:|---:|---:|",
              f"| INSTA per appearance | {len(insta)} | {sum(t['train_minutes'] for t in t_insta):.1f} | "
              f"{sum(t['parameters'] for t in t_insta) / 1e6:.2f} M | "
              f"{sum(t['checkpoint_mb'] for t in t_insta):.1f} |",
              f"| PAV | 1 | {pav.train['train_minutes']:.1f} | {pav.train['parameters'] / 1e6:.2f} M | "
              f"{pav.train['checkpoint_mb']:.1f} |",
              "", "Means are over appearances (FID: the mean of the per-appearance FIDs).", "",
              *_reasons([*insta.values(), pav])]
    return "\n".join(lines).rstrip()
