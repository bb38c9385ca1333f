"""A single env with the gym 0.26 API, built on :class:`~interp.envs.vecenv.VecEnv` (num=1).

    env = GymEnv("maze-cheese-top-right", seed=0)
    obs, info = env.reset()
    obs, reward, terminated, truncated, info = env.step(action)   # info["labels"]: dict

Procgen resets inside the step that ends an episode: ``step`` returns the new level's first
frame with ``terminated``/``truncated`` set (like gym3), so calling ``reset`` afterwards is
optional; ``reset`` starts a new level only if the current episode has taken steps.
``truncated`` means the engine's step limit ended the episode.
"""

from __future__ import annotations

import gym
import numpy as np

from interp.envs.base import NOOP, NUM_ACTIONS
from interp.envs.make import make_env
from interp.envs.spec import EnvSpec



class GymEnv(gym.Env):
    """One Procgen variant env; ``info["labels"]`` holds its ground-truth labels if asked."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, variant: str | EnvSpec, seed: int = 0, *, labels: bool = True, **kwargs):
        self._env = make_env(variant, num=1, seed=seed, **kwargs)
        self.env_spec = self._env.spec
        self._timeout = self._env.get_state(0)["timeout"]
        self.with_labels = labels
        self.observation_space = gym.spaces.Box(0, 255, (64, 64, 3), dtype=np.uint8)
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self._steps = 0

    def _info(self) -> dict:
        info = dict(self._env.get_info()[0])
        info.pop("rgb", None)
        if self.with_labels:
            info["labels"] = {k: v[0] for k, v in self._env.labels().items()}
        return info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            raise ValueError("procgen levels are seeded when the env is made: "
                             "pass seed= to GymEnv(...) instead of reset()")
        if self._steps:  # end the current episode: run the clock out, step once
            s = self._env.get_state(0)
            s["cur_time"] = s["timeout"]
            self._env.set_state(0, s)
            self._env.act(np.array([NOOP]))
            self._steps = 0
        return self._env.observe()[1][0], self._info()

    def step(self, action):
        self._env.act(np.asarray([int(action)]))
        self._steps += 1
        reward, obs, first = self._env.observe()
        done = bool(first[0])
        truncated = done and self._steps >= self._timeout
        if done:
            self._steps = 0
        return obs[0], float(reward[0]), done and not truncated, truncated, self._info()

    def render(self):
        return self._env.observe()[1][0]

    def close(self):
        self._env.close()
