"""Policy evaluation on a fixed set of levels: the first k episodes of every env.

Counting "the first N episodes to end" across parallel envs over-samples short episodes
(quick coins, quick deaths); taking exactly k episodes from each env, whose level sequence
is fixed by the env seed, does not.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from interp.models import preprocess
from interp.train.ppo import sample_actions


@torch.no_grad()
def evaluate_policy(model: nn.Module, env_spec, episodes: int = 256, seed: int = 0,
                    device: torch.device | str | None = None, *, num_envs: int = 64,
                    amp: bool = False) -> dict:
    """Run the stochastic policy for the first ``ceil(episodes / envs)`` episodes of each env.

    ``env_spec``: an :class:`~interp.envs.EnvSpec` or a variant name. The same ``seed`` gives
    the same levels and the same action samples. Returns ``n`` (episodes counted, >= episodes),
    ``mean_return``, ``success_rate`` (level completed: reached the rewarded goal),
    ``mean_length`` and the per-episode ``returns``/``lengths``/``successes`` lists.
    """
    from interp.envs import make_env

    device = torch.device(device or next(model.parameters()).device)
    num_envs = min(num_envs, episodes)
    per_env = math.ceil(episodes / num_envs)
    generator = torch.Generator(device).manual_seed(seed)
    returns, lengths, successes = (np.zeros((num_envs, per_env)) for _ in range(3))
    count = np.zeros(num_envs, dtype=int)
    ep_ret, ep_len = np.zeros(num_envs), np.zeros(num_envs, dtype=int)
    env = make_env(env_spec, num=num_envs, seed=seed)
    try:
        _, obs, _ = env.observe()
        while (count < per_env).any():
            with torch.autocast(device.type, torch.bfloat16, enabled=amp and device.type == "cuda"):
                logits, _ = model(preprocess(obs, device))
            actions, _ = sample_actions(logits, generator)
            env.act(actions.cpu().numpy())
            rew, obs, first = env.observe()
            ep_ret += rew
            ep_len += 1
            ended = np.flatnonzero(first)
            if len(ended):
                info = env.get_info()
                for i in ended:
                    if count[i] < per_env:
                        k = count[i]
                        returns[i, k], lengths[i, k] = ep_ret[i], ep_len[i]
                        successes[i, k] = bool(info[i].get("prev_level_complete", ep_ret[i] > 0))
                        count[i] += 1
                ep_ret[ended], ep_len[ended] = 0, 0
    finally:
        env.close()
    return {"n": returns.size, "mean_return": float(returns.mean()),
            "success_rate": float(successes.mean()), "mean_length": float(lengths.mean()),
            "returns": returns.ravel().tolist(), "lengths": lengths.ravel().astype(int).tolist(),
            "successes": successes.ravel().astype(bool).tolist()}
