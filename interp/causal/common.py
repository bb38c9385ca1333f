"""Shared pieces of the causal commands: run specs (JSON) that pin the agent by SHA-256, and
per-episode outcome arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from interp.causal.spec import SpecError
from interp.envs import EnvSpec, get_variant
from interp.evaluate import MAZE_KEYS, OBJECT_KEYS, maze_outcomes, object_outcomes
from interp.rollout import Episodes, StepTrace
from interp.version import code_version


def write_run_spec(path: Path, kind: str, checkpoint: str | Path, settings: dict) -> Path:
    """``<kind>.json``: the agent (path and SHA-256) and the keyword arguments of the command's
    run function, enough for :func:`interp.causal.commands.rerun` to repeat it exactly."""
    from interp.checkpoint import file_sha256

    path.write_text(json.dumps({"format": f"interp-{kind}", "version": 1,
                                "code_version": code_version(), "agent": str(checkpoint),
                                "agent_sha256": file_sha256(checkpoint),
                                "settings": settings}, indent=1) + "\n")
    return path


def read_run_spec(path: str | Path) -> tuple[str, Path, dict]:
    """(kind, agent path, settings) of a run spec, with the agent's SHA-256 checked."""
    from interp.checkpoint import file_sha256

    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:  # ValueError: not JSON / not text
        raise SpecError(f"cannot read {path}: {e}") from None
    fmt = d.get("format", "") if isinstance(d, dict) else ""
    if not fmt.startswith("interp-") or fmt == "interp-patch" or d.get("version") != 1 \
            or not isinstance(d.get("settings"), dict):
        raise SpecError(f"{path} is not the run spec of a causal command (steer.json, "
                        "retarget.json, resample.json or vector-field.json)")
    agent = Path(d["agent"])
    if not agent.exists():
        raise SpecError(f"{path} names the agent {agent}, which does not exist (run from the "
                        "folder the spec was made in, or fix its 'agent' path)")
    if file_sha256(agent) != d["agent_sha256"]:
        raise SpecError(f"{agent} is not the agent {path} was made with (SHA-256 differs)")
    return fmt.removeprefix("interp-"), agent, d["settings"]


# -- per-episode outcomes of a batched run -------------------------------------------------------
def outcome_keys(spec: EnvSpec) -> tuple[str, ...]:
    """Label keys a run must trace for :func:`outcomes` on this env."""
    v = get_variant(spec.variant)
    keys = set()
    if spec.resolved_options().get("distractor"):
        keys |= set(OBJECT_KEYS)
    elif v.game == "maze" and v.assets is None:
        keys |= set(MAZE_KEYS)
    return tuple(sorted(keys))


OUTCOMES = {  # name -> (label, kind)
    "goal": ("goal reached", "rate"),
    "end_first": ("end reached without the coin", "rate"),
    "corner_first": ("top-right corner first (goal elsewhere)", "rate"),
    "goal_first": ("goal first", "rate"),
    "distractor_first": ("distractor first (object first)", "rate"),
    "return": ("return", "mean"),
    "length": ("episode length", "mean"),
}


def outcomes(ep: Episodes, spec: EnvSpec, trace: StepTrace | None) -> dict[str, np.ndarray]:
    """Per-episode outcomes (conditions, envs * episodes), NaN where undefined (an episode not
    played; corner first when the goal is in the corner)."""
    G, E, K = ep.valid.shape
    game = get_variant(spec.variant).game
    out = {}

    def blank() -> np.ndarray:
        return np.full((G, E, K), np.nan)

    success = ep.metrics["success"] > 0
    out["goal"] = np.where(ep.valid, success, np.nan)
    if game == "coinrun":
        out["end_first"] = np.where(ep.valid, (ep.metrics["reached_end"] > 0) & ~success, np.nan)
    keys = set(outcome_keys(spec))
    if keys >= set(OBJECT_KEYS) and trace is not None:
        out["goal_first"], out["distractor_first"] = blank(), blank()
        for g in range(G):
            o = object_outcomes(ep, trace, g)
            env, k = np.nonzero(ep.valid[g])
            out["goal_first"][g, env, k] = o["goal_first"]
            out["distractor_first"][g, env, k] = o["distractor_first"]
    elif keys >= set(MAZE_KEYS) and trace is not None:
        out["corner_first"] = blank()
        for g in range(G):
            o = maze_outcomes(ep, trace, g)
            if len(o["env"]):
                out["corner_first"][g, o["env"], o["episode"]] = np.where(
                    o["cheese_in_corner"].astype(bool), np.nan, o["corner_first"])
    out["return"] = np.where(ep.valid, ep.metrics["return"], np.nan)
    out["length"] = np.where(ep.valid, ep.metrics["length"], np.nan)
    return {k: v.reshape(G, E * K) for k, v in out.items()}
