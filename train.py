"""`python train.py [data=...] [model=...] [trainer=...] [key=value ...]`: train one avatar for all appearances."""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import pav.training  # noqa: F401 - registers the config schema train.yaml builds on


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    pav.training.run(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
