"""The papers' experiments as commands: ``interp experiment NAME [CKPT...] --out DIR``.

Each experiment is a library function in its own module; :func:`run_experiment` loads the
checkpoints, checks their number and calls it. Every experiment writes CSV, PNG and a
``summary.md`` with n and 95% intervals (:mod:`interp.stats`) to ``out``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from interp.checkpoint import LoadedAgent, load_agent
from interp.device import resolve_device
from interp.outputs import check_output

from .common import ExperimentError

Runner = Callable[[list[tuple[str, LoadedAgent]], Path, dict], list[Path]]


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: its name, one-line description, checkpoint count and game."""

    name: str
    description: str
    min_checkpoints: int
    max_checkpoints: int | None  # None: any number
    run: Runner  # run(agents, out, kwargs with episodes / seed / device) -> written paths
    game: str | None = None  # the game its agents play (None: no agent)

    def checkpoint_hint(self) -> str:
        lo, hi = self.min_checkpoints, self.max_checkpoints
        if hi == 0:
            return "takes no checkpoint"
        if lo == hi:
            return f"takes exactly {lo} checkpoint{'s' * (lo != 1)}"
        return f"takes {lo} or more checkpoints" if hi is None else f"takes {lo}-{hi} checkpoints"


def _single(fn: Callable, needs_spec: bool = False) -> Runner:
    """Runner of a one-agent experiment ``fn(model, [training spec,] out, **kw)``."""
    def run(agents, out, kw):
        (name, agent), = agents
        if needs_spec:
            from .colour_shape import training_spec
            return fn(agent.model, training_spec(agent, name), out, **kw)
        return fn(agent.model, out, **kw)
    return run


def _maze_corner(agents, out, kw):
    from .maze_corner import maze_corner, training_mazes

    (name, agent), = agents
    return maze_corner(agent.model, out, **training_mazes(agent, name), **kw)


def _keys_chests(agents, out, kw):
    from .keys_chests import keys_chests, training_env

    (name, agent), = agents
    return keys_chests(agent.model, training_env(agent, name), out, **kw)


def _registry() -> dict[str, Experiment]:
    from .agency import agency
    from .colour_shape import colour_shape
    from .misgen_rates import misgen_rates
    from .permeable_wall import permeable_wall
    from .value_vs_stage import value_vs_stage

    def agency_run(agents, out, kw):
        kw.pop("device", None)
        if "episodes" in kw:
            kw["trajectories"] = kw.pop("episodes")
        return agency(out, **kw)

    return {e.name: e for e in (
        Experiment("value-vs-stage", "Fig. 6: critic value at level stages, coin in view vs the "
                   "same frame with the coin erased (coinrun-random-coin)", 1, 1,
                   _single(value_vs_stage), "coinrun"),
        Experiment("permeable-wall", "Fig. 7: does the actor walk through a permeable end wall; "
                   "where does the value peak", 1, 1, _single(permeable_wall), "coinrun"),
        Experiment("misgen-rates", "Fig. 2: capability failure / goal misgeneralization vs the "
                   "random-coin training fraction (one checkpoint per fraction)", 1, None,
                   lambda agents, out, kw: misgen_rates(agents, out, **kw), "coinrun"),
        Experiment("maze-corner", "Maze I / Fig. 4: top-right corner vs cheese by cheese "
                   "region, on the agent's training mazes", 1, 1, _maze_corner, "maze"),
        Experiment("colour-shape", "Maze II / Ramanauskas & Simsek: colour vs shape preference, "
                   "capability, input-colour ablations", 1, 1, _single(colour_shape, True),
                   "maze"),
        Experiment("keys-chests", "Sec. 3.3 / Fig. 5: keys collected before the last chest, "
                   "extra keys and steps wasted on the test preset (twice as many keys as "
                   "chests) beside the training preset", 1, 1, _keys_chests, "keys-chests"),
        Experiment("agency", "Sec. 3.5 / Table 1: agents vs devices on gridworld trajectories "
                   "(no agent needed)", 0, 0, agency_run),
    )}


def list_experiments() -> list[Experiment]:
    return list(_registry().values())


def get_experiment(name: str) -> Experiment:
    reg = _registry()
    if name not in reg:
        raise ExperimentError(f"unknown experiment {name!r}; choose one of {', '.join(reg)} "
                              "(`interp experiment --list` describes them)")
    return reg[name]


def run_experiment(name: str, checkpoints: Sequence[str | Path], out: str | Path, *,
                   episodes: int | None = None, seed: int = 0, device: str = "cpu",
                   overwrite: bool = False) -> list[Path]:
    """Load the checkpoints and run experiment ``name``; returns the files written to ``out``
    (a folder that must be empty unless ``overwrite``). ``episodes`` (per env / condition;
    trajectories per type for agency) defaults to the experiment's own."""
    exp = get_experiment(name)
    n, lo, hi = len(checkpoints), exp.min_checkpoints, exp.max_checkpoints
    if n < lo or (hi is not None and n > hi):
        raise ExperimentError(f"experiment {name!r} {exp.checkpoint_hint()}, got {n}")
    if episodes is not None and episodes < 1:
        raise ExperimentError(f"episodes must be >= 1 (got {episodes})")
    check_output(out, "dir", overwrite=overwrite)
    device = resolve_device(device)
    agents = [(_label(Path(c)), load_agent(c, device)) for c in checkpoints]
    for _, agent in agents if exp.game else ():
        agent.warn_other_game(exp.game)
    kw = {"seed": seed, "device": device, **({"episodes": episodes} if episodes else {})}
    return exp.run(agents, Path(out), kw)


def _label(path: Path) -> str:
    """A checkpoint's name in tables: its file stem, or its folder's name for a packaged
    ``agent.pt`` (``agents/coinrun-cpu/agent.pt`` -> ``coinrun-cpu``)."""
    return path.parent.name if path.stem == "agent" and path.parent.name else path.stem


__all__ = ["Experiment", "ExperimentError", "get_experiment", "list_experiments",
           "run_experiment"]
