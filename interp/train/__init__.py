"""PPO training of IMPALA agents on Procgen variants (settings of the goal-misgeneralization
papers), with exact resume and periodic evaluation on test variants."""

from interp.train.config import ConfigError, PPOConfig, RunConfig, TrainConfig, load_config
from interp.train.trainer import Trainer, train

__all__ = ["ConfigError", "PPOConfig", "RunConfig", "TrainConfig", "Trainer", "load_config",
           "train"]
