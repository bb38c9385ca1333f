"""The keyed action sampler: vectorized Philox equals numpy's, draws follow the CDF."""

import numpy as np

from interp.rollout import philox_uniform, sample_actions


def _numpy_first_random(seed, e, k, t):
    counter = np.array([e, k, t, 0], np.uint64)
    return np.random.Generator(np.random.Philox(key=seed, counter=counter)).random()


def test_philox_uniform_equals_numpy_generator():
    rng = np.random.default_rng(0)
    for seed in (0, 7, 2**63 + 5, 2**70 + 3):
        e, k = rng.integers(0, 2**62, 40, dtype=np.uint64), rng.integers(0, 500, 40)
        t = rng.integers(0, 10_000, 40)
        ref = [_numpy_first_random(seed, *row) for row in zip(e, k, t)]
        np.testing.assert_array_equal(philox_uniform(seed, e, k, t), ref)


def test_philox_uniform_carries_counter_overflow():
    top = np.uint64(2**64 - 1)
    got = philox_uniform(3, np.array([top]), np.array([top]), np.array([7]))
    assert got[0] == _numpy_first_random(3, top, top, 7)


def test_sample_actions_follow_probabilities_and_keys():
    probs = np.tile([0.1, 0.0, 0.6, 0.3], (20_000, 1))
    rows = np.arange(20_000)
    a = sample_actions(probs, 1, rows, np.zeros_like(rows), np.zeros_like(rows))
    freq = np.bincount(a, minlength=4) / len(a)
    np.testing.assert_allclose(freq, [0.1, 0.0, 0.6, 0.3], atol=0.015)
    again = sample_actions(probs[:5], 1, rows[:5], np.zeros(5, int), np.zeros(5, int))
    np.testing.assert_array_equal(again, a[:5])  # a row's draw depends only on its key


# -- episode bookkeeping ------------------------------------------------------------------------
def _peak_mib(fn) -> float:
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_episode_bookkeeping_grows_with_the_episodes_run():
    """`interp eval --episodes 1000000000` allocated episodes x envs arrays up front (GBs)."""
    import torch

    from interp.models import ImpalaAgent
    from interp.rollout import run_episodes

    torch.manual_seed(0)
    model = ImpalaAgent().eval()
    got = {}

    def run():
        got["ep"] = run_episodes(model, "coinrun", episodes=10**7, num_envs=2, max_steps=3,
                                 progress=None)
    assert _peak_mib(run) < 20  # was ~400 MiB: (2 x 5M) per metric
    ep = got["ep"]
    assert ep.valid.shape == (1, 2, 1) and ep.truncated.all() and (ep.metrics["length"] == 3).all()


def test_action_seeds_replay_the_same_levels_with_other_actions():
    import torch

    from interp.models import ImpalaAgent
    from interp.rollout import run_episodes

    torch.manual_seed(0)
    model = ImpalaAgent().eval()
    actions, seeds = [], []

    def on_step(step):
        actions.append(step.actions.reshape(3, 2))  # (group, env): every row is active
        seeds.append(step.labels["level_seed"].reshape(3, 2))
    run_episodes(model, "coinrun", groups=3, episodes=2, num_envs=2, seed=5, max_steps=20,
                 action_seeds=[5, 6, 5], on_step=on_step, step_labels=True, progress=None)
    actions, seeds = np.stack(actions), np.stack(seeds)
    assert (seeds == seeds[:, :1]).all()  # every group plays the same levels
    np.testing.assert_array_equal(actions[:, 0], actions[:, 2])  # same seed, same draws
    assert (actions[:, 0] != actions[:, 1]).mean() > 0.5  # another seed, other draws
