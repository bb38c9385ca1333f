"""Resample ablation from matched levels (Mini, Turner et al. 2023): replace a channel set's
activations on a frame with those of a frame from another level that shares a feature value
(e.g. the same cheese cell), or from a level that does not, and measure how much the action
distribution moves (total variation distance); the same for random channel sets of the same
size. If the channels carry the feature and little else the policy uses, matched donors
change little and unmatched ones much; random channels show what resampling any channels of
the layer costs.

Frames come from the agent's own play (:func:`interp.rollout.sample_frames`); donors always
come from another level. Per frame the donor of each kind is drawn at random (seeded). Effects
are means over levels (a level's frames averaged first) with bootstrap 95% intervals; the
differences are paired by frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from interp import hooks
from interp.ablate import activations, forward_conditions, layer_shape
from interp.causal.vectors import SteerError
from interp.envs import EnvSpec, get_variant
from interp.envs.labels import label_keys
from interp.models import preprocess
from interp.rollout import as_spec, check_agent_env, sample_frames
from interp.stats import bootstrap_mean
from interp.tables import fmt, md_table, write_csv

CONDITIONS = ("chosen, matched", "chosen, unmatched", "random, matched", "random, unmatched")


def donors(keys: np.ndarray, level: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, a random frame of another level with the same key (matched) and one with a
    different key (unmatched); -1 where there is none. ``keys``: (n, k) feature values."""
    rng = np.random.default_rng(seed)
    same = (keys[:, None] == keys[None]).all(-1)
    other_level = level[:, None] != level[None]
    out = []
    for pool in (same & other_level, ~same & other_level):
        pick = np.full(len(keys), -1)
        for i in range(len(keys)):
            js = np.flatnonzero(pool[i])
            if js.size:
                pick[i] = rng.choice(js)
        out.append(pick)
    return out[0], out[1]


@dataclass
class ResampleResult:
    """Total variation distance of the policy per condition and frame (4, n), the frames'
    level seeds, the channel sets and the matching feature."""

    spec: EnvSpec
    layer: str
    match: tuple[str, ...]
    channels: tuple[int, ...]
    random_sets: list[tuple[int, ...]]
    tv: np.ndarray
    level: np.ndarray
    frames_seen: int

    def _per_level(self, v: np.ndarray) -> np.ndarray:
        return np.array([v[self.level == s].mean() for s in np.unique(self.level)])

    def table(self) -> list[dict]:
        rows = []
        for name, v in zip(CONDITIONS, self.tv):
            m, lo, hi = bootstrap_mean(self._per_level(v))
            rows.append({"condition": name, "tv": m, "tv_lo": lo, "tv_hi": hi})
        for name, a, b in (("chosen: unmatched - matched", 1, 0),
                           ("random: unmatched - matched", 3, 2),
                           ("matched: chosen - random", 0, 2),
                           ("unmatched: chosen - random", 1, 3)):
            m, lo, hi = bootstrap_mean(self._per_level(self.tv[a] - self.tv[b]))
            rows.append({"condition": name, "tv": m, "tv_lo": lo, "tv_hi": hi})
        return rows

    def markdown(self) -> str:
        body = [(r["condition"], f"{100 * r['tv']:.2f}% [{100 * r['tv_lo']:.2f}, "
                 f"{100 * r['tv_hi']:.2f}]" + ("" if r["condition"] in CONDITIONS or
                                               r["tv_lo"] > 0 or r["tv_hi"] < 0 else " ~"))
                for r in self.table()]
        n_levels = len(np.unique(self.level))
        return (f"Resampling channels {list(self.channels)} of `{self.layer}` on "
                f"`{self.spec.variant}` from frames of other levels with the same "
                f"{' / '.join(self.match)} (matched) or a different one (unmatched); control: "
                f"{len(self.random_sets)} random sets of {len(self.channels)} channels. "
                f"{self.tv.shape[1]} frames with both kinds of donor (of {self.frames_seen}), "
                f"from {n_levels} levels. Mean total variation distance of the action "
                "distribution, level-bootstrap 95% CI (`~`: a difference whose interval "
                "contains 0).\n\n" + md_table(body, ["condition", "mean TV distance"]))

    def write(self, out: str | Path) -> list[Path]:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        md = out / "resample.md"
        md.write_text(f"# Resampling from matched levels: `{self.layer}`\n\n"
                      f"{self.markdown()}\n")
        return [write_csv(out / "resample.csv", self.table()), md,
                self.plot(out / "resample.png")]

    def plot(self, path: Path) -> Path:
        from interp.plots import pyplot, save_figure

        plt = pyplot()
        rows = self.table()[:4]
        fig, ax = plt.subplots(figsize=(6, 3.2))
        m = np.array([r["tv"] for r in rows]) * 100
        lo = np.array([r["tv_lo"] for r in rows]) * 100
        hi = np.array([r["tv_hi"] for r in rows]) * 100
        bars = ax.bar(range(4), m, color=["tab:blue", "tab:blue", "tab:orange", "tab:orange"])
        for bar, alpha in zip(bars, (0.45, 0.9, 0.45, 0.9)):  # light: matched donors
            bar.set_alpha(alpha)
        ax.errorbar(range(4), m, yerr=[m - lo, hi - m], fmt="none", ecolor="black", capsize=3)
        ax.set_xticks(range(4), [c.replace(", ", "\n") for c in CONDITIONS], fontsize=8)
        ax.set_ylabel("mean TV distance of the policy (%)")
        ax.set_title(f"Resampling {len(self.channels)} channels of {self.layer}\nfrom levels "
                     f"with the same {'/'.join(self.match)} (matched) or not (95% CI)",
                     fontsize=9)
        fig.tight_layout()
        return save_figure(fig, path)


@torch.no_grad()
def resample_matched(model: nn.Module, env: str | EnvSpec, layer: str, channels, *,
                     match: tuple[str, ...] = ("goal_x", "goal_y"), frames: int = 1024,
                     num_envs: int = 64, every: int = 10, random_sets: int = 8, seed: int = 0,
                     device: torch.device | str | None = None) -> ResampleResult:
    """Resample ``channels`` of ``layer`` from matched and unmatched levels on ``frames``
    frames of the agent's play (``num_envs`` envs, every ``every``-th step, env seed ``seed``);
    ``match``: the label keys whose values must agree for a matched donor."""
    spec = as_spec(env)
    check_agent_env(model, spec)
    device = torch.device(device or next(model.parameters()).device)
    shape = layer_shape(model, layer)
    channels = tuple(sorted({int(c) for c in channels}))
    if not channels or not all(0 <= c < shape[0] for c in channels) \
            or len(channels) >= shape[0]:
        raise SteerError(f"channels {list(channels)}: give some (not all) of 0-{shape[0] - 1}")
    valid = label_keys(get_variant(spec.variant).game)
    missing = [k for k in match if k not in valid]
    if missing or not match:
        raise SteerError(f"label(s) {', '.join(missing) or '(none)'} do not exist for "
                         f"{spec.variant!r}; choose --match from: {', '.join(valid)}")
    fr = sample_frames(model, spec, frames, num_envs=num_envs, every=every, seed=seed,
                       device=device)
    keys = np.stack([fr.labels[k] for k in match], 1).astype(float)
    level = np.asarray(fr.labels["level_seed"])
    matched, unmatched = donors(keys, level, seed)
    keep = (matched >= 0) & (unmatched >= 0)
    if keep.sum() < 2:
        raise SteerError(f"only {int(keep.sum())} frames have a donor from another level with "
                         f"the same {', '.join(match)}; play more levels (--frames, "
                         "--num-envs) or match on a coarser feature")
    acts = activations(model, layer, fr.obs, device, hx=fr.hx).to(device)
    rng = np.random.default_rng(seed + 1)
    rest = np.setdiff1d(np.arange(shape[0]), channels)
    sets = [tuple(sorted(rng.choice(rest, size=min(len(channels), len(rest)),
                                    replace=False).tolist())) for _ in range(random_sets)]
    # conditions: chosen (matched, unmatched), then each random set (matched, unmatched)
    masks = torch.zeros(2 + 2 * len(sets), shape[0], dtype=torch.bool, device=device)
    for g, chs in enumerate([channels] * 2 + [s for s in sets for _ in (0, 1)]):
        masks[g, list(chs)] = True
    idx = np.flatnonzero(keep)
    source = torch.as_tensor(np.stack([matched[idx], unmatched[idx]]), device=device)

    def patch_of(cond: torch.Tensor, frame: np.ndarray, t: int) -> hooks.HookFn:
        donor = source[cond % 2, torch.as_tensor(frame, device=device)]
        return hooks.replace(acts[donor], masks[cond])

    x, hx = preprocess(fr.obs[idx], device), None if fr.hx is None else fr.hx[idx].to(device)
    p = torch.softmax(model.step(x, hx)[0].double(), -1)
    q = torch.softmax(forward_conditions(model, layer, x, patch_of, len(masks), hx)[0].double(),
                      -1)
    tv = (0.5 * (q - p).abs().sum(-1)).cpu().numpy()  # (conditions, frames)
    summary = np.stack([tv[0], tv[1], tv[2::2].mean(0) if sets else np.full(len(idx), np.nan),
                        tv[3::2].mean(0) if sets else np.full(len(idx), np.nan)])
    return ResampleResult(spec, layer, tuple(match), channels, sets, summary, level[idx],
                          len(fr))
