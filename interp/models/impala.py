"""IMPALA-CNN actor-critic with every op a named, hookable module.

Parameter names match train-procgen-pytorch (Lee 2020, jbkjr, KarolisRam), so their checkpoints
load unchanged; ReLUs, pools, residual adds and flatten are modules (procgen-tools style), so
``interp.hooks`` and captum can reach every intermediate activation by dotted name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

OBS_SIZE = 64  # Procgen observations are 64x64; three stride-2 pools leave 8x8.


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of an :class:`ImpalaAgent`; ``width`` scales channels 16/32/32."""

    arch: str = "impala"
    width: int = 1
    num_actions: int = 15
    in_channels: int = 3
    hidden: int = 256

    def __post_init__(self) -> None:
        if self.arch != "impala":
            raise ValueError(f"ModelConfig.arch must be 'impala', got {self.arch!r}")
        for name in ("width", "num_actions", "in_channels", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")

    @property
    def channels(self) -> tuple[int, int, int]:
        return 16 * self.width, 32 * self.width, 32 * self.width

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig keys {unknown}; valid keys: {sorted(known)}")
        return cls(**d)


class Add(nn.Module):
    """``x + y`` as a module, so a residual sum has a hookable output."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


class ResidualBlock(nn.Module):
    """relu1 -> conv1 -> relu2 -> conv2, then resadd(input, .)."""

    def __init__(self, channels: int):
        super().__init__()
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.resadd = Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resadd(x, self.conv2(self.relu2(self.conv1(self.relu1(x)))))


class ImpalaBlock(nn.Module):
    """conv3x3 -> maxpool(3, 2, 1) -> res1 -> res2."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.res1 = ResidualBlock(out_channels)
        self.res2 = ResidualBlock(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res2(self.res1(self.maxpool(self.conv(x))))


class ImpalaEmbedder(nn.Module):
    """block1..3 -> relu3 -> flatten -> fc -> relufc."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        c1, c2, c3 = config.channels
        self.block1 = ImpalaBlock(config.in_channels, c1)
        self.block2 = ImpalaBlock(c1, c2)
        self.block3 = ImpalaBlock(c2, c3)
        self.relu3 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c3 * (OBS_SIZE // 8) ** 2, config.hidden)
        self.relufc = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(x)))
        return self.relufc(self.fc(self.flatten(self.relu3(x))))


def _init(module: nn.Module, gain: float, orthogonal: bool) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            (nn.init.orthogonal_ if orthogonal else nn.init.xavier_uniform_)(m.weight, gain)
            nn.init.zeros_(m.bias)


class ImpalaAgent(nn.Module):
    """IMPALA actor-critic. ``forward(x)`` maps float NCHW in [0, 1] to ``(logits, value)``.

    Build with ``ImpalaAgent(ModelConfig(width=2))`` or, equivalently, ``ImpalaAgent(width=2)``.
    Init follows train-procgen-pytorch: embedder xavier-uniform (gain 1), fc_policy orthogonal
    (gain 0.01), fc_value orthogonal (gain 1), zero biases.
    """

    def __init__(self, config: ModelConfig | None = None, **kwargs: Any):
        super().__init__()
        if config is not None and kwargs:
            raise TypeError("pass either a ModelConfig or keyword fields, not both")
        self.config = config if config is not None else ModelConfig(**kwargs)
        self.embedder = ImpalaEmbedder(self.config)
        self.fc_policy = nn.Linear(self.config.hidden, self.config.num_actions)
        self.fc_value = nn.Linear(self.config.hidden, 1)
        _init(self.embedder, 1.0, orthogonal=False)
        _init(self.fc_policy, 0.01, orthogonal=True)
        _init(self.fc_value, 1.0, orthogonal=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: float (N, C, 64, 64) in [0, 1]. Returns logits (N, A) and value (N,)."""
        h = self.embedder(x)
        return self.fc_policy(h), self.fc_value(h).squeeze(-1)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def preprocess(obs: np.ndarray | torch.Tensor, device: torch.device | str | None = None, *,
               memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """uint8 NHWC observations (N, 64, 64, 3) -> float32 NCHW in [0, 1] on ``device``.

    The uint8 tensor is moved first (4x less traffic) and converted on the device; ``device``
    defaults to where ``obs`` already is (CPU for numpy).
    """
    x = torch.as_tensor(obs)
    if x.dtype != torch.uint8 or x.ndim != 4:
        raise ValueError(f"expected uint8 observations of shape (N, H, W, C), got "
                         f"{x.dtype} {tuple(x.shape)}")
    x = x.to(device) if device is not None else x
    return x.permute(0, 3, 1, 2).float().div_(255).contiguous(memory_format=memory_format)

