"""The causal commands as library functions (``interp steer / retarget / resample /
vector-field / rerun``): check the output folder before any work
(:func:`interp.outputs.check_output`, the rule of every command), load the agent, run, write
the report and a run spec (``<command>.json``: the agent's path and SHA-256 and every setting)
that :func:`rerun` repeats exactly."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from interp.causal.common import read_run_spec, write_run_spec
from interp.causal.spec import Patch, PatchSpec, SpecError
from interp.outputs import check_output
from interp.causal.vectors import SteerError


def _agent(checkpoint, env, distribution_mode, options, device):
    from interp.checkpoint import load_agent
    from interp.device import resolve_device
    from interp.rollout import check_agent_env

    dev = resolve_device(device)
    agent = load_agent(checkpoint, dev)
    spec = agent.env_spec(env, distribution_mode, options)
    check_agent_env(agent.model, spec)
    return agent.model, spec, dev


def _env_settings(spec) -> dict:
    return {"env": spec.variant, "distribution_mode": spec.distribution_mode,
            "options": dict(spec.options)}


def probe_channels(probe_dir: str | Path, layer: str, top: int) -> list[int]:
    """The ``top`` channels of a saved probe's channel ranking (``channels.csv``) of ``layer``."""
    probe_dir = Path(probe_dir)
    try:
        meta = json.loads((probe_dir / "run.json").read_text())
        with open(probe_dir / "channels.csv") as f:
            ranked = sorted(csv.DictReader(f), key=lambda r: int(r["rank"]))
    except (OSError, ValueError, KeyError) as e:
        raise SteerError(f"{probe_dir} is not an `interp probe` output folder with a channel "
                         f"ranking ({e})") from None
    if meta.get("best_layer") != layer:
        raise SteerError(f"the probe in {probe_dir} ranked the channels of "
                         f"{meta.get('best_layer')!r}, not {layer!r}")
    if top < 1:
        raise SteerError("--top must be >= 1")
    return [int(r["channel"]) for r in ranked[:top]]


def _channels(channels, probe, layer: str, top: int | None) -> list[int]:
    if (channels is None) == (probe is None):
        raise SteerError("give the channels either with --channels or with --from-probe")
    return list(channels) if channels is not None else probe_channels(probe, layer, top or 4)


# -- steer -------------------------------------------------------------------------------------


def run_steer(checkpoint: str | Path, out: str | Path, *, layer: str | None = None,
              env: str | None = None, distribution_mode: str | None = None,
              options: dict | None = None, obj: str | None = None,
              probe: str | Path | None = None, probe_class: str | None = None,
              patch: str | Path | None = None, pairs: int = 64, coefficients=(-1.0, 1.0),
              random_seed: int = 0, episodes: int = 64, num_envs: int = 32, seed: int = 0,
              max_steps: int | None = None, frames: int = 256, batch: int = 16,
              device: str = "auto", overwrite: bool = False):
    """``interp steer``: the vector from ``obj`` paired observations (levels of env seed
    ``seed + 1``), from a saved ``probe``, or the one add patch of a ``patch`` spec; then
    :func:`~interp.causal.steer.steer`. Writes the report, the vector as ``patch.json`` and
    ``steer.json``. Returns (result, paths)."""
    from interp.ablate import layer_shape
    from interp.causal.steer import steer, sweep
    from interp.causal.vectors import object_vector, probe_vector

    out = check_output(out, "dir", overwrite=overwrite)
    if sum(x is not None for x in (obj, probe, patch)) != 1:
        raise SteerError("give exactly one source for the vector: --object, --from-probe or "
                         "--patch")
    sweep(coefficients)  # bad coefficients fail before any work
    model, spec, dev = _agent(checkpoint, env, distribution_mode, options, device)
    if patch is not None:
        given = PatchSpec.load(patch)
        if len(given.patches) != 1 or given.patches[0].op != "add":
            raise SteerError(f"{patch} must hold exactly one add patch to steer with")
        given.check(model)
        p = given.patches[0]
        if layer is not None and layer != p.layer:
            raise SteerError(f"{patch} steers {p.layer!r}, not --layer {layer!r}")
        layer, vector, source = p.layer, p.vector * p.coefficient, given.source
    elif layer is None:
        raise SteerError("--layer is required with --object or --from-probe")
    elif obj is not None:
        layer_shape(model, layer)  # a bad layer fails before the vector's rollout
        vector, source = object_vector(model, spec, layer, obj, levels=pairs, seed=seed + 1,
                                       device=dev)
    else:
        vector, source = probe_vector(probe, layer, layer_shape(model, layer), probe_class)
    result = steer(model, spec, layer, vector, coefficients, random_seed=random_seed,
                   episodes=episodes, num_envs=num_envs, seed=seed, max_steps=max_steps,
                   frames=frames, batch=batch, device=dev)
    out.mkdir(parents=True, exist_ok=True)
    saved = PatchSpec([Patch(layer, "add", vector=vector)], source).save(out / "patch.json")
    settings = {**_env_settings(spec), "patch": saved.name,
                "coefficients": result.coefficients, "random_seed": random_seed,
                "episodes": episodes, "num_envs": num_envs, "seed": seed,
                "max_steps": max_steps, "frames": frames}
    return result, [write_run_spec(out / "steer.json", "steer", checkpoint, settings), saved,
                    *result.write(out)]


# -- retarget ----------------------------------------------------------------------------------


def run_retarget(checkpoint: str | Path, out: str | Path, *, layer: str,
                 channels: list[int] | None = None, probe: str | Path | None = None,
                 top: int | None = None, env: str | None = None,
                 distribution_mode: str | None = None, options: dict | None = None,
                 targets: list[tuple[int, int]] | None = None, grid: int = 5,
                 value: float | None = None, value_scale: float = 2.0, random_seed: int = 0,
                 episodes: int = 32, num_envs: int = 16, seed: int = 0,
                 max_steps: int | None = None, batch: int = 16, device: str = "auto",
                 overwrite: bool = False):
    """``interp retarget``: :func:`~interp.causal.retarget.retarget` with the channels given or
    the ``top`` of a probe's ranking. Returns (result, paths)."""
    from interp.causal.retarget import retarget

    out = check_output(out, "dir", overwrite=overwrite)
    channels = _channels(channels, probe, layer, top)
    model, spec, dev = _agent(checkpoint, env, distribution_mode, options, device)
    res = retarget(model, spec, layer, channels, targets=targets, grid=grid, value=value,
                   value_scale=value_scale, random_seed=random_seed, episodes=episodes,
                   num_envs=num_envs, seed=seed, max_steps=max_steps, batch=batch, device=dev)
    settings = {**_env_settings(spec), "layer": layer, "channels": list(res.channels),
                "targets": [list(t) for t in res.targets], "value": value,
                "value_scale": value_scale, "random_seed": random_seed, "episodes": episodes,
                "num_envs": num_envs, "seed": seed, "max_steps": max_steps}
    out.mkdir(parents=True, exist_ok=True)
    return res, [write_run_spec(out / "retarget.json", "retarget", checkpoint, settings),
                 *res.write(out)]


# -- resample ----------------------------------------------------------------------------------


def run_resample(checkpoint: str | Path, out: str | Path, *, layer: str,
                 channels: list[int] | None = None, probe: str | Path | None = None,
                 top: int | None = None, env: str | None = None,
                 distribution_mode: str | None = None, options: dict | None = None,
                 match=("goal_x", "goal_y"), frames: int = 1024, num_envs: int = 64,
                 every: int = 10, random_sets: int = 8, seed: int = 0, device: str = "auto",
                 overwrite: bool = False):
    """``interp resample``: :func:`~interp.causal.resample.resample_matched`. Returns
    (result, paths)."""
    from interp.causal.resample import resample_matched

    out = check_output(out, "dir", overwrite=overwrite)
    channels = _channels(channels, probe, layer, top)
    model, spec, dev = _agent(checkpoint, env, distribution_mode, options, device)
    res = resample_matched(model, spec, layer, channels, match=tuple(match), frames=frames,
                           num_envs=num_envs, every=every, random_sets=random_sets, seed=seed,
                           device=dev)
    settings = {**_env_settings(spec), "layer": layer, "channels": list(res.channels),
                "match": list(match), "frames": frames, "num_envs": num_envs, "every": every,
                "random_sets": random_sets, "seed": seed}
    out.mkdir(parents=True, exist_ok=True)
    return res, [write_run_spec(out / "resample.json", "resample", checkpoint, settings),
                 *res.write(out)]


# -- vector fields -----------------------------------------------------------------------------


def run_vector_field(checkpoint: str | Path, out: str | Path, *, env: str | None = None,
                     distribution_mode: str | None = None, options: dict | None = None,
                     levels: int = 4, seed: int = 0, patch: str | Path | None = None,
                     coefficient: float | None = None, device: str = "auto",
                     overwrite: bool = False):
    """``interp vector-field``: fields of ``levels`` levels, and with a ``patch`` spec (its add
    patches scaled to ``coefficient`` if given, e.g. a steer's ``patch.json`` at -1) the
    patched fields and the difference. Returns (fields, paths)."""
    from interp.causal.fields import vector_fields, write_fields

    out = check_output(out, "dir", overwrite=overwrite)
    if coefficient is not None and patch is None:
        raise SpecError("--coefficient scales the add patches of --patch; give --patch")
    if levels < 1:
        raise SpecError("--levels must be >= 1")
    model, spec, _ = _agent(checkpoint, env, distribution_mode, options, device)
    given = None
    if patch is not None:
        given = PatchSpec.load(patch)
        if coefficient is not None:
            given.patches = [p.scaled(coefficient) if p.op == "add" else p
                             for p in given.patches]
        given.check(model)
    fields = vector_fields(model, spec, levels, seed=seed, patch=given)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if given is not None:
        paths.append(given.save(out / "patch.json"))
    settings = {**_env_settings(spec), "levels": levels, "seed": seed,
                "patch": "patch.json" if given is not None else None}
    title = f"{Path(checkpoint).parent.name or checkpoint} on {spec.variant}" + (
        f", patched by {patch}" + (f" at {coefficient:+g}" if coefficient is not None else "")
        if patch is not None else "")
    paths = [write_run_spec(out / "vector-field.json", "vector-field", checkpoint, settings),
             *paths, *write_fields(fields, out, title)]
    return fields, paths


# -- rerun -------------------------------------------------------------------------------------
RUNNERS = {"steer": run_steer, "retarget": run_retarget, "resample": run_resample,
           "vector-field": run_vector_field}


def rerun(spec_path: str | Path, out: str | Path, *, device: str = "auto",
          overwrite: bool = False):
    """Repeat the run a ``<command>.json`` describes (same agent, checked by SHA-256; a steer's
    vector checked by SHA-256; same levels and seeds) into ``out``. Returns (result, paths)."""
    kind, agent, settings = read_run_spec(spec_path)
    if kind not in RUNNERS:
        raise SpecError(f"{spec_path}: no command makes {kind!r} run specs")
    if settings.get("patch"):
        settings["patch"] = Path(spec_path).parent / settings["patch"]
    if Path(out).resolve() == Path(spec_path).parent.resolve():
        raise SpecError("rerun into another --out folder: the spec's own folder holds the "
                        "files it reads")
    return RUNNERS[kind](agent, out, **settings, device=device, overwrite=overwrite)
