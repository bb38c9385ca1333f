"""Shared pieces of the causal commands: run specs (JSON) that pin the agent by SHA-256, and
per-episode outcome arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from interp.causal.spec import SpecError
from interp.envs import EnvSpec, list_variants
from interp.envs.base import Measure
from interp.envs.registry import get_game
from interp.evaluate import outcome_columns
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
BASE_OUTCOMES = (Measure("goal", "goal reached"), Measure("return", "return", "mean"),
                 Measure("length", "episode length", "mean"))


def outcome_measure(name: str) -> Measure | None:
    """The :class:`~interp.envs.base.Measure` of an outcome :func:`outcomes` can give (its
    label and kind), from the base outcomes and every registered variant's families."""
    families = (f for v in list_variants() for f in get_game(v.game).outcomes + v.outcomes)
    return next((m for m in (*BASE_OUTCOMES, *(e for f in families for e in f.effects))
                 if m.name == name), None)


def outcomes(ep: Episodes, spec: EnvSpec, trace: StepTrace | None) -> dict[str, np.ndarray]:
    """Per-episode outcomes (conditions, envs * episodes), NaN where undefined (an episode not
    played; corner first when the goal is in the corner): ``goal``, the effects of the spec's
    outcome families (those that need a trace only with ``trace``), ``return``, ``length``."""
    G, E, K = ep.valid.shape
    out = {"goal": np.where(ep.valid, ep.metrics["success"] > 0, np.nan)}
    for family in spec.outcomes():
        if not family.effects or (family.trace_keys and trace is None):
            continue
        for e in family.effects:
            out[e.name] = np.full((G, E, K), np.nan)
        for g in range(G):
            cols = outcome_columns(family, ep, trace, g)
            env, k = (cols["env"], cols["episode"]) if "env" in cols else np.nonzero(ep.valid[g])
            if len(env):
                for e in family.effects:
                    out[e.name][g, env, k] = cols[e.column or e.name]
    out["return"] = np.where(ep.valid, ep.metrics["return"], np.nan)
    out["length"] = np.where(ep.valid, ep.metrics["length"], np.nan)
    return {k: v.reshape(G, E * K) for k, v in out.items()}
