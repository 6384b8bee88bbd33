"""Train the four model variants with one budget and print their held-out table (the paper's Table 1 layout).

`python bench/variants.py [out=runs/variants] [key=value ...]`: every other key=value goes to each
`python train.py` run unchanged (e.g. trainer.max_steps=600 data.root=DIR). Runs resume like any training run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

VARIANTS = ("insta", "pav_glo", "pav_no_offset", "pav")
REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> None:
    out = Path("runs/variants")
    overrides = []
    for arg in argv:
        if arg.startswith("out="):
            out = Path(arg[4:])
        else:
            overrides.append(arg)
    for model in VARIANTS:
        cmd = [sys.executable, str(REPO / "train.py"), f"model={model}", f"hydra.run.dir={out / model}", *overrides]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    rows = {m: json.loads((out / m / "metrics.json").read_text()) for m in VARIANTS}
    names = list(rows["pav"]["per_appearance"])
    print(f"\nheld-out PSNR / SSIM on white, {rows['pav']['steps']} steps each ({' '.join(overrides) or 'defaults'})\n")
    print("| model | " + " | ".join(names) + " | mean PSNR | mean SSIM | train min | parameters |")
    print("|---" * (len(names) + 5) + "|")
    for m, r in rows.items():
        cells = [f"{r['per_appearance'][n]['psnr']:.2f}" for n in names]
        print(f"| {m} | " + " | ".join(cells) + f" | {r['mean']['psnr']:.2f} | {r['mean']['ssim']:.4f} | "
              f"{r['train_minutes']:.1f} | {r['parameters'] / 1e6:.2f} M |")


if __name__ == "__main__":
    main(sys.argv[1:])
