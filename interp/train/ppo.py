"""PPO building blocks: return normalisation, GAE, the clipped losses, action sampling.

Time convention (gym3): at step ``t`` the agent sees ``obs[t]`` and acts; the next
``observe()`` returns ``reward[t]`` and ``first[t+1]``. ``first[t+1]`` means the action at ``t``
ended the episode, so ``done[t] = first[t+1]``: no bootstrapping across it, and the return
accumulators reset after it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class RunningMeanStd:
    """Running mean/variance of a stream of batches (Chan et al.; baselines' RunningMeanStd)."""

    def __init__(self, epsilon: float = 1e-4):
        self.mean, self.var, self.count = 0.0, 1.0, epsilon

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        b_mean, b_var, b_count = float(x.mean()), float(x.var()), x.size
        delta, total = b_mean - self.mean, self.count + b_count
        self.mean += delta * b_count / total
        self.var = (self.var * self.count + b_var * b_count
                    + delta**2 * self.count * b_count / total) / total
        self.count = total


class RewardNormalizer:
    """Divides rewards by the running std of each env's discounted return, then clips
    (baselines ``VecNormalize(ob=False)``, as train-procgen-pytorch uses it)."""

    def __init__(self, num_envs: int, gamma: float, clip: float, epsilon: float = 1e-8):
        self.ret = np.zeros(num_envs, dtype=np.float64)
        self.rms = RunningMeanStd()
        self.gamma, self.clip, self.epsilon = gamma, clip, epsilon

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        """Normalise a rollout: ``rewards``, ``dones`` of shape (T, N), processed step by step."""
        out = np.empty(rewards.shape, dtype=np.float32)
        for t in range(len(rewards)):
            self.ret = self.ret * self.gamma + rewards[t]
            self.rms.update(self.ret)
            out[t] = np.clip(rewards[t] / np.sqrt(self.rms.var + self.epsilon),
                             -self.clip, self.clip)
            self.ret[dones[t]] = 0.0
        return out

    def state_dict(self) -> dict:
        return {"ret": torch.from_numpy(self.ret.copy()), "mean": self.rms.mean,
                "var": self.rms.var, "count": self.rms.count}

    def load_state_dict(self, d: dict) -> None:
        self.ret = d["ret"].numpy().astype(np.float64)
        self.rms.mean, self.rms.var, self.rms.count = d["mean"], d["var"], d["count"]


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor,
        last_value: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimates, shape (T, N).

    ``values[t]`` = V(obs[t]); ``last_value`` = V(obs[T]) bootstraps the rollout's end;
    ``dones[t]`` (float or bool) = the action at ``t`` ended the episode.
    """
    not_done = 1.0 - dones.float()
    adv = torch.zeros_like(values)
    next_adv, next_value = torch.zeros_like(last_value), last_value
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + gamma * next_value * not_done[t] - values[t]
        next_adv = delta + gamma * lam * not_done[t] * next_adv
        adv[t], next_value = next_adv, values[t]
    return adv


def ppo_loss(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor,
             old_logp: torch.Tensor, old_values: torch.Tensor, advantages: torch.Tensor,
             returns: torch.Tensor, *, clip: float, clip_value_loss: bool, value_coef: float,
             entropy_coef: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped-surrogate PPO loss; returns ``(loss, stats)`` with detached stats.

    value loss = 0.5 * mean(max((v - R)^2, (v_clip - R)^2)), v_clip = old_v + clamp(v - old_v,
    -clip, clip) (train-procgen-pytorch); loss = pg + value_coef * value - entropy_coef * H.
    """
    logp_all = F.log_softmax(logits.float(), dim=-1)
    logp = logp_all.gather(1, actions[:, None]).squeeze(1)
    entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    pg_loss = -torch.min(ratio * advantages,
                         ratio.clamp(1 - clip, 1 + clip) * advantages).mean()
    values = values.float()
    v_loss = (values - returns).pow(2)
    if clip_value_loss:
        clipped = old_values + (values - old_values).clamp(-clip, clip)
        v_loss = torch.max(v_loss, (clipped - returns).pow(2))
    v_loss = 0.5 * v_loss.mean()
    loss = pg_loss + value_coef * v_loss - entropy_coef * entropy
    with torch.no_grad():
        stats = {"policy_loss": pg_loss, "value_loss": v_loss, "entropy": entropy,
                 "approx_kl": ((ratio - 1) - log_ratio).mean(),
                 "clip_frac": ((ratio - 1).abs() > clip).float().mean()}
    return loss, {k: v.detach() for k, v in stats.items()}


def sample_actions(logits: torch.Tensor, generator: torch.Generator
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample from the categorical policy with an explicit generator; -> (actions, log-probs)."""
    logp_all = F.log_softmax(logits.float(), dim=-1)
    actions = torch.multinomial(logp_all.exp(), 1, generator=generator).squeeze(1)
    return actions, logp_all.gather(1, actions[:, None]).squeeze(1)


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    """1 - Var(R - V) / Var(R); NaN when the returns do not vary."""
    var = returns.var()
    return float("nan") if var == 0 else float(1 - (returns - values).var() / var)
