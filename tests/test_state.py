"""Byte-exact state round trip, and validation before anything reaches the engine."""

import numpy as np
import pytest

from interp.envs import InvalidStateError, make_env, parse_state
from interp.envs.state import validate


def _states(game, mode, steps=60, every=6, num=8):
    env = make_env(game, num=num, seed=3, distribution_mode=mode)
    rng = np.random.default_rng(0)
    out = env.get_all_states()  # post-reset
    for t in range(steps):
        env.act(rng.integers(0, 15, num))
        if t % every == 0:
            out += env.get_all_states()
    return env, out


@pytest.mark.parametrize("mode", ["easy", "hard"])
@pytest.mark.parametrize("game", ["maze", "coinrun", "heist"])
def test_round_trip_byte_exact(game, mode):
    _, states = _states(game, mode)
    assert len(states) > 80
    for raw in states:
        s = parse_state(raw)
        assert s.game == game and s.raw_tail is None
        assert s.to_bytes() == raw


def test_round_trip_raw_tail_game():
    from procgen import ProcgenGym3Env

    env = ProcgenGym3Env(num=4, env_name="bigfish", rand_seed=0)
    for _ in range(20):
        env.act(np.random.default_rng(1).integers(0, 15, 4))
    for raw in env.callmethod("get_state"):
        s = parse_state(raw)
        assert s.raw_tail is not None and s.to_bytes() == raw


@pytest.fixture(scope="module")
def heist():
    return make_env("heist", num=1, seed=0, distribution_mode="hard")


def _bad_states(heist):
    s = heist.get_state(0)
    tile = s.copy()
    tile.grid[3, 3] = 101
    noplayer = s.copy()
    noplayer.entities = noplayer.entities[noplayer.entities["type"] != 0]
    theme = s.copy()
    theme.entities["image_theme"][np.isin(theme.entities["type"], (1, 2))] = 3
    return {"tile id": tile, "no player": noplayer, "colour": theme}


@pytest.mark.parametrize("case", ["tile id", "no player", "colour"])
def test_validate_rejects(heist, case):
    bad = _bad_states(heist)[case]
    with pytest.raises(InvalidStateError):
        validate(bad, "heist")
    before = heist.get_state_bytes(0)
    with pytest.raises(InvalidStateError):
        heist.set_state(0, bad)
    assert heist.get_state_bytes(0) == before  # nothing reached the engine


def test_wrong_game_rejected(heist):
    maze_state = make_env("maze", num=1, seed=0).get_state(0)
    with pytest.raises(InvalidStateError, match="states cannot move between games"):
        heist.set_state(0, maze_state)
