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
