"""`python -m pav.train [data=...] [model=...] [trainer=...] [key=value ...]`: train one avatar for all appearances.

Hydra composes configs/train.yaml (at the repository root) onto `pav.train.config.TrainConfig`.
"""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from . import config as _config  # noqa: F401 - registers the schema train.yaml builds on
from .run import run

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> None:
    run(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
