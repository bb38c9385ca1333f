"""The noisy-rational likelihood of a trajectory under "pursue goal g", with epsilon integrated
out, and the posterior over candidate goals and "no goal".

Per step the agent takes action a in state s. Under "pursue g" it is epsilon-greedy: with
probability 1 - epsilon one of the actions A*_g(s) that make progress towards g (uniformly; all
actions when g makes no prediction at s, e.g. once g is reached), with probability epsilon any
of the ``n_actions`` actions:

    pi_g(a | s, eps) = (1 - eps) [a in A*_g(s)] / |A*_g(s)| + eps / n_actions.

epsilon is shared by the steps of one trajectory and integrated over a uniform prior on [0, 1]:
p(tau | g) = int_0^1 prod_t pi_g(a_t | s_t, eps) d eps, a polynomial of degree T in eps computed
exactly by Gauss-Legendre quadrature (as the agents-vs-devices experiment of Langosco et al.
Sec. 3.5 does). "No goal" takes uniformly random actions: p(tau | none) = n_actions^-T. It is
the eps = 1 end of every goal hypothesis, without the cost of a free parameter, so a trajectory
that makes no progress towards any goal favours it.

A step is *informative* when the candidate goals disagree there (their sets A*_g(s) differ);
where all goals prescribe the same actions the step says nothing about which goal it serves.
A step where some goal makes *no prediction* (every action optimal, e.g. CoinRun's coin right
above the agent, whose vertical the model ignores) is left out altogether: it would score any
purposeful action there against that goal, though the goal says nothing about it (a goal
silent on every step, e.g. absent from the level, is scored as it is: like "no goal").
:func:`weigh` integrates epsilon separately over the informative steps and over the others
(the agent's noise may differ between them; two independent uniform priors), so the goals are
compared on the informative steps alone, while every step kept weighs them against "no goal":

    p(tau | g) = p(informative steps | g) * p(other steps | any goal),

the second factor being the same for every goal. Prior: uniform over the goals and "no goal".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp, softmax

NO_GOAL = "no goal"
UNDECIDED = "undecided"
TIE = 1e-9  # log-likelihoods closer than this are a tie


def eps_nodes(T: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and log weights on [0, 1], exact for polynomials of degree T."""
    x, w = np.polynomial.legendre.leggauss(T // 2 + 2)
    return (x + 1) / 2, np.log(w / 2)


def log_eps_greedy(took: np.ndarray, m: np.ndarray, n_actions: int) -> np.ndarray:
    """log int_0^1 prod_t [(1 - eps) took_t / m_t + eps / n_actions] d eps per row of (..., T)
    arrays: ``took`` whether step t's action was one of the ``m_t`` optimal ones."""
    took, m = np.asarray(took, bool), np.asarray(m, int)
    eps, logw = eps_nodes(took.shape[-1])
    total = (~took).sum(-1)[..., None] * np.log(eps / n_actions)
    for k in np.unique(m[took]):
        count = (took & (m == k)).sum(-1)[..., None]
        total = total + count * np.log((1 - eps) / k + eps / n_actions)
    return logsumexp(total + logw, axis=-1)


def log_likelihoods(optimal: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """log p(tau | g) per goal: ``optimal`` bool (goals, T, n_actions), ``actions`` int (T,)."""
    G, T, n_actions = optimal.shape
    took = optimal[:, np.arange(T), actions] if T else np.zeros((G, 0), bool)
    return log_eps_greedy(took, optimal.sum(-1), n_actions)


def silent_steps(optimal: np.ndarray) -> np.ndarray:
    """Bool (T,): the steps where some goal makes no prediction (every action optimal), among
    the goals that make one somewhere (a goal silent throughout, e.g. absent, is no goal)."""
    none = optimal.all(-1)
    return none[~none.all(1)].any(0)


def informative_steps(optimal: np.ndarray) -> np.ndarray:
    """Bool (T,): the steps where every goal makes a prediction and at least two differ."""
    return (optimal != optimal[:1]).any(axis=(0, 2)) & ~silent_steps(optimal)


@dataclass
class Evidence:
    """One trajectory weighed: ``names`` are the candidate goals, then :data:`NO_GOAL`."""

    names: tuple[str, ...]
    loglik: np.ndarray  # log p(tau | h) per hypothesis
    posterior: np.ndarray  # uniform prior over the hypotheses
    steps: int  # steps weighed (the window)
    informative: int  # of which informative

    @property
    def best(self) -> str:
        """The hypothesis with the highest posterior, or :data:`UNDECIDED` on a tie (goals that
        agree on every step, or coincide, tie unless "no goal" beats them)."""
        top = np.sort(self.loglik)[::-1]
        return UNDECIDED if top[0] - top[1] < TIE else self.names[int(np.argmax(self.loglik))]


def weigh(names: tuple[str, ...], optimal: np.ndarray, actions: np.ndarray) -> Evidence:
    """Posterior over the goals ``names`` (``optimal`` bool (goals, T, n_actions)) and "no goal"
    for one trajectory's ``actions`` (module docstring)."""
    actions = np.asarray(actions)
    inf, silent = informative_steps(optimal), silent_steps(optimal)
    n_actions = optimal.shape[-1]
    same = ~inf & ~silent
    shared = log_likelihoods(optimal[:1, same], actions[same])[0]
    ll = np.append(log_likelihoods(optimal[:, inf], actions[inf]) + shared,
                   -(~silent).sum() * np.log(n_actions))
    return Evidence((*names, NO_GOAL), ll, softmax(ll), len(actions), int(inf.sum()))
