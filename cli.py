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


# ---- agents ------------------------------------------------------------------------------


# ---- train -------------------------------------------------------------------------------


# ---- record ------------------------------------------------------------------------------


if __name__ == "__main__":
    app()
