"""Populations of agents across training seeds, on Ray: train one agent per seed, evaluate
every agent on every test setting, and report the population with its outlier seeds.

Ray is an optional extra (``pip install -e '.[sweep]'``); nothing outside this package imports
it, and this package only inside the functions that run tasks. See docs/sweeps.md.
"""

from .evaluation import Setting, find_agents, parse_settings, sweep_eval
from .outliers import OutlierTest, adjust, leave_one_out, metric_tests
from .report import population_report
from .runner import SweepError, require_ray
from .training import parse_seeds, sweep_train

__all__ = ["OutlierTest", "Setting", "SweepError", "adjust", "find_agents", "leave_one_out",
           "metric_tests", "parse_seeds", "parse_settings", "population_report", "require_ray",
           "sweep_eval", "sweep_train"]
