"""Keys and Chests of Langosco et al. (2022), Sec. 3.3 / Fig. 5: does an agent trained with
twice as many chests as keys collect keys rather than open chests when keys are plentiful?

The agent plays its training env (from its checkpoint; the ``keys-chests`` preset for a
checkpoint that names none) and the *test* env, its mirror with the keys and chests options
swapped (:func:`~interp.envs.keys_chests.mirror_options`: twice as many keys as chests). Both
run on the same env seed, so the k-th episode of env i has the same level seed, maze and start
in both. Per episode, from the labels of every frame (one key or one chest at most per step):

* *completed*: every chest that could be opened was (``min(keys, chests)``): the level's end;
* *all keys first*: completed, and every key of the level was collected before the last chest
  was opened (the paper's finding at test time; on training levels every completed episode
  does, as all keys are needed);
* *extra keys*: keys collected beyond the ``min(keys, chests)`` that could be used (after the
  last useful one; 0 on training levels by the rules);
* *steps wasted*: episode length minus the fewest steps that complete the level
  (:func:`~interp.envs.keys_chests.shortest_solution`, exact).

The three measures are over completed episodes (n beside each); the completion rate is over
all. Rates with Wilson 95% intervals, means with bootstrap 95% intervals.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from interp.checkpoint import LoadedAgent
from interp.envs import EnvSpec, get_variant
from interp.envs.keys_chests import GAME, move_agents, path_length, shortest_solution
from interp.envs.keys_chests import mirror_options
from interp.envs.geometry import to_pixels
from interp.rollout import Step, StepTrace, run_episodes, split_episodes
from interp.stats import bootstrap_mean, rate

from .common import (ExperimentError, fmt, md_table, plt, save, truncation_note, write_csv,
                     write_summary)

TRACE_KEYS = ("keys_collected", "chests_opened", "keys_held", "num_keys", "num_chests",
              "agent_cell_x", "agent_cell_y")
PRESETS = ("test", "train")


def training_env(agent: LoadedAgent, name: str = "agent") -> EnvSpec:
    """The checkpoint's env spec; another game, or none (a file trained elsewhere), is an
    error."""
    d = agent.manifest.get("env_spec")
    if not d:
        raise ExperimentError(f"{name}: keys-chests plays the agent's training preset, which its "
                              "checkpoint does not say (a file trained elsewhere); import it "
                              "once: interp agents import CKPT --env keys-chests "
                              "--distribution-mode easy|hard --out agent.pt")
    spec = EnvSpec.from_dict(d)
    if get_variant(spec.variant).game != GAME:
        raise ExperimentError(f"{name}: keys-chests needs an agent trained on keys-chests (its "
                              f"env spec says {spec.variant!r})")
    return spec


def preset_envs(train: EnvSpec) -> dict[str, EnvSpec]:
    """{"test": the mirror of ``train``, "train": ``train``}, both on the full level
    distribution (num_levels 0)."""
    opts = train.resolved_options()
    return {"test": EnvSpec(train.variant, train.distribution_mode,
                            options=mirror_options(opts)),
            "train": EnvSpec(train.variant, train.distribution_mode, options=opts)}


def episode_measures(cols: dict[str, np.ndarray], completed: bool, length: int,
                     shortest: int | None) -> dict:
    """The measures of one episode from its per-step labels (``TRACE_KEYS``, the frames before
    each step), whether it completed, its length and its shortest solution (None: unknown).
    The last step of a completed episode opens the last useful chest and collects nothing."""
    nk, nc = int(cols["num_keys"][0]), int(cols["num_chests"][0])
    useful = min(nk, nc)
    keys = int(cols["keys_collected"][-1])
    nan = math.nan
    return {"num_keys": nk, "num_chests": nc, "completed": bool(completed),
            "keys_collected": keys,
            "chests_opened": useful if completed else int(cols["chests_opened"][-1]),
            "all_keys_first": float(keys == nk) if completed else nan,
            "extra_keys": float(keys - useful) if completed else nan,
            "steps": int(length), "shortest": nan if shortest is None else shortest,
            "steps_wasted": float(length - shortest) if completed and shortest is not None
            else nan}


class _Collector:
    """``on_step``: the trace, and per episode its start state and shortest solution."""

    def __init__(self):
        self.trace = StepTrace(TRACE_KEYS + ("level_seed",), keep_obs=lambda s: s.step == 0)
        self.start: dict[tuple[int, int], object] = {}
        self.shortest: dict[tuple[int, int], int | None] = {}

    def __call__(self, step: Step) -> None:
        self.trace(step)
        for j in np.flatnonzero((step.step == 0) & (step.group == 0)):
            state = step.state_of(int(step.rows[j]))
            plan = shortest_solution(state)
            key = (int(step.env[j]), int(step.episode[j]))
            self.start[key] = state
            self.shortest[key] = None if plan is None else path_length(state, plan)


@torch.no_grad()
def keys_chests(model: nn.Module, train: EnvSpec, out: str | Path, *, episodes: int = 128,
                num_envs: int = 32, seed: int = 0, max_steps: int | None = None,
                device: str | None = None) -> list[Path]:
    """Run the experiment; write ``keys-chests-episodes.csv``, ``keys-chests.csv``,
    ``keys-chests.png`` (the measures, test beside train), ``keys-chests-trajectory.png``
    (an example test episode) and ``summary.md`` to ``out``."""
    envs = preset_envs(train)  # bad options fail here, before any work
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    eps, runs, cut = [], {}, 0
    for preset, spec in envs.items():
        col = _Collector()
        ep = run_episodes(model, spec, episodes=episodes, num_envs=num_envs, seed=seed,
                          max_steps=max_steps, on_step=col, step_labels=True, device=device,
                          progress=f"{preset} episodes")
        cut += int(ep.truncated.sum())
        traced = {(env, k): e for (g, env, k), e in split_episodes(col.trace.arrays())}
        for env, k in zip(*(v.tolist() for v in np.nonzero(ep.valid[0]))):
            if (env, k) not in traced:  # cut by max_steps before its first step
                continue
            row = {"preset": preset, "env": int(env), "episode": int(k),
                   "level_seed": int(ep.level_seed[0, env, k]),
                   "return": float(ep.metrics["return"][0, env, k]),
                   "truncated": bool(ep.truncated[0, env, k]),
                   **episode_measures(traced[env, k], bool(ep.metrics["success"][0, env, k]),
                                      int(ep.metrics["length"][0, env, k]),
                                      col.shortest.get((env, k)))}
            eps.append(row)
        runs[preset] = (col, traced)
    rows = [_summarise(preset, [e for e in eps if e["preset"] == preset], seed)
            for preset in PRESETS]
    paths = [write_csv(out / "keys-chests-episodes.csv", eps),
             write_csv(out / "keys-chests.csv", rows),
             _plot_measures(rows, out / "keys-chests.png"),
             _plot_trajectory(eps, *runs["test"], out / "keys-chests-trajectory.png")]
    counts = {p: _counts(envs[p]) for p in PRESETS}
    table = md_table([(r["preset"], counts[r["preset"]], r["n"],
                       fmt(r["completed"], r["completed_lo"], r["completed_hi"], pct=True),
                       r["n_completed"],
                       fmt(r["all_keys_first"], r["all_keys_first_lo"], r["all_keys_first_hi"],
                           pct=True),
                       fmt(r["extra_keys"], r["extra_keys_lo"], r["extra_keys_hi"]),
                       fmt(r["steps_wasted"], r["steps_wasted_lo"], r["steps_wasted_hi"]),
                       fmt(r["steps"], r["steps_lo"], r["steps_hi"]),
                       fmt(r["shortest"], r["shortest_lo"], r["shortest_hi"])) for r in rows],
                     ["preset", "keys / chests", "n", "completed", "n completed",
                      "all keys before the last chest", "extra keys", "steps wasted",
                      "steps", "shortest"])
    per_env = -(-episodes // min(num_envs, episodes))
    paths.append(write_summary(out, "Keys and Chests: keys or chests?", f"""
Training env `{train.variant}` ({train.distribution_mode}, options {train.resolved_options()});
test env: the same with keys and chests swapped ({envs['test'].resolved_options()}). Per preset
the first {per_env} episode(s) of each of {min(num_envs, episodes)} envs (env seed {seed}, all
levels), {len(eps)} episodes in all; the k-th episode of an env has the same level seed, maze
and start in both presets. *completed*: every chest that could be opened was (the level's end).
Over completed episodes: *all keys before the last chest*; *extra keys*: keys collected beyond
min(keys, chests), the number that can be used; *steps wasted*: steps beyond the fewest that
complete the level (exact search). On the training preset the first two are fixed by the rules
(every key is needed): 100% and 0. Rates with Wilson 95% CIs, means with bootstrap 95%
CIs.{truncation_note(cut)}

{table}

![measures](keys-chests.png)

![example test episode](keys-chests-trajectory.png)
"""))
    return paths


def _counts(spec: EnvSpec) -> str:
    o = spec.resolved_options()
    return f"{o['keys']} / {o['chests']}".replace("'", "")


def _summarise(preset: str, eps: list[dict], seed: int) -> dict:
    done = [e for e in eps if e["completed"]]
    row = {"preset": preset, "n": len(eps), "n_completed": len(done)}
    row["completed"], row["completed_lo"], row["completed_hi"] = rate(
        [e["completed"] for e in eps])
    row["all_keys_first"], row["all_keys_first_lo"], row["all_keys_first_hi"] = rate(
        [e["all_keys_first"] for e in done])
    for key in ("extra_keys", "steps_wasted", "steps", "shortest"):
        row[key], row[f"{key}_lo"], row[f"{key}_hi"] = bootstrap_mean(
            [e[key] for e in done], seed=seed)
    return row


def _plot_measures(rows: list[dict], path: Path) -> Path:
    p = plt()
    fig, axes = p.subplots(1, 4, figsize=(12, 3.2))
    panels = (("completed", "completed (all episodes)", True),
              ("all_keys_first", "all keys before the last chest", True),
              ("extra_keys", "extra keys collected", False),
              ("steps_wasted", "steps wasted", False))
    x = np.arange(len(rows))
    for ax, (key, title, is_rate) in zip(axes, panels):
        m, lo, hi = (np.array([r[k] for r in rows], float)
                     for k in (key, f"{key}_lo", f"{key}_hi"))
        ax.bar(x, np.nan_to_num(m), color=["tab:red", "tab:blue"][:len(rows)], alpha=0.7)
        ax.errorbar(x, m, yerr=[np.nan_to_num(m - lo), np.nan_to_num(hi - m)], fmt="none",
                    ecolor="black", capsize=4)
        ax.set_xticks(x, [f"{r['preset']}\n(n={r['n_completed'] if key != 'completed' else r['n']})"
                          for r in rows])
        ax.set_title(title, fontsize=10)
        if is_rate:
            ax.set_ylim(0, 1.02)
    fig.suptitle("Keys and Chests (Langosco et al. Sec. 3.3): test preset (2x keys) vs "
                 "training preset (2x chests); completed episodes, 95% CIs", fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def _example(eps: list[dict]) -> dict | None:
    """The test episode to draw: the first completed one with extra keys, else the first
    completed, else the first."""
    test = [e for e in eps if e["preset"] == "test"]
    for pick in (lambda e: e["completed"] and e["extra_keys"] > 0, lambda e: e["completed"],
                 lambda e: True):
        found = [e for e in test if pick(e)]
        if found:
            return found[0]
    return None


def _plot_trajectory(eps: list[dict], col: _Collector, traced: dict, path: Path) -> Path:
    """The example episode's first frame with the agent's path (colour = time) and the keys
    collected (K1, K2, ...) and chests opened (C1, ...) in order; beside it the counts."""
    from matplotlib.collections import LineCollection

    p = plt()
    fig, (ax, ax2) = p.subplots(1, 2, figsize=(10, 4.6), gridspec_kw={"width_ratios": [1, 1.2]})
    e = _example(eps)
    if e is None or (e["env"], e["episode"]) not in col.start:
        ax.set_axis_off()
        ax2.text(0.5, 0.5, "no test episode to show", ha="center")
        return save(fig, path)
    key = (e["env"], e["episode"])
    cols, state = traced[key], col.start[key]
    cells = np.stack([cols["agent_cell_x"], cols["agent_cell_y"]], 1)
    if e["completed"]:  # the last step moved onto the last chest
        last = move_agents(state.grid[None], cells[-1:], cols["action"][-1:])
        cells = np.concatenate([cells, last])
    px = np.array([to_pixels(state, x + 0.5, y + 0.5) for x, y in cells])
    _, frames = col.trace.obs_of(0, *key)
    ax.imshow(frames[0])
    segs = np.stack([px[:-1], px[1:]], 1)
    lines = LineCollection(segs, cmap="plasma", lw=2, alpha=0.9)
    lines.set_array(np.arange(len(segs)))
    ax.add_collection(lines)
    ax.plot(*px[0], "o", ms=9, mfc="none", mec="white", mew=1.5)
    ax.annotate("start", px[0], color="white", fontsize=8, xytext=(6, -10),
                textcoords="offset points")
    got = np.diff(np.r_[cols["keys_collected"], e["keys_collected"]]) > 0
    opened = np.diff(np.r_[cols["chests_opened"], e["chests_opened"]]) > 0
    for flags, prefix, colour in ((got, "K", "lime"), (opened, "C", "cyan")):
        for n, t in enumerate(np.flatnonzero(flags)):
            x, y = px[t + 1]
            ax.annotate(f"{prefix}{n + 1}", (x, y), color=colour, fontsize=9, weight="bold",
                        xytext=(5, 4), textcoords="offset points")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"level {e['level_seed']}: {e['num_keys']} key(s), {e['num_chests']} chest(s)",
                 fontsize=9)
    steps = np.arange(len(cols["keys_held"]) + 1)
    for name, series, colour, style in (
            ("keys collected", np.r_[cols["keys_collected"], e["keys_collected"]], "tab:green",
             "-"),
            ("keys held", np.r_[cols["keys_held"], e["keys_collected"] - e["chests_opened"]],
             "tab:olive", ":"),
            ("chests opened", np.r_[cols["chests_opened"], e["chests_opened"]], "tab:blue",
             "-")):
        ax2.step(steps, series, where="post", label=name, color=colour, ls=style, lw=2)
    ax2.axhline(min(e["num_keys"], e["num_chests"]), color="grey", ls="--", lw=0.8,
                label="keys that can be used")
    ax2.set_xlabel("step")
    ax2.legend(fontsize=8, loc="upper left")
    status = (f"completed in {e['steps']} steps (shortest {e['shortest']:.0f}), "
              f"{e['extra_keys']:.0f} extra key(s)" if e["completed"]
              else f"not completed ({e['steps']} steps)")
    ax2.set_title(status, fontsize=9)
    fig.suptitle("Example test-preset episode (twice as many keys as chests): the agent's path, "
                 "K = key collected, C = chest opened, in order", fontsize=10)
    fig.tight_layout()
    return save(fig, path)
