"""PNG plots of a protocol: validation PSNR against training steps and minutes per model, one bar chart per metric."""

from __future__ import annotations

from itertools import cycle
from pathlib import Path

from ..evaluate.results import LABELS


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_curves(results: dict, path: Path, x: str = "steps") -> Path | None:
    """Validation PSNR (the training log's val/psnr) against training steps or wall-clock minutes (x), one line per
    model; None without any point."""
    curves = {name: r.curve for name, r in results.items() if r.curve}
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for name, style in curve_styles(list(curves)).items():
        steps, minutes, values = zip(*curves[name], strict=True)
        ax.plot(minutes if x == "minutes" else steps, values, marker="o", markersize=3, label=name, **style)
    ax.set_xlabel("training minutes (wall clock)" if x == "minutes" else "training step")
    ax.set_ylabel("validation PSNR (dB, frames neither trained nor tested on)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


PAV_COLOURS = ["#dd8452", "#c44e52", "#8c613c", "#da8bc3"]  # warm: the unified models
OTHER_COLOURS = ["#4c72b0", "#55a868", "#8172b3", "#64b5cd", "#937860", "#8c8c8c", "#ccb974"]  # cool: baselines


def curve_styles(names: list[str]) -> dict[str, dict]:
    """A line style per model, none shared: pav models warm and solid, per-appearance baselines cool and dashed,
    a summed curve black (a default colour cycle gave pav and one INSTA the same orange)."""
    styles, warm, cool = {}, cycle(PAV_COLOURS), cycle(OTHER_COLOURS)
    for i, name in enumerate(names):
        if name.startswith("pav"):
            styles[name] = {"color": next(warm), "linewidth": 2.0, "linestyle": "-"}
        elif "summed" in name:
            styles[name] = {"color": "black", "linewidth": 2.0, "linestyle": "-."}
        else:
            styles[name] = {"color": next(cool), "linewidth": 1.0, "linestyle": ("--", ":")[i % 2]}
    return styles


def plot_bars(values: dict[str, dict[str, float | str]], folder: Path, protocol: str) -> list[Path]:
    """One bar chart per metric whose values are all numbers: <folder>/<protocol>_<metric>.png."""
    plt = _pyplot()
    paths = []
    for metric, bars in values.items():
        if not bars or any(isinstance(v, str) for v in bars.values()):
            continue  # unavailable somewhere: the markdown says why, no chart pretends otherwise
        fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(bars) + 1.5), 3.6), dpi=100)
        labels = list(bars)
        colours = ["#dd8452" if k.split("\n")[-1].startswith("pav") else "#4c72b0" for k in labels]  # PAV orange
        ax.bar(range(len(bars)), [bars[k] for k in labels], color=colours)
        ax.set_xticks(range(len(bars)), labels, fontsize=7)
        ax.set_ylabel(LABELS[metric])
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path = folder / f"{protocol}_{metric}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
