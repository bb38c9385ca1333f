"""What a probe reads from a layer: flattened feature maps reduced to a bounded width, or
channels pooled over space.

- ``flat``: a conv map (C, H, W) is average-pooled to a g x g grid, g the largest divisor of H
  with ``C * g * g <= max_dim`` (at least 1), then flattened; a vector layer wider than
  ``max_dim`` is mapped to ``max_dim`` dims by a fixed Gaussian random projection.
- ``mean`` / ``max``: a conv map is pooled over H, W to its C channels; ``meanmax``: both
  (2C inputs: all means, then all maxima). Channel rankings read ``meanmax``.
Vectors of at most ``max_dim`` units are always used as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

POOLS = ("flat", "mean", "max", "meanmax")
PIXEL_GRID = 16  # raw-pixel baseline: 64x64x3 frames average-pooled to 16x16x3 = 768 values


@dataclass(frozen=True)
class View:
    """A fixed map from a batch of one layer's activations (B, *shape) to probe inputs (B, D)."""

    shape: tuple[int, ...]
    pool: str
    max_dim: int
    grid: int = 0            # flat conv maps: output grid side

    @classmethod
    def make(cls, shape: tuple[int, ...], pool: str, max_dim: int) -> View:
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        grid = 0
        if len(shape) == 3 and pool == "flat":
            c, h, _ = shape
            grid = max([g for g in range(1, h + 1) if h % g == 0 and c * g * g <= max_dim],
                       default=1)
        return cls(tuple(shape), pool, max_dim, grid)

    @property
    def dim(self) -> int:
        if len(self.shape) == 3:
            c = self.shape[0]
            return {"flat": c * self.grid ** 2, "meanmax": 2 * c}.get(self.pool, c)
        return min(int(np.prod(self.shape)), self.max_dim)

    def describe(self) -> str:
        if len(self.shape) == 3:
            c, h, w = self.shape
            if self.pool == "flat":
                return f"{c}x{h}x{w} avg-pooled to {c}x{self.grid}x{self.grid}"
            return f"{c}x{h}x{w} {self.pool.replace('meanmax', 'mean and max')} over HxW"
        n = int(np.prod(self.shape))
        return f"{n} unit{'s' * (n > 1)}" + (
            f" randomly projected to {self.dim}" if n > self.dim else "")

    def pullback(self, w: np.ndarray) -> np.ndarray:
        """The weights ``w`` (dim,) of a linear readout of this view as weights on one raw
        activation (*shape): ``view(x) @ w == (x * pullback(w)).sum()`` per row. Raises
        ValueError for max pooling, which is not linear."""
        w = np.asarray(w, np.float64).reshape(self.dim)
        if len(self.shape) == 3:
            c, h, wd = self.shape
            if self.pool in ("max", "meanmax"):
                raise ValueError(f"a {self.pool} view is not linear in the activations")
            if self.pool == "mean":
                return np.broadcast_to(w[:, None, None] / (h * wd), self.shape).copy()
            g = self.grid
            per_cell = w.reshape(c, g, g) / ((h // g) * (wd // g))
            return np.repeat(np.repeat(per_cell, h // g, axis=1), wd // g, axis=2)
        n = int(np.prod(self.shape))
        full = _projection(n, self.dim) @ w if n > self.dim else w
        return full.reshape(self.shape)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32).reshape(len(x), *self.shape)
        if len(self.shape) == 3:
            if self.pool == "mean":
                return x.mean((2, 3))
            if self.pool == "max":
                return x.max((2, 3))
            if self.pool == "meanmax":
                return np.concatenate([x.mean((2, 3)), x.max((2, 3))], axis=1)
            return grid_pool(x, self.grid).reshape(len(x), -1)
        x = x.reshape(len(x), -1)
        if x.shape[1] > self.dim:
            x = x @ _projection(x.shape[1], self.dim)
        return x


def grid_pool(x: np.ndarray, g: int) -> np.ndarray:
    """Average-pool (B, C, H, W) to (B, C, g, g); g divides H and W."""
    b, c, h, w = x.shape
    return x.reshape(b, c, g, h // g, g, w // g).mean((3, 5))


@lru_cache(maxsize=8)
def _projection(n: int, d: int) -> np.ndarray:
    """The fixed (seed 0) Gaussian map of an n-unit vector layer to d dims."""
    return (np.random.default_rng(0).standard_normal((n, d)) / np.sqrt(d)).astype(np.float32)


def pixels(obs: np.ndarray) -> np.ndarray:
    """uint8 frames (B, 64, 64, 3) -> (B, 768): the raw-pixel baseline's input."""
    x = np.asarray(obs, dtype=np.float32).transpose(0, 3, 1, 2) / 255
    return grid_pool(x, PIXEL_GRID).reshape(len(x), -1)
