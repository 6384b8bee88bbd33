"""The summary table printed at the end of `python -m pav.prepare`."""

from __future__ import annotations

from typing import Any

COLUMNS = ("decoded", "sampled", "blurred", "no_face", "no_landmarks", "kept")


def format_summary(summary: dict[str, Any]) -> str:
    apps, failed = summary["appearances"], summary["failed"]
    width = max([len("appearance"), *(len(n) for n in apps)])
    lines = [f"prepared {len(apps)} appearance(s) at {summary['size']}px into the collection "
             f"(up to {summary['frames_per_video']} frames each)"]
    if apps:
        lines.append(f"  {'appearance':<{width}}  " + "  ".join(f"{c:>12}" for c in COLUMNS) + "  source")
        for name, s in apps.items():
            lines.append(f"  {name:<{width}}  " + "  ".join(f"{s.get(c, 0):>12}" for c in COLUMNS)
                         + f"  {s['source']}")
        lines.append("  unknown pixels (mean share of a frame): "
                     + ", ".join(f"{n} {100 * s.get('unknown_outside_frame', 0):.0f}% outside the source frame + "
                                 f"{100 * s.get('unknown_torso', 0):.0f}% torso" for n, s in apps.items()))
    if failed:
        lines.append(f"failed ({len(failed)}):")
        lines += [f"  - {f['file']}: {f['error']}" for f in failed]
    return "\n".join(lines)


def print_summary(summary: dict[str, Any]) -> None:
    print(format_summary(summary), flush=True)
