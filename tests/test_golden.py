"""Golden outputs: evaluation, recording, ablation, attribution and the experiments on fixed seeds
give what they gave when ``tests/golden.json`` was written (the code as of issue 23's start),
so that refactoring the episode loop, the envs and the variants cannot change a result unseen.

Discrete outputs (actions, episode outcomes, level seeds, labels, frames) must match exactly;
floating-point outputs (activations, values, effects, intervals) to a relative 1e-6 (CSV cells
have 6 significant digits: 1e-5). Regenerate only for an intended change of outputs, and say so
in the commit: ``.venv/bin/python tests/test_golden.py --regen``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

GOLDEN = Path(__file__).with_name("golden.json")
AGENTS = Path(__file__).resolve().parents[1] / "agents"
COINRUN = AGENTS / "coinrun-cpu" / "agent.pt"
MAZE = AGENTS / "maze-top-right-cpu" / "agent.pt"
COLOUR_SHAPE = AGENTS / "colour-shape-yellow-line" / "agent.pt"
FLOAT_REL, CSV_REL = 1e-6, 1e-5


def fingerprint(a) -> dict:
    """Exact digest of a discrete array; sums (NaN-aware) of a floating-point one."""
    a = np.asarray(a)
    if a.dtype.kind in "biuS" or a.dtype == object:
        data = np.ascontiguousarray(a.astype(str) if a.dtype == object else a)
        return {"shape": list(a.shape), "dtype": str(a.dtype),
                "sha256": hashlib.sha256(data.tobytes()).hexdigest()}
    v = a.astype(np.float64)
    return {"shape": list(a.shape), "nan": int(np.isnan(v).sum()), "sum": float(np.nansum(v)),
            "abs": float(np.nansum(np.abs(v))), "sq": float(np.nansum(v * v))}


def csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def random_agent(path: Path, env_spec: dict, **config) -> Path:
    """A seeded random-init agent saved with its env spec (no trained agent plays keys-chests)."""
    from interp.checkpoint import save_agent
    from interp.models import ImpalaAgent, ModelConfig

    torch.manual_seed(0)
    model = ImpalaAgent(ModelConfig(**config)).eval()
    torch.nn.init.orthogonal_(model.fc_policy.weight, 1.0)  # a policy that depends on the frame
    return save_agent(path, model, env_spec=env_spec, seed=0, steps=0)


# -- the cases: each returns a JSON-ready dict ------------------------------------------------
def case_eval(tmp: Path) -> dict:
    from interp.evaluate import evaluate_agent

    keys = random_agent(tmp / "kc.pt", {"variant": "keys-chests", "distribution_mode": "easy"})
    runs = {
        "coinrun-invisible-coin": (COINRUN, "coinrun-invisible-coin", {}, 60),
        "coinrun-random-coin": (COINRUN, "coinrun-random-coin", {}, None),
        "maze-cheese-region": (MAZE, "maze-cheese-region",
                               {"region_size": 3, "max_maze_size": 9}, 80),
        "colour-shape": (COLOUR_SHAPE, "colour-shape",
                         {"goal": "red-line", "distractor": "yellow-gem"}, 40),
        "keys-chests-test": (keys, "keys-chests-test", {}, 50),
    }
    reports = {name: evaluate_agent(ckpt, env, 8, num_envs=4, seed=3, device="cpu",
                                    options=opts, max_steps=max_steps).to_dict()
               for name, (ckpt, env, opts, max_steps) in runs.items()}
    return {name: {k: v for k, v in r.items() if k != "checkpoint"}  # a path: where it ran
            for name, r in reports.items()}


def case_record(tmp: Path) -> dict:
    from interp.record import record

    out = {}
    for name, ckpt, env, kw in (("coinrun", COINRUN, "coinrun", {}),
                                ("maze-recurrent", random_agent(
                                    tmp / "gru.pt", {"variant": "maze", "distribution_mode": "easy"},
                                    gru_hidden=32), "maze", {"float16": True}),
                                # greedy actions; envs with 2, 2 and 1 episodes
                                ("coinrun-greedy-uneven", COINRUN, "coinrun",
                                 {"greedy": True, "episodes": 5, "num_envs": 3})):
        path = tmp / f"{name}.h5"
        record(ckpt, path, env=env, **{"episodes": 4, "num_envs": 2, "seed": 1,
                                       "device": "cpu", **kw})
        with h5py.File(path) as f:
            data = {}
            f.visititems(lambda n, ds: data.__setitem__(n, fingerprint(ds[...]))
                         if isinstance(ds, h5py.Dataset) and not n.startswith("resume") else None)
            attrs = {k: f.attrs[k] for k in ("layers", "label_docs", "env_spec", "config",
                                             "num_rows", "num_episodes", "schema_version")}
        out[name] = {"datasets": data, "attrs": {k: v.item() if hasattr(v, "item") else v
                                                 for k, v in attrs.items()}}
    return out


def case_ablate(tmp: Path) -> dict:
    from interp.ablate import ablate
    from interp.checkpoint import load_agent

    coinrun = load_agent(COINRUN, "cpu").model
    gru = load_agent(random_agent(tmp / "gru.pt", {"variant": "maze", "distribution_mode": "easy"},
                                  gru_hidden=32), "cpu").model
    runs = {"block2-zero": (coinrun, "coinrun-random-coin", "embedder.block2.res1.resadd",
                            [[0], [3, 5]], "zero"),
            "input-resample": (coinrun, "coinrun", "input", [[0], [1, 2]], "resample"),
            "recurrent-mean": (gru, "maze", "embedder.block3.res2.resadd", [[1], [2]], "mean")}
    out = {}
    for name, (model, env, layer, conds, mode) in runs.items():
        res = ablate(model, env, layer, conds, mode=mode, episodes=8, num_envs=4, seed=2,
                     max_steps=70, frames=24, batch=2)
        ep = res.episodes
        out[name] = {"effects": res.effects, "noise_floor": res.noise_floor,
                     "metrics": {k: fingerprint(v) for k, v in ep.metrics.items()},
                     "level_seed": fingerprint(ep.level_seed), "valid": fingerprint(ep.valid),
                     "truncated": fingerprint(ep.truncated), "kl": fingerprint(res.kl),
                     "dvalue": fingerprint(res.dvalue)}
    return out


def case_attribute(tmp: Path) -> dict:
    from interp.attribute import attribute
    from interp.checkpoint import load_agent

    out = {}
    for name, ckpt, env, method, layer in (
            ("coinrun-gradient", COINRUN, "coinrun", "gradient", None),
            ("maze-gradcam", MAZE, "maze-cheese-top-right", "gradcam",
             "embedder.block2.res2.resadd")):
        res = attribute(load_agent(ckpt, "cpu").model, env, ["value", "action"], method,
                        layer=layer, frames=12, num_envs=4, every=3, seed=1)
        out[name] = {"shares": res.shares, "values": fingerprint(res.values),
                     "obs": fingerprint(res.frames.obs), "actions": fingerprint(res.frames.actions),
                     "labels": {k: fingerprint(v) for k, v in res.frames.labels.items()},
                     "maps": {k: fingerprint(v) for k, v in res.maps.items()},
                     "masks": {k: fingerprint(v) for k, v in res.masks.items()}}
    return out


def case_experiments(tmp: Path) -> dict:
    from interp.experiments import run_experiment

    mix = AGENTS / "coinrun-mix-0.1-cpu" / "agent.pt"
    keys = random_agent(tmp / "kc.pt", {"variant": "keys-chests", "distribution_mode": "easy"})
    runs = {"value-vs-stage": [COINRUN], "permeable-wall": [COINRUN],
            "misgen-rates": [COINRUN, mix], "maze-corner": [MAZE],
            "colour-shape": [COLOUR_SHAPE], "keys-chests": [keys]}
    out = {}
    for name, ckpts in runs.items():
        folder = tmp / name
        paths = run_experiment(name, ckpts, folder, episodes=4, seed=1, device="cpu")
        out[name] = {p.name: csv_rows(p) for p in sorted(paths) if p.suffix == ".csv"}
    return out


CASES = {f.__name__[len("case_"):]: f for f in (case_eval, case_record, case_ablate,
                                                 case_attribute, case_experiments)}


# -- comparison -------------------------------------------------------------------------------
def _number(v):
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return v if isinstance(v, float) else None


def differences(got, want, where: str = "", rel: float = FLOAT_REL) -> list[str]:
    """Where ``got`` differs from ``want``: exact for everything but floats (relative ``rel``;
    numeric CSV cells too)."""
    if isinstance(want, dict) and isinstance(got, dict):
        if set(got) != set(want):
            return [f"{where}: keys {sorted(set(got) ^ set(want))} differ"]
        return [d for k in want for d in differences(got[k], want[k], f"{where}/{k}",
                                                     CSV_REL if k.endswith(".csv") else rel)]
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{where}: {len(got)} items, expected {len(want)}"]
        return [d for i, (g, w) in enumerate(zip(got, want))
                for d in differences(g, w, f"{where}[{i}]", rel)]
    g, w = _number(got), _number(want)
    if isinstance(w, float) and isinstance(g, float) and not isinstance(want, bool):
        if (math.isnan(g) and math.isnan(w)) or math.isclose(g, w, rel_tol=rel, abs_tol=1e-9):
            return []
        return [f"{where}: {got!r}, expected {want!r}"]
    return [] if got == want else [f"{where}: {got!r}, expected {want!r}"]


def _json(obj) -> object:
    """JSON round trip (tuples to lists, numpy scalars to Python, NaN kept)."""
    def plain(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"cannot store {type(o).__name__}")
    return json.loads(json.dumps(obj, default=plain))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_outputs_match_the_golden_file(name, tmp_path):
    want = json.loads(GOLDEN.read_text())[name]
    got = _json(CASES[name](tmp_path))
    problems = differences(got, want, name)
    assert not problems, "\n".join(problems[:20])


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:2] != ["--regen"] or not set(sys.argv[2:]) <= set(CASES):
        sys.exit("usage: python tests/test_golden.py --regen [CASE...]   (rewrites those cases "
                 f"of tests/golden.json, default all; cases: {', '.join(CASES)})")
    torch.set_num_threads(1)  # as the tests run (tests/conftest.py)
    result = json.loads(GOLDEN.read_text()) if sys.argv[2:] else {}
    for name in sys.argv[2:] or CASES:
        fn = CASES[name]
        with tempfile.TemporaryDirectory() as d:
            result[name] = _json(fn(Path(d)))
        print(name, "done", file=sys.stderr)
    GOLDEN.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
