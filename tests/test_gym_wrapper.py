"""The gym 0.26 single-env wrapper."""

import numpy as np
import pytest

from interp.envs.gym_wrapper import GymEnv


def test_gym_api_and_labels():
    env = GymEnv("maze-cheese-top-right", seed=0)
    obs, info = env.reset()
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert info["labels"]["goal_x"] == info["labels"]["corner_x"]
    first_level = info["level_seed"]
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert info["labels"]["step"] == 3 and not (terminated or truncated)
    _, info = env.reset()  # mid-episode reset starts a new level
    assert info["labels"]["step"] == 0 and info["level_seed"] != first_level
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=1)


def test_timeout_is_truncation():
    env = GymEnv("maze", seed=0, labels=False)
    env.reset()
    for t in range(1, 501):
        _, reward, terminated, truncated, info = env.step(4)  # stand still
        if terminated or truncated:
            break
    assert (t, truncated, terminated, "labels" in info) == (500, True, False, False)
