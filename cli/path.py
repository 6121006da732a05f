"""`step path`: print where step keeps its files."""

from __future__ import annotations

import typer

from cli.common import step_path


def path_command(
    base: bool = typer.Option(False, "--base", help="Print the base path (no contexts are used)."),
) -> None:
    """Print the STEPPATH: $STEPPATH, or ~/.step when unset.

    Examples:

      $ step path

      $ STEPPATH=/srv/ca step path
    """
    del base  # without contexts the base path and the current path are the same
    typer.echo(str(step_path()))
