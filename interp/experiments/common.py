"""Shared pieces of the experiments: per-step traces, per-episode grouping, CSV / markdown / PNG
output, and the check that a checkpoint was trained where an experiment expects."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from interp.errors import InterpError
from interp.tables import fmt, md_table, write_csv  # noqa: F401  (re-exported)
from interp.plots import pyplot as plt  # noqa: F401  (re-exported for the experiments)
from interp.plots import save_figure as save  # noqa: F401
from interp.rollout import Episodes, Step


class ExperimentError(InterpError, ValueError):
    """Bad experiment name, checkpoints or options; the message says what to do instead."""


class StepTrace:
    """``on_step`` collector for :func:`~interp.rollout.run_episodes`: per step, the row's
    group / env / episode / step, the critic's ``value``, the ``action`` and the label ``keys``.
    ``keep_obs(step) -> bool mask`` picks rows whose frames are kept too (``obs``, ``obs_at``)."""

    def __init__(self, keys: Sequence[str] = (),
                 keep_obs: Callable[[Step], np.ndarray] | None = None,
                 also: Callable[[Step], dict[str, np.ndarray]] | None = None):
        """``also(step) -> {name: (n,) array}`` adds computed per-step columns."""
        self.keys, self.keep_obs, self.also = tuple(keys), keep_obs, also
        self._parts: list[dict[str, np.ndarray]] = []
        self._obs: list[tuple[np.ndarray, np.ndarray]] = []

    def __call__(self, step: Step) -> None:
        part = {"group": step.group, "env": step.env, "episode": step.episode,
                "step": step.step, "value": step.value, "action": step.actions}
        part.update({k: step.labels[k] for k in self.keys})
        if self.also is not None:
            part.update(self.also(step))
        self._parts.append(part)
        if self.keep_obs is not None:
            keep = np.asarray(self.keep_obs(step), bool)
            if keep.any():
                ids = np.stack([step.group, step.env, step.episode, step.step], 1)[keep]
                self._obs.append((ids, step.obs[keep]))

    def arrays(self) -> dict[str, np.ndarray]:
        """Every column concatenated over steps, sorted by (group, env, episode, step)."""
        if not self._parts:
            raise ExperimentError("no steps were run: raise --episodes (or max_steps)")
        cols = {k: np.concatenate([p[k] for p in self._parts]) for k in self._parts[0]}
        order = np.lexsort((cols["step"], cols["episode"], cols["env"], cols["group"]))
        return {k: v[order] for k, v in cols.items()}

    def obs_of(self, group: int, env: int, episode: int) -> tuple[np.ndarray, np.ndarray]:
        """(steps, frames) kept for one episode, in step order."""
        steps, frames = [], []
        for ids, obs in self._obs:
            sel = (ids[:, 0] == group) & (ids[:, 1] == env) & (ids[:, 2] == episode)
            steps.append(ids[sel, 3])
            frames.append(obs[sel])
        if not steps:
            return np.zeros(0, int), np.zeros((0, 64, 64, 3), np.uint8)
        steps, frames = np.concatenate(steps), np.concatenate(frames)
        order = np.argsort(steps)
        return steps[order], frames[order]


def split_episodes(cols: dict[str, np.ndarray]) -> list[tuple[tuple[int, int, int], dict]]:
    """[((group, env, episode), {column: per-step array}), ...] from :meth:`StepTrace.arrays`."""
    key = np.stack([cols["group"], cols["env"], cols["episode"]], 1)
    starts = np.flatnonzero(np.r_[True, (np.diff(key, axis=0) != 0).any(1)])
    ends = np.r_[starts[1:], len(key)]
    return [(tuple(int(v) for v in key[s]), {k: v[s:e] for k, v in cols.items()})
            for s, e in zip(starts, ends)]


def episode_outcomes(ep: Episodes, group: int = 0) -> dict[str, np.ndarray]:
    """Per-episode metrics of one group, flattened over (env, episode), valid episodes only,
    plus ``env``, ``episode``, ``level_seed`` and ``truncated``."""
    valid = ep.valid[group]
    env, episode = np.nonzero(valid)
    out = {k: v[group][valid] for k, v in ep.metrics.items()}
    out.update(env=env, episode=episode, level_seed=ep.level_seed[group][valid],
               truncated=ep.truncated[group][valid])
    return out


# -- output -----------------------------------------------------------------------------------
def write_summary(out: Path, title: str, body: str) -> Path:
    path = Path(out) / "summary.md"
    path.write_text(f"# {title}\n\n{body.strip()}\n")
    return path


def errbars(ax, x, stats, **kw) -> None:
    """Points with 95% interval bars; ``stats``: (mean, lo, hi) triples."""
    m, lo, hi = (np.asarray(v, float) for v in zip(*stats)) if len(stats) else ([], [], [])
    ax.errorbar(x, m, yerr=[np.nan_to_num(m - lo), np.nan_to_num(hi - m)], capsize=3, **kw)


def truncation_note(k: int) -> str:
    return (f" {k} episode(s) were cut short by max_steps and count as they stood."
            if k else "")
