"""The training run's typed config: every key of train.yaml is checked against these dataclasses at start."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from ..data.datamodule import DataConfig
from ..fields.avatar import ModelConfig
from ..render.renderer import RenderConfig
from .losses import LossConfig
from .system import OptimConfig

LOGGERS = ("wandb", "csv", "none")


@dataclass
class TrainerConfig:
    """Keys passed to lightning.Trainer (besides `name`, the preset's name)."""

    name: str = "cpu"
    accelerator: str = "cpu"
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: Any = "32-true"
    max_steps: int = 2000
    max_time: Any = None
    val_check_interval: Any = 500
    check_val_every_n_epoch: Any = None
    log_every_n_steps: int = 10
    limit_val_batches: Any = None
    num_sanity_val_steps: int = 0
    enable_progress_bar: bool = True
    gradient_clip_val: Any = None
    deterministic: Any = None


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 0
    logger: str = "wandb"
    checkpoint_every: int = 200
    require_cuda_ops: bool = True  # a GPU run refuses to start when pav._C has no CUDA kernels (false: host copies)


REACHES = ("mattes", "fixed")  # model.reach: see pav/data/reach.py

# Hydra composes train.yaml onto this schema: every key of every dataclass can be overridden on the
# command line, and a key that is not in the schema fails while composing.
ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def typed_config(cfg: DictConfig | dict) -> TrainConfig:
    """Checks every key and type against TrainConfig; raises at once on a mistyped or unknown key."""
    plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True)) if isinstance(cfg, DictConfig) else cfg
    merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), plain)  # plain keys: an extra one raises
    if OmegaConf.is_missing(merged.data, "root"):
        raise ValueError(f"data.root is required for data={merged.data.name} (data.root=DIR)")
    typed: TrainConfig = OmegaConf.to_object(merged)
    if typed.logger not in LOGGERS:
        raise ValueError(f"logger must be one of {LOGGERS}, got {typed.logger!r}")
    if typed.model.reach not in REACHES:
        raise ValueError(f"model.reach must be one of {REACHES}, got {typed.model.reach!r}")
    if typed.data.root in ("???", "", None):
        raise ValueError(f"data.root is required for data={typed.data.name} (data.root=DIR)")
    return typed
