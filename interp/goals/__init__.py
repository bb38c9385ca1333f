"""Goal inference on real episodes: which candidate goal (or none) explains an agent's actions.

- :mod:`.likelihood`: the noisy-rational likelihood with epsilon integrated out, informative
  steps and the posterior over goals and "no goal".
- :mod:`.games`: the goal hypotheses of each game (a game registers them in one place).
- :mod:`.run`: ``interp goals`` (:func:`infer_goals`), scripted control agents, reports.
"""

from .games import Goal, GoalError, GoalGame, goal_game, register_goals, resolve_goals
from .likelihood import NO_GOAL, UNDECIDED, Evidence, weigh
from .run import EpisodeGoals, infer_goals, scripted_episodes, summarise, weigh_episode

__all__ = ["Evidence", "EpisodeGoals", "Goal", "GoalError", "GoalGame", "NO_GOAL", "UNDECIDED",
           "goal_game", "infer_goals", "register_goals", "resolve_goals", "scripted_episodes",
           "summarise", "weigh", "weigh_episode"]
