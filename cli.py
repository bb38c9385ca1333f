"""`interp` command line. Each command parses its arguments and calls one library function."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import List, Optional

import typer

from interp.errors import InterpError, InterpWarning


def _guarded(command):
    """Every command's error handling: a user error (:class:`InterpError`) is one ``error:``
    line and exit 2, Ctrl-C one line (with what the command left behind, from the exception's
    notes) and exit 130, an :class:`InterpWarning` one ``warning:`` line; no traceback."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("always", InterpWarning)
            default = warnings.showwarning

            def show(message, category, *rest, **kw):
                if issubclass(category, InterpWarning):
                    typer.secho(f"warning: {message}", fg=typer.colors.YELLOW, err=True)
                else:
                    default(message, category, *rest, **kw)
            warnings.showwarning = show
            try:
                return command(*args, **kwargs)
            except InterpError as err:
                typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
                raise typer.Exit(2) from None
            except KeyboardInterrupt as err:
                notes = " ".join(getattr(err, "__notes__", []))
                typer.secho(f"interrupted{': ' + notes if notes else ''}", fg=typer.colors.RED,
                            err=True)
                raise typer.Exit(130) from None
    return run


class _Typer(typer.Typer):
    """A Typer app whose commands all run through :func:`_guarded`."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)
        return lambda fn: register(_guarded(fn))


app = _Typer(help="Interpretability for goal misgeneralization in deep RL.",
             no_args_is_help=True, pretty_exceptions_enable=False)
envs_app = _Typer(help="Environments and research variants.", no_args_is_help=True)
agents_app = _Typer(help="Agent checkpoints.", no_args_is_help=True)
app.add_typer(envs_app, name="envs")
app.add_typer(agents_app, name="agents")
sweep_app = _Typer(help="Populations of agents across training seeds, on Ray (an extra: "
                        "pip install -e '.[sweep]').", no_args_is_help=True)
app.add_typer(sweep_app, name="sweep")


VARIANT_OPTIONS = typer.Option(None, "--option", "-o",
                               help="Variant option KEY=VALUE (repeatable; see `interp envs "
                               "list`).")
NUM_LEVELS = typer.Option(None, min=0, help="Play only level seeds START .. START+N-1 (default: "
                                            "unrestricted, any level seed).")
START_LEVEL = typer.Option(None, min=0, help="First level seed, with --num-levels.")
TRAINING_LEVELS = typer.Option(False, "--training-levels",
                               help="Play the agent's own training levels (its checkpoint's "
                                    "num_levels and start_level).")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace existing results at the output "
                                                     "path.")
MODE_OPTION = typer.Option(None, help="easy, hard, ... (default: the agent's training mode).")
DEVICE_OPTION = typer.Option("auto", help="auto (GPU if available), cpu or cuda.")
SEED_OPTION = typer.Option(0, min=0, help="Env seed (levels) and action-sampling seed.")
NUM_ENVS_OPTION = typer.Option(64, min=1, help="Parallel envs.")


def _outputs(overwrite: bool, **paths: tuple[Optional[Path], str]) -> dict[str, Optional[Path]]:
    """Check every output option before any work (:func:`interp.outputs.check_output`);
    ``paths``: option name -> (path or None, "file" | "dir")."""
    from interp.outputs import OutputError, check_output

    given = {name: p for name, (p, _) in paths.items() if p is not None}
    if len({Path(p).resolve() for p in given.values()}) < len(given):
        raise OutputError(f"{' and '.join('--' + n.replace('_', '-') for n in given)} name "
                          "the same path; give each its own")
    return {name: None if p is None else check_output(p, kind, overwrite=overwrite,
                                                      option="--" + name.replace("_", "-"))
            for name, (p, kind) in paths.items()}


def _options(items: Optional[List[str]]) -> dict:
    """``-o KEY=VALUE`` items as variant options; values are JSON where they parse."""
    import json

    from interp.envs import EnvConfigError

    opts = {}
    for item in items or []:
        key, sep, val = item.partition("=")
        if not sep:
            raise EnvConfigError(f"--option needs KEY=VALUE, got {item!r}")
        try:
            opts[key] = json.loads(val)
        except json.JSONDecodeError:
            opts[key] = val
    return opts


# ---- envs --------------------------------------------------------------------------------
@envs_app.command("list")
def envs_list() -> None:
    """List the environment variants with a one-line description each."""
    from interp.envs import list_variants

    for v in list_variants():
        typer.echo(f"{v.name:32s} {v.description}")


@envs_app.command("show")
def envs_show(
    variant: str = typer.Argument(..., help="Variant name (see `interp envs list`)."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    seed: int = typer.Option(0, min=0, help="Env seed (picks the levels)."),
    levels: int = typer.Option(3, min=1, max=16, help="Number of example levels."),
    distribution_mode: str = typer.Option("easy", help="easy or hard."),
    option: Optional[List[str]] = VARIANT_OPTIONS,
    overwrite: bool = OVERWRITE,
) -> None:
    """Render example levels of a variant: whole-level overview beside the agent's view."""
    from interp.envs.render import render_variant

    path = render_variant(variant, out, seed=seed, levels=levels,
                          distribution_mode=distribution_mode, options=_options(option),
                          overwrite=overwrite)
    typer.echo(str(path))


# ---- agents ------------------------------------------------------------------------------
@agents_app.command("info")
def agents_info(checkpoint: Path = typer.Argument(..., help="Agent checkpoint (.pt).")) -> None:
    """Print what a checkpoint is: architecture, env, seed, steps, code version, metrics; for a
    file trained elsewhere, what was inferred, what is missing and how to supply it."""
    from interp.checkpoint import describe_agent

    typer.echo(describe_agent(checkpoint))


@agents_app.command("import")
def agents_import(
    checkpoint: Path = typer.Argument(..., help="An agent trained elsewhere (.pth/.pt)."),
    env: str = typer.Option(..., "--env", help="The variant it was trained on (see `interp "
                                               "envs list`)."),
    out: Path = typer.Option(..., "--out", help="interp-agent file to write."),
    distribution_mode: Optional[str] = typer.Option(
        None, help="The mode it was trained in: easy, hard, ... (required; never assumed)."),
    option: Optional[List[str]] = VARIANT_OPTIONS,
    num_levels: int = typer.Option(0, min=0, help="Levels it was trained on (0: unrestricted)."),
    start_level: int = typer.Option(0, min=0, help="First level seed it was trained on."),
    steps: Optional[int] = typer.Option(None, min=0, help="Training steps (default: from a "
                                                         "model_<steps>.pth file name)."),
    source: Optional[str] = typer.Option(None, help="Where it comes from (a URL, a paper)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out."),
) -> None:
    """Wrap a foreign checkpoint with the env it was trained on, its steps and provenance
    (source, the original file's sha256), so every command can use it."""
    from interp.checkpoint import describe_agent, import_agent

    path = import_agent(checkpoint, out, env=env, distribution_mode=distribution_mode,
                        options=_options(option), num_levels=num_levels,
                        start_level=start_level, steps=steps, source=source,
                        overwrite=overwrite)
    typer.echo(describe_agent(path))


@agents_app.command("package")
def agents_package(
    run_dir: Path = typer.Argument(..., help="A finished `interp train` run directory."),
    out: Path = typer.Option(..., help="Destination, e.g. agents/<name>."),
    overwrite: bool = typer.Option(False, help="Replace files in a non-empty destination."),
) -> None:
    """Package a finished run as a committed agent: agent.pt, config, log, curve, manifest."""
    from interp.package import package_run

    m = package_run(run_dir, out, overwrite=overwrite)
    typer.echo(f"{out}/agent.pt: {m['steps']:,} steps, seed {m['seed']}, "
               f"{m['bytes'] / 2**20:.1f} MB, sha256 {m['sha256'][:12]}")


# ---- train -------------------------------------------------------------------------------
@app.command("train")
def train_cmd(
    config: str = typer.Argument(..., help="Config YAML, or a preset name in configs/train/."),
    out: Path = typer.Option(..., "--out", help="Run directory (checkpoints, logs)."),
    steps: Optional[int] = typer.Option(None, min=1, help="Override run.total_steps."),
    seed: Optional[int] = typer.Option(None, min=0, help="Override run.seed."),
    device: Optional[str] = typer.Option(None, help="Override run.device: auto, cuda or cpu."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Discard a previous run in --out and start afresh."),
    max_minutes: Optional[float] = typer.Option(
        None, min=0, help="Stop (resumably) before a rollout that would end after M minutes."),
) -> None:
    """Train a PPO agent; Ctrl-C or --max-minutes stop at a rollout boundary, resumably."""
    from interp.train import load_config, train
    from interp.train.config import resolve_config_path

    cfg = load_config(resolve_config_path(config)).with_overrides(
        steps=steps, seed=seed, device=device)
    _outputs(True, out=(out, "dir"))  # writable; what may be replaced is train's to decide
    summary = train(cfg, out, resume=resume, overwrite=overwrite, max_minutes=max_minutes)
    typer.echo(f"{summary['status']}: {summary['steps']:,} / {summary['total_steps']:,} steps "
               f"in {summary['out_dir']}")


# ---- eval --------------------------------------------------------------------------------
@app.command("eval")
def eval_cmd(
    checkpoint: Path = typer.Argument(..., help="Agent checkpoint (.pt)."),
    env: str = typer.Option(..., "--env", help="Env variant (see `interp envs list`)."),
    episodes: int = typer.Option(256, min=1, help="Episodes, split evenly over the envs."),
    seed: int = SEED_OPTION,
    num_envs: int = NUM_ENVS_OPTION,
    device: str = DEVICE_OPTION,
    distribution_mode: Optional[str] = MODE_OPTION,
    option: Optional[List[str]] = VARIANT_OPTIONS,
    num_levels: Optional[int] = NUM_LEVELS,
    start_level: Optional[int] = START_LEVEL,
    training_levels: bool = TRAINING_LEVELS,
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the table here (.md)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the metrics as "
                                                                 "JSON here."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Evaluate an agent: success, return, length and the variant's misgeneralization metrics
    with 95% intervals, on the first episodes of every env."""
    import json

    from interp.evaluate import evaluate_agent

    paths = _outputs(overwrite, out=(out, "file"), json=(json_out, "file"))
    report = evaluate_agent(checkpoint, env, episodes, seed=seed, num_envs=num_envs,
                            device=device, distribution_mode=distribution_mode,
                            options=_options(option), num_levels=num_levels,
                            start_level=start_level, training_levels=training_levels)
    typer.echo(report.markdown())
    for path, text in ((paths["out"], report.markdown() + "\n"),
                       (paths["json"], json.dumps(report.to_dict(), indent=2) + "\n")):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            typer.echo(str(path))


# ---- record ------------------------------------------------------------------------------
@app.command("record")
def record_cmd(
    checkpoint: Path = typer.Argument(..., help="Agent checkpoint (.pt)."),
    out: Path = typer.Option(..., "--out", help="HDF5 file to write."),
    env: Optional[str] = typer.Option(
        None, help="Env variant (default: the agent's training env)."),
    episodes: Optional[int] = typer.Option(
        None, min=1, help="Episodes to record, split evenly over envs (with --append: to add)."),
    layers: Optional[List[str]] = typer.Option(
        None, "--layers", help="Layer names or globs, repeatable (default: block and residual "
        "outputs, relufc, fc_policy, fc_value)."),
    num_envs: Optional[int] = typer.Option(None, min=1, help="Parallel envs (default 64)."),
    seed: Optional[int] = typer.Option(
        None, min=0, help="Env and action-sampling seed (default 0)."),
    device: str = DEVICE_OPTION,
    float16: Optional[bool] = typer.Option(None, "--float16", help="Store activations as float16."),
    greedy: Optional[bool] = typer.Option(None, "--greedy", help="Take argmax actions."),
    distribution_mode: Optional[str] = MODE_OPTION,
    option: Optional[List[str]] = VARIANT_OPTIONS,
    num_levels: Optional[int] = NUM_LEVELS,
    start_level: Optional[int] = START_LEVEL,
    training_levels: bool = TRAINING_LEVELS,
    compression: Optional[str] = typer.Option(
        None, help="Compression of activations and observations: none (default; fastest), "
        "gzip or lzf (smaller, slower; lzf needs h5py to read)."),
    resume: bool = typer.Option(False, "--resume", help="Finish an interrupted file."),
    append: bool = typer.Option(False, "--append", help="Add --episodes more to a finished file."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
) -> None:
    """Run an agent and stream activations, observations, actions and labels to HDF5."""
    import shlex
    import sys

    from interp.record import RecordError, record

    if resume + append + overwrite > 1:
        raise RecordError("use at most one of --resume, --append, --overwrite")
    mode = "resume" if resume else "append" if append else "overwrite" if overwrite else "create"
    command = shlex.join(["interp", *sys.argv[1:]])
    summary = record(checkpoint, out, env=env, episodes=episodes, layers=layers,
                     num_envs=num_envs, seed=seed, device=device, float16=float16,
                     greedy=greedy, distribution_mode=distribution_mode,
                     options=_options(option), compression=compression, mode=mode,
                     command=command, progress="record", num_levels=num_levels,
                     start_level=start_level, training_levels=training_levels)
    typer.echo(f"{summary.status}: {summary.episodes} episodes, {summary.rows:,} steps, mean "
               f"return {summary.mean_return:.2f} in {summary.path} ({summary.levels})")


# ---- ablate / attribute ------------------------------------------------------------------
def _agent_env(checkpoint: Path, env: str, distribution_mode: Optional[str], device: str,
               option: Optional[List[str]]):
    """Load the agent and build the env spec, or fail with a clear message."""
    from interp.checkpoint import load_agent
    from interp.rollout import check_agent_env

    agent = load_agent(checkpoint, device)
    model, spec = agent.model, agent.env_spec(env, distribution_mode, _options(option))
    check_agent_env(model, spec)
    return model, spec


def _channel_sets(items: List[str], colours: bool) -> List[List[int]]:
    """'0,3,7' -> [0, 3, 7]; colours: 'R' / 'G+B' / 'r,g' -> channel indices."""
    from interp.ablate import COLOURS, AblationError

    out = []
    for item in items:
        parts = [p.strip() for p in item.replace("+", ",").split(",") if p.strip()]
        if colours and all(p.upper() in COLOURS for p in parts):
            out.append([COLOURS.index(p.upper()) for p in parts])
        elif not colours and all(p.lstrip("-").isdigit() for p in parts):
            out.append([int(p) for p in parts])
        else:
            raise AblationError(f"cannot read {item!r}: give " + (
                "colours R, G, B (e.g. R or G+B)" if colours else "channel numbers (e.g. 0,3,7)"))
    return out


@app.command("ablate")
def ablate_cmd(
    checkpoint: Path = typer.Argument(..., help="Agent checkpoint (.pt)."),
    env: str = typer.Option(..., "--env", help="Env variant (see `interp envs list`)."),
    layer: Optional[str] = typer.Option(None, help="Layer to ablate (hook name)."),
    channels: Optional[List[str]] = typer.Option(
        None, "--channels", help="Channel set, e.g. 0,3,7: one condition per use (repeatable)."),
    all_channels: bool = typer.Option(False, "--all", help="Every channel of the layer alone."),
    input_colour: Optional[List[str]] = typer.Option(
        None, "--input-colour", help="Ablate observation colours: R, G, B or a set like G+B "
                                     "(repeatable)."),
    mode: str = typer.Option("zero", help="zero, mean or resample."),
    episodes: int = typer.Option(32, min=1, help="Episodes per condition (same levels for all)."),
    num_envs: int = typer.Option(16, min=1, help="Envs per condition."),
    seed: int = SEED_OPTION,
    max_steps: Optional[int] = typer.Option(None, min=1, help="Cap on steps (cut episodes are "
                                                              "marked truncated)."),
    frames: int = typer.Option(256, min=1, help="Baseline frames for KL and |Δvalue|."),
    batch: int = typer.Option(16, min=1, help="Conditions per batched rollout."),
    stats: Optional[Path] = typer.Option(None, help="Activation stats file for mean/resample "
                                                   "(default: collected from the agent's play)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write CSV, markdown, PNGs here."),
    rank_by: str = typer.Option("return", help="Metric to rank by (a behaviour metric, kl, "
                                               "dvalue)."),
    distribution_mode: Optional[str] = typer.Option(
        None, help="easy or hard (default: the agent's training mode)."),
    option: Optional[List[str]] = VARIANT_OPTIONS,
    device: str = DEVICE_OPTION,
    overwrite: bool = OVERWRITE,
) -> None:
    """Ablate channels (or input colours) and rank what changes against the unablated agent."""
    from interp.ablate import INPUT, AblationError, ActivationStats, ablate, check_rank_by

    if sum([bool(channels), all_channels, bool(input_colour)]) != 1:
        raise AblationError("give exactly one of --channels, --all, --input-colour")
    if input_colour and layer not in (None, INPUT):
        raise AblationError("--input-colour ablates the observation; leave out --layer")
    if not input_colour and layer is None:
        raise AblationError("--layer is required with --channels / --all (or use "
                            "--input-colour)")
    if stats is not None and mode == "zero":
        raise AblationError("--stats is used by --mode mean or resample; zero ablation "
                            "needs none")
    report = _outputs(overwrite, report=(report, "dir"))["report"]
    model, spec = _agent_env(checkpoint, env, distribution_mode, device, option)
    check_rank_by(spec, rank_by)
    conditions = None if all_channels else _channel_sets(channels or input_colour,
                                                         bool(input_colour))
    result = ablate(model, spec, INPUT if input_colour else layer, conditions, mode=mode,
                    stats=ActivationStats.load(stats) if stats else None, episodes=episodes,
                    num_envs=num_envs, seed=seed, max_steps=max_steps, frames=frames,
                    batch=batch)
    typer.echo(result.markdown(rank_by, top=10))
    for path in result.write_report(report, rank_by) if report else []:
        typer.echo(str(path))


@app.command("attribute")
def attribute_cmd(
    checkpoint: Path = typer.Argument(..., help="Agent checkpoint (.pt)."),
    env: str = typer.Option(..., "--env", help="Env variant (see `interp envs list`)."),
    out: Path = typer.Option(..., "--out", help="Folder for the grid, CSV and plot."),
    target: Optional[List[str]] = typer.Option(
        None, help="value, action, action-logit or logit:K (repeatable; default value and "
                   "action, side by side)."),
    method: str = typer.Option("gradient", help="gradient, saliency, integrated-gradients, "
                                                "input-x-gradient, layer-integrated-gradients, "
                                                "gradcam."),
    layer: Optional[str] = typer.Option(None, help="Layer for layer methods."),
    baseline: str = typer.Option("black", help="black, mean, blur or none (IG methods need "
                                               "one)."),
    frames: int = typer.Option(32, min=1, help="Frames to attribute."),
    every: int = typer.Option(5, min=1, help="Take every n-th step of the agent's play."),
    num_envs: int = typer.Option(8, min=1),
    seed: int = SEED_OPTION,
    n_steps: int = typer.Option(32, min=2, help="Integration steps (IG methods)."),
    grid: int = typer.Option(6, min=1, help="Frames in the overlay grid."),
    distribution_mode: Optional[str] = typer.Option(
        None, help="easy or hard (default: the agent's training mode)."),
    option: Optional[List[str]] = VARIANT_OPTIONS,
    device: str = DEVICE_OPTION,
    overwrite: bool = OVERWRITE,
) -> None:
    """Attribute the critic and the actor to pixels or a layer; Fig. 9 maps and object shares."""
    from interp.attribute import attribute

    out = _outputs(overwrite, out=(out, "dir"))["out"]
    model, spec = _agent_env(checkpoint, env, distribution_mode, device, option)
    result = attribute(model, spec, target or ["value", "action"], method, layer=layer,
                       baseline=baseline, frames=frames, num_envs=num_envs, every=every,
                       seed=seed, n_steps=n_steps)
    for row in result.shares:
        typer.echo(f"{row['object']:10s} uniform {row['uniform']:.3f}  " + "  ".join(
            f"{t} {row[t]:.3f}" for t in result.targets))
    for path in result.write(out, grid=grid):
        typer.echo(str(path))


# ---- causal tests --------------------------------------------------------------------------
ENV_OPTION = typer.Option(None, "--env", help="Env variant (default: the agent's training env).")
CHANNELS_OPTION = typer.Option(None, help="Channels of --layer, e.g. 7,55.")
FROM_PROBE_CHANNELS = typer.Option(None, "--from-probe", help="Take the channels from a probe's "
                                   "ranking (`interp probe --out` folder).")
TOP_OPTION = typer.Option(4, min=1, help="How many of the probe's top channels.")


def _ints(text: str, what: str) -> List[int]:
    """'3,5,7' -> [3, 5, 7], or a clear error."""
    from interp.causal.vectors import SteerError

    parts = [p.strip() for p in text.replace("+", ",").split(",") if p.strip()]
    if not parts or not all(p.lstrip("-").isdigit() for p in parts):
        raise SteerError(f"cannot read {what} {text!r}: give integers like 3,5,7")
    return [int(p) for p in parts]


def _show(result, paths) -> None:
    typer.echo(result.markdown())
    for path in paths:
        typer.echo(str(path))


@app.command("steer")
def steer_cmd(
    checkpoint: Path = typer.Argument(..., help="Agent checkpoint (.pt)."),
    out: Path = typer.Option(..., "--out", help="Folder for the report, patch.json, steer.json."),
    layer: Optional[str] = typer.Option(None, help="Layer to steer (hook name)."),
    obj: Optional[str] = typer.Option(
        None, "--object", help="Build the vector from paired frames with and without this "
        "object (goal: cheese / coin / rewarded object; distractor)."),
    from_probe: Optional[Path] = typer.Option(
        None, "--from-probe", help="Build the vector from an `interp probe --out` folder."),
    probe_class: Optional[str] = typer.Option(None, help="Class to steer towards (multi-class "
                                                         "probes)."),
    patch: Optional[Path] = typer.Option(
        None, "--patch", help="Steer with the add patch of a patch.json (e.g. an earlier run's)."),
    coef: Optional[List[float]] = typer.Option(
        None, "--coef", help="Coefficient (repeatable; default -1 and +1); all in one rollout."),
    pairs: int = typer.Option(64, min=1, help="Levels whose paired frames make the vector."),
    episodes: int = typer.Option(64, min=1, help="Episodes per condition (same levels for all)."),
    num_envs: int = typer.Option(32, min=1, help="Envs per condition."),
    seed: int = typer.Option(0, min=0, help="Env seed of the evaluation levels and action "
                                            "sampling (the vector's levels use seed + 1)."),
    random_seed: int = typer.Option(0, min=0, help="Seed of the random control vector."),
    max_steps: Optional[int] = typer.Option(None, min=1, help="Cap on steps per rollout."),
    frames: int = typer.Option(256, min=0, help="Baseline frames for KL(policy || steered)."),
    batch: int = typer.Option(16, min=1, help="Conditions per batched rollout."),
    env: Optional[str] = ENV_OPTION,
    distribution_mode: Optional[str] = MODE_OPTION,
    option: Optional[List[str]] = VARIANT_OPTIONS,
    device: str = DEVICE_OPTION,
    overwrite: bool = OVERWRITE,
) -> None:
    """Steer an agent with a vector at a layer, against the unsteered agent and a random vector
    of the same norm: behaviour with 95% intervals (docs/causal.md)."""
    from interp.causal.commands import run_steer

    _show(*run_steer(checkpoint, out, layer=layer, env=env,
                     distribution_mode=distribution_mode, options=_options(option), obj=obj,
                     probe=from_probe, probe_class=probe_class, patch=patch, pairs=pairs,
                     coefficients=coef or (-1.0, 1.0), random_seed=random_seed,
                     episodes=episodes, num_envs=num_envs, seed=seed, max_steps=max_steps,
                     frames=frames, batch=batch, device=device, overwrite=overwrite))


@app.command("retarget")
def retarget_cmd(
    checkpoint: Path = typer.Argument(..., help="Agent checkpoint (.pt) of a maze agent."),
    out: Path = typer.Option(..., "--out", help="Folder for the heatmap, CSV, retarget.json."),
    layer: str = typer.Option(..., help="Conv layer whose channels are clamped."),
    channels: Optional[str] = CHANNELS_OPTION,
    from_probe: Optional[Path] = FROM_PROBE_CHANNELS,
    top: int = TOP_OPTION,
    target: Optional[List[str]] = typer.Option(
        None, "--target", help="Target cell X,Y (repeatable; default: a --grid of cells)."),
    grid: int = typer.Option(5, min=1, help="Default targets: grid x grid cells over the mazes."),
    value: Optional[float] = typer.Option(None, help="Clamp value (default: value-scale x the "
                                                     "channels' largest activation)."),
    value_scale: float = typer.Option(2.0, help="See --value."),
    episodes: int = typer.Option(32, min=1, help="Episodes per condition (same levels for all)."),
    num_envs: int = typer.Option(16, min=1, help="Envs per condition."),
    seed: int = SEED_OPTION,
    random_seed: int = typer.Option(0, min=0, help="Seed of the random channel set."),
    max_steps: Optional[int] = typer.Option(None, min=1, help="Cap on steps per rollout."),
    batch: int = typer.Option(16, min=1, help="Conditions per batched rollout."),
    env: Optional[str] = ENV_OPTION,
    distribution_mode: Optional[str] = MODE_OPTION,
    option: Optional[List[str]] = VARIANT_OPTIONS,
    device: str = DEVICE_OPTION,
    overwrite: bool = OVERWRITE,
) -> None:
    """Clamp channels at a target maze cell; how often does the agent go there, against the
    unpatched agent and random channels of the same number."""
    from interp.causal.commands import run_retarget
    from interp.causal.vectors import SteerError

    cells = [tuple(_ints(t, "target cell")) for t in target or []]
    if any(len(c) != 2 for c in cells):
        raise SteerError("--target takes one cell X,Y per use")
    _show(*run_retarget(checkpoint, out, layer=layer,
                        channels=_ints(channels, "channels") if channels else None,
                        probe=from_probe, top=top, env=env,
                        distribution_mode=distribution_mode, options=_options(option),
                        targets=cells or None, grid=grid, value=value,
                        value_scale=value_scale, random_seed=random_seed,
                        episodes=episodes, num_envs=num_envs, seed=seed,
                        max_steps=max_steps, batch=batch, device=device,
                        overwrite=overwrite))


@app.command("resample")
def resample_cmd(
    checkpoint: Path = typer.Argument(..., help="Agent checkpoint (.pt)."),
    out: Path = typer.Option(..., "--out", help="Folder for the table, plot, resample.json."),
    layer: str = typer.Option(..., help="Layer whose channels are resampled."),
    channels: Optional[str] = CHANNELS_OPTION,
    from_probe: Optional[Path] = FROM_PROBE_CHANNELS,
    top: int = TOP_OPTION,
    match: str = typer.Option("goal_x,goal_y", help="Label keys a matched donor level shares."),
    frames: int = typer.Option(1024, min=2, help="Frames of the agent's play."),
    num_envs: int = typer.Option(64, min=1, help="Envs the frames come from."),
    every: int = typer.Option(10, min=1, help="Keep every n-th step."),
    random_sets: int = typer.Option(8, min=0, help="Random channel sets (the control)."),
    seed: int = typer.Option(0, min=0, help="Env seed, donors and random sets."),
    env: Optional[str] = ENV_OPTION,
    distribution_mode: Optional[str] = MODE_OPTION,
    option: Optional[List[str]] = VARIANT_OPTIONS,
    device: str = DEVICE_OPTION,
    overwrite: bool = OVERWRITE,
) -> None:
    """Resample channels from levels that share a feature value vs levels that do not, vs
    random channel sets: how much does the policy move (TV distance, 95% intervals)."""
    from interp.causal.commands import run_resample

    _show(*run_resample(checkpoint, out, layer=layer,
                        channels=_ints(channels, "channels") if channels else None,
                        probe=from_probe, top=top, env=env,
                        distribution_mode=distribution_mode, options=_options(option),
                        match=[k.strip() for k in match.split(",") if k.strip()],
                        frames=frames, num_envs=num_envs, every=every,
                        random_sets=random_sets, seed=seed, device=device,
                        overwrite=overwrite))


@app.command("vector-field")
def vector_field_cmd(
    checkpoint: Path = typer.Argument(..., help="Agent checkpoint (.pt) of a maze agent."),
    out: Path = typer.Option(..., "--out", help="Folder for vector-field.png/.csv/.md."),
    levels: int = typer.Option(4, min=1, max=16, help="Levels (the first of each env)."),
    patch: Optional[Path] = typer.Option(None, "--patch", help="Patch spec (patch.json) to "
                                                               "compare against."),
    coefficient: Optional[float] = typer.Option(None, help="Scale the patch's add patches "
                                                           "(e.g. -1 for a steer's patch.json)."),
    seed: int = typer.Option(0, min=0, help="Env seed (levels)."),
    env: Optional[str] = ENV_OPTION,
    distribution_mode: Optional[str] = MODE_OPTION,
    option: Optional[List[str]] = VARIANT_OPTIONS,
    device: str = DEVICE_OPTION,
    overwrite: bool = OVERWRITE,
) -> None:
    """Policy vector fields: the agent placed on every free cell, its action distribution as
    arrows, decision squares marked; with --patch the patched field and the difference."""
    from interp.causal.commands import run_vector_field

    fields, paths = run_vector_field(checkpoint, out, env=env,
                                     distribution_mode=distribution_mode,
                                     options=_options(option), levels=levels, seed=seed,
                                     patch=patch, coefficient=coefficient, device=device,
                                     overwrite=overwrite)
    typer.echo(paths[-1].read_text())
    for path in paths:
        typer.echo(str(path))


@app.command("rerun")
def rerun_cmd(
    spec: Path = typer.Argument(..., help="steer.json, retarget.json, resample.json or "
                                          "vector-field.json of an earlier run."),
    out: Path = typer.Option(..., "--out", help="Folder for the repeated run."),
    device: str = DEVICE_OPTION,
    overwrite: bool = OVERWRITE,
) -> None:
    """Repeat a causal run exactly from its JSON spec (agent and vectors checked by SHA-256)."""
    from interp.causal.commands import rerun

    result, paths = rerun(spec, out, device=device, overwrite=overwrite)
    if isinstance(result, list):  # vector fields
        typer.echo(paths[-1].read_text())
    else:
        typer.echo(result.markdown())
    for path in paths:
        typer.echo(str(path))


# ---- probe -------------------------------------------------------------------------------
@app.command("probe")
def probe_cmd(
    recording: Optional[Path] = typer.Argument(None, help="Recording (.h5) from `interp record`."),
    feature: Optional[str] = typer.Option(None, "--feature", "-f",
                                          help="Feature to probe (see --list-features)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory for tables and plots."),
    layers: Optional[List[str]] = typer.Option(
        None, "--layers", help="Layer names or globs, repeatable (default: all recorded)."),
    pool: str = typer.Option("flat", help="Probe input: flat (grid-pooled map), mean, max or "
                             "meanmax over HxW."),
    max_dim: int = typer.Option(512, min=1, help="Width cap of a probe input (flat maps are "
                                "pooled to a coarser grid to fit)."),
    folds: int = typer.Option(5, min=3, help="CV folds, grouped by level seed."),
    control: Optional[List[str]] = typer.Option(
        None, "--control", help="Controls, repeatable: shuffled, pixels, random_agent "
        "(default: all three). The majority baseline is always fitted."),
    no_controls: bool = typer.Option(False, "--no-controls", help="Only the majority baseline."),
    random_agent_rows: int = typer.Option(10_000, min=0, help="Rows (whole levels) re-run "
                                          "through the random-init agent."),
    umap_layer: Optional[str] = typer.Option(None, help="Layer for the UMAP (default: best)."),
    no_umap: bool = typer.Option(False, "--no-umap", help="Skip the UMAP plot."),
    n_boot: int = typer.Option(1000, min=1, help="Bootstrap resamples of levels."),
    seed: int = typer.Option(0, min=0, help="Folds, shuffles, random agent, bootstrap, UMAP."),
    features_file: Optional[Path] = typer.Option(
        None, help="Extra feature catalogue (YAML like configs/features.yaml)."),
    list_features: bool = typer.Option(False, "--list-features",
                                       help="List the features and exit."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Where in the network is a feature linearly readable, and by which channels?"""
    from probes import CONTROLS, ProbeError, load_catalogue, run_probe

    if list_features:
        for f in load_catalogue(features_file).values():
            games = ",".join(f.games) or "any"
            typer.echo(f"{f.name:22s} {f.kind[:5]:5s} {games:8s} {f.description}"
                       + (f" (also: {', '.join(f.aliases)})" if f.aliases else ""))
        return
    if recording is None or feature is None or out is None:
        raise ProbeError("give RECORDING, --feature and --out (or --list-features)")
    out = _outputs(overwrite, out=(out, "dir"))["out"]
    res = run_probe(recording, feature, layers, features_file=features_file,
                    log=lambda msg: typer.echo(msg, err=True), pool=pool, max_dim=max_dim,
                    folds=folds, controls=() if no_controls else tuple(control or CONTROLS),
                    random_agent_rows=random_agent_rows, umap=not no_umap,
                    umap_layer=umap_layer, n_boot=n_boot, seed=seed)
    paths = res.save(out)
    best = res.score("agent", res.best_layer)
    typer.echo(f"best layer {res.best_layer}: {res.metric} {best.value:.3f} "
               f"[{best.lo:.3f}, {best.hi:.3f}]")
    for path in paths:
        typer.echo(str(path))


# ---- goals -------------------------------------------------------------------------------
@app.command("goals")
def goals_cmd(
    checkpoint: Path = typer.Argument(..., help="Agent checkpoint (.pt)."),
    env: str = typer.Option(..., "--env", help="Env variant (maze, coinrun or keys-chests "
                                               "variants)."),
    out: Path = typer.Option(..., "--out", help="Folder for CSV, PNG and summary.md."),
    episodes: int = typer.Option(256, min=1, help="Agent episodes, the first ones of every env."),
    goal: Optional[List[str]] = typer.Option(
        None, "--goal", help="Add a candidate goal: a goal name (e.g. corner, cheese, coin, end, "
                             "yellow-gem, keys) or a cell as cell:X,Y (repeatable)."),
    no_default_goals: bool = typer.Option(False, "--no-default-goals",
                                          help="Only the --goal candidates."),
    controls: int = typer.Option(64, min=0, help="Episodes of each control (a scripted agent per "
                                                 "goal and a random agent; 0: none)."),
    control_noise: float = typer.Option(0.3, min=0, max=1, help="Random-action rate of the "
                                                                "scripted agents."),
    maps: int = typer.Option(4, min=0, help="Example episodes with a posterior map over cells "
                                            "(mazes)."),
    seed: int = SEED_OPTION,
    num_envs: int = NUM_ENVS_OPTION,
    max_steps: Optional[int] = typer.Option(None, min=1, help="Cap on vectorized steps."),
    device: str = DEVICE_OPTION,
    distribution_mode: Optional[str] = MODE_OPTION,
    option: Optional[List[str]] = VARIANT_OPTIONS,
    num_levels: Optional[int] = NUM_LEVELS,
    start_level: Optional[int] = START_LEVEL,
    training_levels: bool = TRAINING_LEVELS,
    overwrite: bool = OVERWRITE,
) -> None:
    """Which goal does the agent pursue? Posterior over candidate goals and "no goal" per
    episode (inverse planning), shares of episodes with 95% intervals, controls, maps."""
    from interp.goals import infer_goals

    try:
        paths = infer_goals(checkpoint, env, out, episodes=episodes, goals=goal or (),
                            default_goals=not no_default_goals, seed=seed, num_envs=num_envs,
                            device=device, distribution_mode=distribution_mode,
                            options=_options(option), num_levels=num_levels,
                            start_level=start_level, training_levels=training_levels,
                            max_steps=max_steps, maps=maps, controls=controls,
                            control_noise=control_noise, overwrite=overwrite)
    except KeyboardInterrupt as err:
        err.add_note(f"nothing was written to {out} (it is written at the end): run the command "
                     "again")
        raise
    for path in paths:
        typer.echo(str(path))


# ---- experiment --------------------------------------------------------------------------
@app.command("experiment")
def experiment_cmd(
    name: Optional[str] = typer.Argument(None, help="Experiment (see --list)."),
    checkpoints: Optional[List[Path]] = typer.Argument(None, help="Agent checkpoint(s) (.pt)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for CSV, PNG, summary.md."),
    episodes: Optional[int] = typer.Option(
        None, min=1, help="Episodes per condition, the first ones of every env (agency: "
                          "trajectories per type); default: the experiment's own."),
    seed: int = SEED_OPTION,
    device: str = DEVICE_OPTION,
    list_: bool = typer.Option(False, "--list", help="List the experiments and exit."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Run one of the papers' experiments: `interp experiment NAME [CKPT...] --out DIR`."""
    from interp.experiments import ExperimentError, list_experiments, run_experiment

    if list_:
        for e in list_experiments():
            typer.echo(f"{e.name:16s} {e.description} ({e.checkpoint_hint()})")
        return
    if name is None or out is None:
        raise ExperimentError("give NAME and --out DIR (or --list)")
    paths = run_experiment(name, checkpoints or [], out, episodes=episodes, seed=seed,
                           device=device, overwrite=overwrite)
    for path in paths:
        typer.echo(str(path))


# ---- sweep -------------------------------------------------------------------------------
@sweep_app.command("train")
def sweep_train_cmd(
    config: str = typer.Argument(..., help="Config YAML, or a preset name in configs/train/."),
    seeds: str = typer.Option(..., "--seeds", help="Training seeds: 0-7, 0,3,5 or 0-3,10-11."),
    out: Path = typer.Option(..., "--out", help="Sweep folder (runs, agents, logs)."),
    steps: Optional[int] = typer.Option(None, min=1, help="Override run.total_steps."),
    device: Optional[str] = typer.Option(None, help="Override run.device: auto, cuda or cpu."),
    address: Optional[str] = typer.Option(
        None, help="Ray cluster to join (auto, HOST:PORT, ray://HOST:PORT); default: a local "
                   "Ray instance on this machine."),
    cpus_per_agent: int = typer.Option(1, min=1, help="CPUs (torch and Procgen threads) per "
                                                      "agent."),
    gpus_per_agent: float = typer.Option(0.0, min=0, help="GPUs per agent (a fraction shares "
                                                          "one)."),
    max_minutes: Optional[float] = typer.Option(
        None, min=0, help="Stop the whole sweep (resumably) after M minutes."),
) -> None:
    """Train one agent per seed as Ray tasks and package each; rerun to resume."""
    from interp.sweep import parse_seeds, require_ray, sweep_train
    from interp.train import load_config
    from interp.train.config import resolve_config_path

    require_ray()
    cfg = load_config(resolve_config_path(config)).with_overrides(steps=steps, device=device)
    _outputs(True, out=(out, "dir"))  # writable; a sweep folder is resumed, not replaced
    try:
        state = sweep_train(cfg, parse_seeds(seeds), out, address=address,
                            cpus_per_agent=cpus_per_agent, gpus_per_agent=gpus_per_agent,
                            max_minutes=max_minutes)
    except KeyboardInterrupt as err:
        err.add_note("runs keep their last checkpoint: rerun the same command to resume")
        raise
    done = [s for s, v in state.items() if v["status"] == "packaged"]
    failed = [s for s, v in state.items() if v["status"] == "failed"]
    typer.echo(f"{len(done)} of {len(state)} agent(s) packaged in {out / 'agents'}")
    if failed:
        typer.secho(f"error: seed(s) {', '.join(map(str, failed))} failed (see "
                    f"{out / 'sweep.json'} and {out / 'logs'}); fix the cause and rerun the same "
                    "command: packaged seeds are skipped", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    if len(done) < len(state):
        typer.echo("not finished: rerun the same command to resume")


@sweep_app.command("eval")
def sweep_eval_cmd(
    folder: Path = typer.Argument(..., help="Sweep folder, or any folder of agents (*/agent.pt, "
                                            "*.pt)."),
    env: List[str] = typer.Option(
        ..., "--env", "-o", "--option",
        help="Test setting: --env VARIANT followed by its options -o KEY=VALUE; repeat --env "
             "for more settings."),
    episodes: int = typer.Option(256, min=1, help="Episodes per agent and setting, split evenly "
                                                 "over the envs."),
    seed: int = typer.Option(0, min=0, help="Env seed (levels) and action-sampling seed, the "
                                            "same for every agent."),
    num_envs: int = typer.Option(64, min=1, help="Parallel envs per task."),
    distribution_mode: Optional[str] = typer.Option(
        None, help="easy, hard, ... (default: each agent's training mode, else easy)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default "
                                                          "FOLDER/eval)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an evaluation there."),
    address: Optional[str] = typer.Option(None, help="Ray cluster to join; default: local."),
    cpus_per_task: int = typer.Option(1, min=1, help="CPUs (torch threads) per task."),
    gpus_per_task: float = typer.Option(0.0, min=0, help="GPUs per task (evaluates on cuda)."),
) -> None:
    """Evaluate every agent of a folder on every setting (Ray tasks) into population.csv."""
    from interp.sweep import parse_settings, require_ray, sweep_eval

    require_ray()
    _outputs(True, out=(out, "dir"))  # writable; what may be replaced is sweep eval's to decide
    try:
        path = sweep_eval(folder, parse_settings(env), episodes, seed=seed, num_envs=num_envs,
                          distribution_mode=distribution_mode, out=out, overwrite=overwrite,
                          address=address, cpus_per_task=cpus_per_task,
                          gpus_per_task=gpus_per_task)
    except KeyboardInterrupt as err:
        err.add_note("finished pairs are kept: rerun the same command to finish")
        raise
    typer.echo(str(path))


@sweep_app.command("report")
def sweep_report_cmd(
    source: Path = typer.Argument(..., help="Output of `interp sweep eval` (its folder, its "
                                            "population.csv, or the sweep folder)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder (default: report/ "
                                                          "beside population.csv)."),
    alpha: float = typer.Option(0.05, help="False-discovery rate of the outlier tests."),
    examples: int = typer.Option(3, min=0, help="Example episodes per outlier (0: none)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a report there."),
    device: str = typer.Option("cpu", help="Device for the example trajectories."),
) -> None:
    """Population report: preference vs capability, distributions across seeds, outlier seeds
    (a stated test with FDR control) with example trajectories. Needs no Ray."""
    from interp.sweep import population_report

    _outputs(True, out=(out, "dir"))  # writable; report.md is replaced only with --overwrite
    paths = population_report(source, out, alpha=alpha, examples=examples,
                              overwrite=overwrite, device=device)
    for path in paths:
        typer.echo(str(path))


# ---- summary -----------------------------------------------------------------------------
@app.command("summary")
def summary_cmd(
    agent: str = typer.Argument(..., help="The agent the inputs were made with (named on the page)."),
    eval_: Optional[List[Path]] = typer.Option(None, "--eval", help="`interp eval --json` file "
                                                                    "(repeatable)."),
    probe: Optional[List[Path]] = typer.Option(None, "--probe", help="`interp probe --out` "
                                                                     "folder (repeatable)."),
    out: Path = typer.Option(..., "--out", help="Folder for summary.md and summary.png."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing summary."),
) -> None:
    """One page: what the agent pursues (rates with 95% CIs) and the layers where a goal
    feature is readable beyond the random-init and pixel controls."""
    from interp.summary import summarize

    typer.echo(str(summarize(agent, eval_ or [], probe or [], out, overwrite)))


if __name__ == "__main__":
    app()
