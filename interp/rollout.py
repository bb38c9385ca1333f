"""Episodes on fixed levels with many conditions in one batch, and frame samples with labels.

:func:`run_episodes` steps ``groups`` copies of one VecEnv (same variant, same env seed: env
``i`` of every group plays the same level sequence, and a level gets the same edit) and runs
all groups' observations through one forward pass. ``policy(x, rows, hx)`` learns which flat
rows (``group * num_envs + env``) ``x`` holds, so each group can run a different intervention.
Every loop runs the agent through a :class:`PolicyRunner`, which carries a recurrent agent's
hidden state per env and zeroes it where an episode starts.

Every episode loop (evaluation, ``interp record``, the experiments, ablations, steering, the
scripted agents of ``interp goals``) is a :class:`Rollout`, the one engine: per-row quotas,
keyed actions, counters a caller can save and restore, callbacks before acting, after acting
and after the envs stepped.

Protocol as ``interp record`` / ``evaluate_policy``: every env contributes its first ``k``
episodes (never "the first N to end", which over-samples short episodes), and actions are
inverse-CDF draws keyed by ``(seed, env, episode, step)`` (:func:`sample_actions`):
episode ``k`` of env ``i`` meets the same random numbers in every group (common random numbers).
``on_step`` sees every step before it is taken (frames, values, actions, labels): per-step traces
such as the critic's value along an episode come from it (:class:`StepTrace`, grouped per
episode by :func:`split_episodes`), not from another episode loop; :func:`episode_outcomes`
flattens one group's per-episode metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from interp.envs import EnvSpec, GameState, make_env
from interp.envs.base import NOOP, NUM_ACTIONS, check_env_count
from interp.errors import InterpError
from interp.models import preprocess
from interp.progress import Progress

GOAL_REWARD = 10.0  # reward of the goal (coin, cheese, gem) in the games used here
# policy(x, rows, hx) -> (logits, value, new hx); hx is None for a feed-forward agent
Policy = Callable[[torch.Tensor, "np.ndarray | None", "torch.Tensor | None"],
                  tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None"]]


class RolloutError(InterpError, ValueError):
    """A rollout that cannot give what was asked (e.g. no steps were run)."""


class IncompatibleAgentError(InterpError, ValueError):
    """An agent whose inputs or actions do not fit the environment."""


def as_spec(env: str | EnvSpec) -> EnvSpec:
    return env if isinstance(env, EnvSpec) else EnvSpec(env)


def check_agent_env(model: nn.Module, spec: EnvSpec) -> None:
    """Raise :class:`IncompatibleAgentError` unless the agent takes RGB frames and at most
    Procgen's 15 actions (an agent with fewer, e.g. 9 movement-only actions, plays the first
    ones: its output k is Procgen action k)."""
    cfg = model.config
    if cfg.num_actions > NUM_ACTIONS or cfg.in_channels != 3:
        raise IncompatibleAgentError(
            f"agent has {cfg.num_actions} actions and {cfg.in_channels} input channels; "
            f"env {spec.variant!r} gives RGB frames (3 channels) and {NUM_ACTIONS} actions")


class PolicyRunner:
    """An agent playing ``rows`` vectorized envs: ``runner(x, rows) -> (logits, value)`` for
    the observations ``x`` of the env rows ``rows`` (None: all, in order).

    A recurrent agent's hidden state lives here, one row per env: each call feeds the rows'
    state in and keeps the new one, and :meth:`reset` zeroes it where an episode starts (the
    envs' ``first`` flags), as train-procgen-pytorch's masks do. ``policy(x, rows, hx) ->
    (logits, value, new hx)`` defaults to ``model.step``; interventions wrap it. A feed-forward
    agent has no state: a call is one ``policy`` call.
    """

    def __init__(self, model: nn.Module, rows: int, device: torch.device | str | None = None,
                 policy: Policy | None = None):
        cfg = model.config
        self.policy = policy or (lambda x, rows, hx: model.step(x, hx))
        self.hx = torch.zeros(rows, cfg.gru_hidden, device=device) if cfg.recurrent else None

    def __call__(self, x: torch.Tensor, rows: np.ndarray | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.hx is None:
            logits, value, _ = self.policy(x, rows, None)
            return logits, value
        idx = self._index(rows)
        logits, value, hx = self.policy(x, rows, self.hx[idx])
        self.hx[idx] = hx.to(self.hx.dtype)
        return logits, value

    def state(self, rows: np.ndarray | None = None) -> torch.Tensor | None:
        """A copy of the hidden state ``rows`` bring into their next step (None: feed-forward)."""
        return None if self.hx is None else self.hx[self._index(rows)].clone()

    def reset(self, first: np.ndarray) -> None:
        """Zero the hidden state of the rows whose episode starts now (bool per row)."""
        if self.hx is not None and first.any():
            self.hx[torch.as_tensor(first, device=self.hx.device)] = 0

    def _index(self, rows: np.ndarray | None) -> slice | torch.Tensor:
        return slice(None) if rows is None else torch.as_tensor(rows, device=self.hx.device)


_PHILOX_M = (np.uint64(0xD2E7470EE14C6C93), np.uint64(0xCA5A826395121157))
_PHILOX_W = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBB67AE8584CAA73B))


def _mulhilo(a: np.uint64, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) 64-bit halves of the 128-bit products ``a * b``."""
    m32, s32 = np.uint64(0xFFFFFFFF), np.uint64(32)
    a_lo, a_hi, b_lo, b_hi = a & m32, a >> s32, b & m32, b >> s32
    p1, p2 = a_lo * b_hi, a_hi * b_lo
    mid = ((a_lo * b_lo) >> s32) + (p1 & m32) + (p2 & m32)
    return a * b, a_hi * b_hi + (p1 >> s32) + (p2 >> s32) + (mid >> s32)


def philox_uniform(seed: int, env: np.ndarray, episode: np.ndarray,
                   step: np.ndarray) -> np.ndarray:
    """The first ``random()`` of ``Generator(Philox(key=seed, counter=[env, episode, step, 0]))``
    for every row at once (Philox4x64-10, as numpy implements it, vectorized)."""
    with np.errstate(over="ignore"):
        ctr = [np.asarray(v, np.uint64).ravel().copy() for v in (env, episode, step)]
        ctr.append(np.zeros_like(ctr[0]))
        carry = np.ones_like(ctr[0])  # numpy adds 1 to the counter before its first block
        for i in range(4):
            ctr[i] += carry
            carry = carry & (ctr[i] == 0)
        key = [np.uint64(seed & (2**64 - 1)), np.uint64((seed >> 64) & (2**64 - 1))]
        for r in range(10):
            if r:
                key = [key[0] + _PHILOX_W[0], key[1] + _PHILOX_W[1]]
            lo0, hi0 = _mulhilo(_PHILOX_M[0], ctr[0])
            lo1, hi1 = _mulhilo(_PHILOX_M[1], ctr[2])
            ctr = [hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0]
    return (ctr[0] >> np.uint64(11)) * (1.0 / 9007199254740992.0)


def sample_actions(probs: np.ndarray, seed: int, env: np.ndarray, episode: np.ndarray,
                   step: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws, one Philox stream per ``(seed, env, episode index, step)``: an
    episode's actions depend only on the agent, the env seed and ``seed``, whatever else runs
    in the batch (used by ``interp record``, ablations and evaluation alike)."""
    u = philox_uniform(seed, env, episode, step)
    cdf = np.cumsum(probs.astype(np.float64), axis=1)
    return np.minimum((cdf < (u * cdf[:, -1])[:, None]).sum(axis=1), probs.shape[1] - 1)


@dataclass
class Frames:
    """Observations with the action the agent took there; arrays share the first axis."""

    obs: np.ndarray  # uint8 (N, 64, 64, 3)
    actions: np.ndarray  # int (N,)
    env: np.ndarray  # int (N,)
    episode: np.ndarray  # int (N,): episode index within its env
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # label key -> (N,)
    # a recurrent agent's hidden state entering each frame (N, gru_hidden); None: feed-forward
    hx: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.obs)


@dataclass
class Step:
    """One vectorized step of :class:`Rollout` as its callbacks see it: the active rows
    (``group * num_envs + env``), the frames they act on, the critic's value, the chosen
    actions and (when the rollout reads labels) the ground-truth labels of those frames; after
    the envs stepped, what they gave back."""

    rows: np.ndarray  # int (n,)
    group: np.ndarray  # int (n,)
    env: np.ndarray  # int (n,)
    episode: np.ndarray  # int (n,): episode index within its env
    step: np.ndarray  # int (n,): steps taken so far in this episode
    obs: np.ndarray  # uint8 (n, 64, 64, 3)
    value: np.ndarray  # float (n,)
    actions: np.ndarray  # int (n,)
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # label key -> (n,)
    # state_of(row) -> GameState of a flat row's env now (e.g. to render a counterfactual frame)
    state_of: Callable[[int], GameState] | None = None
    # labels_of(rows) -> labels of some flat rows now, for a callback that keeps a few steps
    # (step_labels computes them for every row and step)
    labels_of: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None
    # a recurrent agent's hidden state entering this step (n, gru_hidden), to rerun a frame
    # with the agent's memory; None: feed-forward
    hx: torch.Tensor | None = None
    probs: np.ndarray | None = None  # float32 (n, actions): the policy's action probabilities
    # filled once the envs have stepped (``on_observe``): the reward, whether the episode ended
    # (the env reset), the episode's return so far (this step's reward included, before the
    # reset) and, when some episode ended, ``get_info()`` of every row (level_complete ...)
    reward: np.ndarray | None = None  # float (n,)
    done: np.ndarray | None = None  # bool (n,)
    returns: np.ndarray | None = None  # float (n,)
    infos: list[dict] | None = None


@dataclass
class Episodes:
    """Per-episode results of :func:`run_episodes`, arrays shaped (groups, envs, episodes).

    ``metrics``: ``return``, ``success`` (a reward >= 10: the goal; or the level completed:
    keys-chests, whose chests pay 1, completes when no more chests can be opened), ``length``,
    ``steps_to_goal`` (length of successful episodes, NaN otherwise) and, where they exist,
    ``reached_end`` (coinrun: agent centre in the last column before the end wall) and
    ``distractor`` (the agent entered the distractor's cell). ``valid`` is False for episodes
    that had not started when ``max_steps`` ran out; ``truncated`` marks those it cut short.
    """

    metrics: dict[str, np.ndarray]
    level_seed: np.ndarray
    truncated: np.ndarray
    valid: np.ndarray
    frames: Frames | None = None  # sample of group 0's observations (``keep_frames``)

    def take(self, groups: Sequence[int]) -> Episodes:
        """These groups, in this order (frames kept)."""
        g = list(groups)
        return Episodes({m: v[g] for m, v in self.metrics.items()}, self.level_seed[g],
                        self.truncated[g], self.valid[g], self.frames)

    @staticmethod
    def concat(parts: Sequence[Episodes]) -> Episodes:
        """The groups of several runs of the same envs, in order (frames of the first); the
        episode axes are padded to the longest with invalid episodes."""
        k = max(p.valid.shape[2] for p in parts)

        def cat(arrays: list[np.ndarray], fill) -> np.ndarray:
            return np.concatenate([np.pad(a, ((0, 0), (0, 0), (0, k - a.shape[2])),
                                          constant_values=fill) for a in arrays])
        return Episodes({m: cat([p.metrics[m] for p in parts], np.nan) for m in parts[0].metrics},
                        cat([p.level_seed for p in parts], -1),
                        cat([p.truncated for p in parts], False),
                        cat([p.valid for p in parts], False), parts[0].frames)


def episode_metrics(spec: EnvSpec, label_metrics: bool = True) -> list[str]:
    """Names of the per-episode metrics :func:`run_episodes` reports on ``spec``: ``return``,
    ``success``, ``length``, ``steps_to_goal``, and with ``label_metrics`` the flags of the
    spec's outcome families (``reached_end`` on coinrun, ``distractor`` with a distractor)."""
    return ["return", "success", "length", "steps_to_goal",
            *(name for name, _ in _flags(spec, label_metrics))]


def _flags(spec: EnvSpec, label_metrics: bool) -> list[tuple[str, Callable[[dict], np.ndarray]]]:
    """(name, flag(labels)) of the per-episode flags of the spec's outcome families."""
    return [f for family in spec.outcomes() for f in family.flags] if label_metrics else []


class _Bookkeeping:
    """Per-episode results, (rows, episodes) arrays that grow with the episodes that have run
    (doubling), never with the number asked for: memory follows the work done."""

    def __init__(self, names: list[str], rows: int, cap: int):
        self.names, self.rows, self.cap = names, rows, cap
        self.metrics = {n: np.full((rows, 0), np.nan) for n in names}
        self.level_seed = np.full((rows, 0), -1, np.int64)
        self.truncated, self.valid = np.zeros((rows, 0), bool), np.zeros((rows, 0), bool)

    def _grow(self, k: int) -> None:
        width = min(self.cap, max(2 * self.valid.shape[1], k + 1, 4))
        pad = width - self.valid.shape[1]

        def more(a: np.ndarray, fill) -> np.ndarray:
            return np.concatenate([a, np.full((self.rows, pad), fill, a.dtype)], 1)
        self.metrics = {n: more(v, np.nan) for n, v in self.metrics.items()}
        self.level_seed = more(self.level_seed, -1)
        self.truncated, self.valid = more(self.truncated, False), more(self.valid, False)

    def add(self, row: int, k: int, values: dict, level_seed: int, cut: bool) -> None:
        if k >= self.valid.shape[1]:
            self._grow(k)
        for n in self.names:
            self.metrics[n][row, k] = values[n]
        self.level_seed[row, k], self.valid[row, k], self.truncated[row, k] = level_seed, True, cut

    def episodes(self, groups: int, frames: Frames | None) -> Episodes:
        """Arrays shaped (groups, envs, the most episodes an env ran)."""
        k = int(self.valid.sum(1).max())
        shape = (groups, self.rows // groups, k)
        return Episodes({n: v[:, :k].reshape(shape) for n, v in self.metrics.items()},
                        self.level_seed[:, :k].reshape(shape),
                        self.truncated[:, :k].reshape(shape), self.valid[:, :k].reshape(shape),
                        frames)


class Rollout:
    """The episode loop every rollout drives: ``envs`` (VecEnvs of ``num_envs`` each, the
    groups; one forward pass for all) played by an agent until every row has played its
    ``quota`` of episodes (per row; ``math.inf``: no quota).

    The counters are public and are the whole loop state besides the envs and
    ``runner`` (a recurrent agent's memory): ``count`` (episodes finished per row), ``step``
    (steps into the current episode), ``ret`` (its return so far); a caller may set them
    before :meth:`run` to continue a rollout (``interp record --resume``). A row that met its
    quota stands still in them (its env plays NOOPs).

    Actions: ``greedy`` takes the most probable, otherwise inverse-CDF draws keyed by
    ``(action seed of the row's group, env, episode, step)`` (:func:`sample_actions`).
    ``labels``: read the labels of every active row each step (``Step.labels``), requested
    before the forward pass, so a remote env computes them beside it. ``choose(step) ->
    actions`` picks the actions instead (labels read by then); with ``model=None`` it is the
    whole agent (a scripted one: no forward pass, values 0, no ``probs``).
    """

    def __init__(self, model: nn.Module | None, envs: Sequence, quota, *, seed: int = 0,
                 action_seeds: Sequence[int] | None = None, policy: Policy | None = None,
                 greedy: bool = False, labels: bool = False,
                 choose: Callable[[Step], np.ndarray] | None = None,
                 device: torch.device | str | None = None,
                 memory_format: torch.memory_format = torch.contiguous_format):
        if model is None and choose is None:
            raise ValueError("a rollout without a model needs choose(step) -> actions")
        self.envs, self.E = list(envs), envs[0].num
        N = len(self.envs) * self.E
        self.device = torch.device(device or (
            "cpu" if model is None else next(model.parameters()).device))
        self.runner = None if model is None else PolicyRunner(model, N, self.device, policy)
        self.choose = choose
        self.quota = np.broadcast_to(quota, (N,))
        self.seeds_of = np.full(len(self.envs), seed) if action_seeds is None \
            else np.asarray(action_seeds)
        if self.seeds_of.shape != (len(self.envs),):
            raise ValueError(f"action_seeds needs one seed per group ({len(self.envs)}), "
                             f"got {self.seeds_of}")
        self.greedy, self.labels, self.memory_format = greedy, labels, memory_format
        self.env_of = np.tile(np.arange(self.E), len(self.envs))
        self.count, self.step = np.zeros(N, np.int64), np.zeros(N, np.int64)
        self.ret = np.zeros(N)

    def run(self, *, max_steps: int | None = None,
            on_step: Callable[[Step], bool | None] | None = None,
            on_act: Callable[[Step], None] | None = None,
            on_observe: Callable[[Step], None] | None = None) -> None:
        """Step until every row met its quota or ``max_steps`` vectorized steps ran.

        ``on_step(step)``: before acting (the envs still in the step's states: ``state_of``,
        ``labels_of``, ``hx``); returning True stops the run there. ``on_act(step)``: after
        the actions went out, while a remote env steps (labels read by now). ``on_observe(
        step)``: after the envs stepped, with ``reward``, ``done``, ``returns`` and ``infos``
        filled and the counters already advanced (those of ended episodes reset).
        """
        E, envs, runner = self.E, self.envs, self.runner
        obs = self._observe()[1]
        t = 0
        while (active := np.flatnonzero(self.count < self.quota)).size and (
                max_steps is None or t < max_steps):
            pending = self._request_labels(active) if self.labels else None
            s = Step(active, active // E, self.env_of[active], self.count[active].copy(),
                     self.step[active].copy(), obs[active], np.zeros(len(active)), None,
                     state_of=lambda r: envs[r // E].get_state(r % E),
                     labels_of=self.labels_of)
            if runner is not None:
                s.hx = runner.state(active) if on_step is not None else None
                logits, value = runner(preprocess(s.obs, self.device,
                                                  memory_format=self.memory_format), active)
                s.probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
                s.value = value.float().cpu().numpy()
            if pending is not None and (on_step is not None or self.choose is not None):
                s.labels, pending = self._collect(pending), None
            if self.choose is not None:
                s.actions = np.asarray(self.choose(s))
            elif self.greedy:
                s.actions = s.probs.argmax(axis=1)
            else:
                s.actions = self._sample(s.probs, active)
            if on_step is not None:
                if on_step(s):
                    break  # unfinished episodes stay unfinished in the counters
            actions = np.full(len(self.env_of), NOOP)
            actions[active] = s.actions
            for g, e in enumerate(envs):
                e.act(actions[g * E:(g + 1) * E])  # returns at once: remote envs step meanwhile
            if pending is not None:
                s.labels = self._collect(pending)  # of the states before this act
            if on_act is not None:
                on_act(s)
            rew, obs, first = self._observe()
            if runner is not None:
                runner.reset(first)
            s.reward, s.done = rew[active], first[active]
            self.ret[active] += s.reward
            self.step[active] += 1
            s.returns = self.ret[active]
            ended = active[s.done]
            if ended.size:
                s.infos = [i for e in envs for i in e.get_info()]
                self.count[ended] += 1
                self.ret[ended], self.step[ended] = 0, 0
            if on_observe is not None:
                on_observe(s)
            t += 1

    def labels_of(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Labels of some flat rows now, in row order."""
        return self._collect(self._request_labels(np.asarray(rows)))

    def _request_labels(self, rows: np.ndarray) -> list:
        E = self.E
        return [e.request_labels(sel % E) for g, e in enumerate(self.envs)
                if (sel := rows[rows // E == g]).size]

    @staticmethod
    def _collect(pending: list) -> dict[str, np.ndarray]:
        labs = [p.result() for p in pending]
        if len(labs) == 1:
            return labs[0]
        return {k: np.concatenate([la[k] for la in labs]) for k in labs[0]}

    def _observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if len(self.envs) == 1:
            return self.envs[0].observe()
        return tuple(np.concatenate(p) for p in zip(*[e.observe() for e in self.envs]))

    def _sample(self, probs: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Actions of the active rows, each group with its own action seed."""
        seeds = self.seeds_of[active // self.E]
        env, episode, step = self.env_of[active], self.count[active], self.step[active]
        if (seeds == seeds[0]).all():
            return sample_actions(probs, int(seeds[0]), env, episode, step)
        out = np.empty(len(active), np.int64)
        for sd in np.unique(seeds):
            sel = seeds == sd
            out[sel] = sample_actions(probs[sel], int(sd), env[sel], episode[sel], step[sel])
        return out


@torch.no_grad()
def run_episodes(model: nn.Module | None, env: str | EnvSpec, *, groups: int = 1,
                 episodes: int | None = 16,
                 num_envs: int = 16, seed: int = 0, policy: Policy | None = None,
                 max_steps: int | None = None, keep_frames: int = 0,
                 on_step: Callable[[Step], bool | None] | None = None,
                 step_labels: bool = False, label_metrics: bool = True,
                 device: torch.device | str | None = None, progress: str | None = "episodes",
                 action_seeds: Sequence[int] | None = None,
                 choose: Callable[[Step], np.ndarray] | None = None) -> Episodes:
    """Run the first ``ceil(episodes / num_envs)`` episodes of every env in each group
    (``episodes=None``: no quota, every env plays on until ``on_step`` or ``max_steps`` stops
    the run), on a :class:`Rollout` of ``groups`` copies of the env.

    ``policy(x, rows, hx) -> (logits, value, new hx)`` defaults to ``model.step(x, hx)`` (see
    :class:`PolicyRunner`; ``hx`` is None for a feed-forward agent). ``max_steps`` caps the
    vectorized steps; ``keep_frames`` reservoir-samples that many of group 0's observations.
    ``on_step(Step)`` is called once per vectorized step, before acting, with the active rows
    (with their frames' labels when ``step_labels``); if it returns True the run stops there
    (episodes not finished count as truncated, those not begun as invalid).
    ``label_metrics=False`` skips the label-based metrics (``reached_end``, ``distractor``),
    whose labels cost ~0.5 ms per env-step: training-time evaluation only needs returns.
    ``progress`` labels the progress of finished episodes (:class:`~interp.progress.Progress`;
    None: silent). ``action_seeds``: the action-sampling seed of each group (default ``seed``
    for all: common random numbers); another seed replays the same levels with other random
    numbers. ``choose(step) -> actions`` picks the actions instead of the agent; with
    ``model=None`` it is a scripted agent (see :class:`Rollout`).

    The episodes axis of the result is as long as the most episodes an env has run (at least
    the number asked for, short of ``max_steps``), so memory follows the work done.
    """
    spec = as_spec(env)
    if model is not None:
        check_agent_env(model, spec)
    if episodes is None:  # no quota
        E, K = num_envs, math.inf
    else:
        E, K = min(num_envs, episodes), math.ceil(episodes / min(num_envs, episodes))
    N = groups * E
    check_env_count(N, f"{groups} group(s) of {E} envs; lower --num-envs"
                    + (" or --batch" if groups > 1 else ""))
    flag_fns = _flags(spec, label_metrics)
    book = _Bookkeeping(episode_metrics(spec, label_metrics), N, K)
    success = np.zeros(N, bool)
    flags = {name: np.zeros(N, bool) for name, _ in flag_fns}
    reservoir, seen, rng = [], 0, np.random.default_rng(seed)

    def record(rows: np.ndarray, episode, length, ret, cut: bool) -> None:
        for r, k, n, v in zip(rows, episode, length, ret):
            values = {"return": v, "success": success[r], "length": n,
                      "steps_to_goal": n if success[r] else np.nan,
                      **{name: f[r] for name, f in flags.items()}}
            book.add(r, k, values, seeds[r], cut)
        bar.update(len(rows))

    def before_act(step: Step) -> bool | None:
        nonlocal seen
        for name, flag in flag_fns:
            flags[name][step.rows] |= flag(step.labels)
        for i in np.flatnonzero(step.rows < E) if keep_frames else ():  # reservoir: group 0
            seen += 1
            item = (step.obs[i], step.actions[i], step.rows[i], step.episode[i],
                    None if step.hx is None else step.hx[i])
            if len(reservoir) < keep_frames:
                reservoir.append(item)
            elif (j := rng.integers(seen)) < keep_frames:
                reservoir[j] = item
        return on_step(step) if on_step is not None else None

    def after_step(step: Step) -> None:
        nonlocal seeds
        success[step.rows] |= step.reward >= GOAL_REWARD
        if step.infos is not None:  # a completed level (keys-chests) succeeds too
            success[step.rows] |= step.done & np.array(
                [bool(step.infos[r].get("prev_level_complete")) for r in step.rows])
        d = step.done
        record(step.rows[d], step.episode[d], step.step[d] + 1, step.returns[d], cut=False)
        if step.infos is not None:
            seeds = np.array([i["level_seed"] for i in step.infos])
        success[step.rows[d]] = False
        for f in flags.values():
            f[step.rows[d]] = False

    envs = [make_env(spec, num=E, seed=seed) for _ in range(groups)]
    bar = Progress(N * K, progress or "", enabled=progress is not None and episodes is not None)
    try:
        seeds = np.concatenate([[i["level_seed"] for i in e.get_info()] for e in envs])
        loop = Rollout(model, envs, K, seed=seed, action_seeds=action_seeds, policy=policy,
                       labels=bool(flag_fns) or (on_step is not None and step_labels),
                       choose=choose, device=device)
        hooked = bool(flag_fns or keep_frames) or on_step is not None
        loop.run(max_steps=max_steps, on_step=before_act if hooked else None,
                 on_observe=after_step)
        cut = np.flatnonzero(loop.count < K)
        record(cut, loop.count[cut], loop.step[cut], loop.ret[cut], cut=True)
    finally:
        bar.close()
        for e in envs:
            e.close()
    frames = None
    if keep_frames:
        o, a, r, k, h = zip(*reservoir) if reservoir else ([], [], [], [], [])
        frames = Frames(np.asarray(o, np.uint8).reshape(-1, 64, 64, 3), np.asarray(a, int),
                        np.asarray(r, int), np.asarray(k, int),
                        hx=torch.stack(h) if h and h[0] is not None else None)
    return book.episodes(groups, frames)


def sample_frames(model: nn.Module, env: str | EnvSpec, n: int, *, num_envs: int = 8,
                  every: int = 5, seed: int = 0, labels: bool = True,
                  device: torch.device | str | None = None) -> Frames:
    """``n`` frames of the agent's own play: every ``every``-th step of each of ``num_envs``
    envs (:func:`run_episodes` without a quota), with labels and the view geometry
    (``view_dim``, ``center_x``, ``center_y``)."""
    kept: list[tuple] = []
    keys = ("view_dim", "center_x", "center_y")
    t = 0

    def keep(step: Step) -> bool:
        nonlocal t
        if t % every == 0:
            take = np.arange(min(len(step.rows), n - len(kept)))  # every row is active
            lab = step.labels_of(step.rows[take]) if labels else {}
            for j in take:
                row = {k: v[j] for k, v in lab.items()}
                if labels:
                    state = step.state_of(int(step.rows[j]))
                    row.update({k: float(state[k]) for k in keys})
                kept.append((step.obs[j], step.actions[j], step.env[j], step.episode[j], row,
                             None if step.hx is None else step.hx[j]))
        t += 1
        return len(kept) >= n

    run_episodes(model, env, episodes=None, num_envs=num_envs, seed=seed, on_step=keep,
                 label_metrics=False, device=device, progress=None)
    o, a, e, k, rows, h = zip(*kept)
    lab = {key: np.asarray([r[key] for r in rows]) for key in rows[0]}
    return Frames(np.asarray(o, np.uint8), np.asarray(a, int), np.asarray(e, int),
                  np.asarray(k, int), lab, hx=None if h[0] is None else torch.stack(h))


# -- per-step traces and per-episode outcomes ---------------------------------------------------
class StepTrace:
    """``on_step`` collector for :func:`run_episodes`: per step, the row's
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
            raise RolloutError("no steps were run: raise --episodes (or max_steps)")
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
