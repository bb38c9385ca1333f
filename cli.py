"""`interp` command line. Each command parses its arguments and calls one library function."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(help="Interpretability for goal misgeneralization in deep RL.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
envs_app = typer.Typer(help="Environments and research variants.", no_args_is_help=True)
agents_app = typer.Typer(help="Agent checkpoints.", no_args_is_help=True)
app.add_typer(envs_app, name="envs")
app.add_typer(agents_app, name="agents")


def _fail(err: Exception) -> None:
    """Print a user-facing error (no traceback) and exit 2."""
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


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
    seed: int = typer.Option(0, help="Env seed (picks the levels)."),
    levels: int = typer.Option(3, min=1, max=16, help="Number of example levels."),
    distribution_mode: str = typer.Option("easy", help="easy or hard."),
    option: Optional[List[str]] = typer.Option(None, "--option", "-o",
                                               help="Variant option KEY=VALUE (repeatable)."),
) -> None:
    """Render example levels of a variant: whole-level overview beside the agent's view."""
    import json

    from interp.envs import EditError, EnvConfigError
    from interp.envs.render import render_variant

    opts = {}
    for item in option or []:
        key, sep, val = item.partition("=")
        if not sep:
            _fail(EnvConfigError(f"--option needs KEY=VALUE, got {item!r}"))
        try:
            opts[key] = json.loads(val)
        except json.JSONDecodeError:
            opts[key] = val
    try:
        path = render_variant(variant, out, seed=seed, levels=levels,
                              distribution_mode=distribution_mode, options=opts)
    except (EnvConfigError, EditError) as err:
        _fail(err)
    typer.echo(str(path))


# ---- agents ------------------------------------------------------------------------------
@agents_app.command("info")
def agents_info(checkpoint: Path = typer.Argument(..., help="Agent checkpoint (.pt).")) -> None:
    """Print what a checkpoint is: architecture, env, seed, steps, code version, metrics."""
    from interp.checkpoint import CheckpointError, describe_agent

    try:
        typer.echo(describe_agent(checkpoint))
    except CheckpointError as err:
        _fail(err)


# ---- train -------------------------------------------------------------------------------
@app.command("train")
def train_cmd(
    config: str = typer.Argument(..., help="Config YAML, or a preset name in configs/train/."),
    out: Path = typer.Option(..., "--out", help="Run directory (checkpoints, logs)."),
    steps: Optional[int] = typer.Option(None, min=1, help="Override run.total_steps."),
    seed: Optional[int] = typer.Option(None, min=0, help="Override run.seed."),
    device: Optional[str] = typer.Option(None, help="Override run.device: auto, cuda or cpu."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly."),
    max_minutes: Optional[float] = typer.Option(
        None, min=0, help="Stop (resumably) before a rollout that would end after M minutes."),
) -> None:
    """Train a PPO agent; Ctrl-C or --max-minutes stop at a rollout boundary, resumably."""
    from interp.checkpoint import CheckpointError
    from interp.envs import EnvConfigError
    from interp.train import ConfigError, load_config, train
    from interp.train.config import resolve_config_path

    try:
        cfg = load_config(resolve_config_path(config)).with_overrides(
            steps=steps, seed=seed, device=device)
        summary = train(cfg, out, resume=resume, max_minutes=max_minutes)
    except (ConfigError, EnvConfigError, CheckpointError) as err:
        _fail(err)
    typer.echo(f"{summary['status']}: {summary['steps']:,} / {summary['total_steps']:,} steps "
               f"in {summary['out_dir']}")



# ---- record ------------------------------------------------------------------------------


if __name__ == "__main__":
    app()
