"""Synthetic recordings with a planted feature, for tests and benchmarks.

Activations are Gaussian noise; in every conv layer listed in ``planted`` the feature (a
standardized binary or continuous label ``target``) is added to a few channels at one
position: ``x[:, c, py, px] += signal * target``. Everything else is pure noise, so a probe
should find exactly those channels and that position, and nothing on ``noise_label``.
"""

from __future__ import annotations

import numpy as np

from probes.data import ArrayRecording

SHAPES = {"embedder.block1.res2.resadd": (16, 32, 32), "embedder.block2.res2.resadd": (32, 16, 16),
          "embedder.block3.res2.resadd": (32, 8, 8), "embedder.relufc": (256,)}


def planted_recording(levels: int = 60, steps: int = 40, shapes: dict | None = None,
                      planted: tuple[str, ...] = ("embedder.block2.res2.resadd",),
                      channels: tuple[int, ...] = (3, 7), position: tuple[int, int] = (5, 9),
                      signal: float = 1.0, obs: bool = True, seed: int = 0) -> ArrayRecording:
    """``levels`` levels of ``steps`` rows. Labels: ``level_seed``, ``target`` (binary, on in
    about 40% of rows; planted, standardized), ``target_value`` (continuous; target = value >
    0.25), ``noise_label`` and ``noise_value`` (binary and continuous, independent of
    everything), ``constant`` (all 1)."""
    rng = np.random.default_rng(seed)
    shapes = dict(SHAPES if shapes is None else shapes)
    n = levels * steps
    level = np.repeat(np.arange(levels) * 7 + 1000, steps)
    value = rng.normal(size=n)
    binary = (value > 0.25).astype(np.float64)
    z = (binary - binary.mean()) / binary.std()
    acts = {}
    for name, shape in shapes.items():
        x = rng.standard_normal((n, *shape), dtype=np.float32)
        if name in planted:
            py, px = position
            for c in channels:
                x[:, c, py, px] += signal * z
        acts[name] = x
    labels = {"level_seed": level, "target": binary, "target_value": value,
              "noise_label": (rng.random(n) < 0.5).astype(np.float64),
              "noise_value": rng.normal(size=n), "constant": np.ones(n)}
    frames = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8) if obs else None
    return ArrayRecording(acts, labels, frames, {"width": 1} if obs else None, None)
