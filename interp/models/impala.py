"""IMPALA-CNN actor-critic with every op a named, hookable module.

Parameter names match train-procgen-pytorch (Lee 2020, jbkjr, KarolisRam), so their checkpoints
load unchanged; ReLUs, pools, residual adds and flatten are modules (procgen-tools style), so
``interp.hooks`` and captum can reach every intermediate activation by dotted name.

A recurrent agent (train-procgen-pytorch's ``recurrent: True``) has a GRU between the embedder
and the heads; it takes the hidden state ``hx`` the caller carries between steps and zeroes
where an episode starts (:class:`interp.rollout.PolicyRunner` does both).
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
    """Architecture of an :class:`ImpalaAgent`; ``width`` scales channels 16/32/32, ``hidden``
    is the embedder's output size, ``gru_hidden`` the size of the GRU after it (0: none, a
    feed-forward agent)."""

    arch: str = "impala"
    width: int = 1
    num_actions: int = 15
    in_channels: int = 3
    hidden: int = 256
    gru_hidden: int = 0

    def __post_init__(self) -> None:
        if self.arch != "impala":
            raise ValueError(f"ModelConfig.arch must be 'impala', got {self.arch!r}")
        for name in ("width", "num_actions", "in_channels", "hidden", "gru_hidden"):
            value, low = getattr(self, name), int(name != "gru_hidden")
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                kind = "positive" if low else "non-negative"
                raise ValueError(f"ModelConfig.{name} must be a {kind} int, got {value!r}")

    @property
    def channels(self) -> tuple[int, int, int]:
        return 16 * self.width, 32 * self.width, 32 * self.width

    @property
    def recurrent(self) -> bool:
        return self.gru_hidden > 0

    def to_dict(self) -> dict[str, Any]:
        """Fields as a dict; ``gru_hidden`` only for recurrent agents, so a feed-forward
        config reads as it did before recurrent agents existed."""
        d = dataclasses.asdict(self)
        if not self.recurrent:
            del d["gru_hidden"]
        return d

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


class GRUStep(nn.GRU):
    """One step of a one-layer GRU: ``(x (N, in), h (N, hidden)) -> new h (N, hidden)``.

    An ``nn.GRU`` (parameters ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
    ``bias_hh_l0``, as train-procgen-pytorch saves them) whose output is one tensor, the new
    hidden state, so it can be hooked and patched like any layer.
    """

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x.unsqueeze(0), h.unsqueeze(0).contiguous())[0].squeeze(0)


class Recurrent(nn.Module):
    """train-procgen-pytorch's GRU after the embedder: ``state_in`` (an identity, hookable) is
    the hidden state carried in, already zeroed where an episode starts; ``gru`` outputs the
    new hidden state, which the heads read and the caller carries to the next step."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.state_in = nn.Identity()
        self.gru = GRUStep(input_size, hidden_size)

    def forward(self, x: torch.Tensor, hx: torch.Tensor) -> torch.Tensor:
        return self.gru(x, self.state_in(hx))


def _init(module: nn.Module, gain: float, orthogonal: bool) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            (nn.init.orthogonal_ if orthogonal else nn.init.xavier_uniform_)(m.weight, gain)
            nn.init.zeros_(m.bias)


class ImpalaAgent(nn.Module):
    """IMPALA actor-critic. ``forward(x)`` maps float NCHW in [0, 1] to ``(logits, value)``.

    Build with ``ImpalaAgent(ModelConfig(width=2))`` or, equivalently, ``ImpalaAgent(width=2)``.
    Init follows train-procgen-pytorch: embedder xavier-uniform (gain 1), fc_policy orthogonal
    (gain 0.01), fc_value orthogonal (gain 1), zero biases; the GRU keeps torch's init.
    A recurrent agent (``gru_hidden > 0``) also takes the hidden state: ``forward(x, hx)``,
    and :meth:`step` returns the new one. ``input`` is an identity on the observation, so that
    it is hooked, cached and patched like every layer (no parameters: state dicts of
    train-procgen-pytorch load unchanged).
    """

    def __init__(self, config: ModelConfig | None = None, **kwargs: Any):
        super().__init__()
        if config is not None and kwargs:
            raise TypeError("pass either a ModelConfig or keyword fields, not both")
        self.config = config if config is not None else ModelConfig(**kwargs)
        cfg = self.config
        self.input = nn.Identity()
        self.embedder = ImpalaEmbedder(cfg)
        self.gru = Recurrent(cfg.hidden, cfg.gru_hidden) if cfg.recurrent else None
        heads_in = cfg.gru_hidden if cfg.recurrent else cfg.hidden
        self.fc_policy = nn.Linear(heads_in, cfg.num_actions)
        self.fc_value = nn.Linear(heads_in, 1)
        _init(self.embedder, 1.0, orthogonal=False)
        _init(self.fc_policy, 0.01, orthogonal=True)
        _init(self.fc_value, 1.0, orthogonal=True)

    def forward(self, x: torch.Tensor, hx: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: float (N, C, 64, 64) in [0, 1]; ``hx``: a recurrent agent's hidden state
        (N, gru_hidden), None for zeros (an episode start). Returns logits (N, A) and
        value (N,)."""
        logits, value, _ = self.step(x, hx)
        return logits, value

    def step(self, x: torch.Tensor, hx: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`forward` that also returns the new hidden state (None if feed-forward)."""
        h = self.embedder(self.input(x))
        if self.gru is not None:
            h = self.gru(h, h.new_zeros(len(h), self.config.gru_hidden) if hx is None else hx)
        elif hx is not None:
            raise ValueError("a feed-forward agent takes no hidden state")
        return self.fc_policy(h), self.fc_value(h).squeeze(-1), h if self.gru is not None else None

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

