"""`step-ca db upgrade` and `step-ca db status`: the database schema as an explicit step.

`step-ca` itself never creates or alters tables (see appliance.db.schema); these commands do,
from the same ca.json, with no password: the database is all they open. Results go to stdout
(`--json`: one JSON object), errors to stderr in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from appliance.config import CAConfig, ConfigError
from appliance.db.schema import SchemaError, Upgrade, database_state, upgrade
from appliance.db.state import DatabaseState, SchemaState
from cli.common import CLIError, step_path
from cli.helptext import StepTyper

__all__ = ["register"]

db_app = StepTyper(help="The CA's database schema: see where it stands, upgrade it.")

_CONFIG_HELP = "The CA's ca.json (default $(step path)/config/ca.json)."


def register(app: StepTyper) -> None:
    """Add `db upgrade` and `db status` to the `step-ca` operator commands."""
    app.add_typer(db_app, name="db")


def _config(config: Path | None, command: str) -> CAConfig:
    path = config if config is not None else step_path() / "config" / "ca.json"
    try:
        return CAConfig.load(path)
    except ConfigError as exc:
        raise CLIError(f"step-ca db {command}: {exc}") from None


def upgrade_line(res: Upgrade) -> str:
    """What the upgrade did, in one line."""
    where = f"({res.database.location})"
    if not res.changed:
        return f"database schema already at head {res.after} {where}"
    if res.before is None:
        return f"database schema created at {res.after} {where}"
    return f"database schema upgraded from {res.before} to {res.after} {where}"


@db_app.command(name="upgrade")
def upgrade_command(
    config: Path | None = typer.Argument(None, metavar="CONFIG", help=_CONFIG_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Create the database schema, or bring it up to this step-ca's head revision.

    Applies the migrations in one transaction: on PostgreSQL one that fails leaves the
    schema as it was. Run it after installing a new Stepstone and before starting it (the
    Debian package's unit runs it before each start): 'step-ca' never alters the schema
    itself, and refuses to start on one that is not at its head. Several appliances sharing a
    PostgreSQL database: upgrade once, then restart them all (concurrent upgrades wait for
    each other). Run it as the user the CA runs as, so a new SQLite file is theirs. A schema
    made by a newer Stepstone is refused: it cannot be downgraded.

    Examples:

      $ step-ca db upgrade

      $ sudo -u stepstone STEPPATH=/var/lib/stepstone step-ca db upgrade \\
          /var/lib/stepstone/config/ca.json
    """
    cfg = _config(config, "upgrade")
    try:
        res = upgrade(cfg)
    except SchemaError as exc:
        raise CLIError(f"step-ca db upgrade: {exc}") from None
    if json_output:
        typer.echo(json.dumps({"config": str(cfg.path)} | res.to_json(), indent=2))
        return
    typer.echo(upgrade_line(res))


def status_lines(state: DatabaseState, config: Path) -> list[str]:
    """The database, its revision, this build's head, and what to do."""
    problem = state.problem(config)
    if state.state is SchemaState.CURRENT:
        verdict = "not needed"
    elif state.upgrade_needed:
        verdict = f"needed: run 'step-ca db upgrade {config}'"
    else:
        verdict = f"impossible: {problem}"
    rows = [
        ("database", f"{state.driver} {state.location}"),
        ("schema", state.revision or "none"),
        ("head", state.head),
        ("upgrade", verdict),
    ]
    return [f"{label.ljust(8)}  {value}" for label, value in rows]


@db_app.command(name="status")
def status_command(
    config: Path | None = typer.Argument(None, metavar="CONFIG", help=_CONFIG_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Show the database schema's revision, this step-ca's head, and whether to upgrade.

    Reads one row and writes nothing (a SQLite file is opened read-only; a missing one is
    not created). Exits 0 whatever the schema's state; 1 only when the database cannot be
    read.

    Examples:

      $ step-ca db status

      $ step-ca db status /etc/stepstone/config/ca.json --json
    """
    cfg = _config(config, "status")
    try:
        state = database_state(cfg)
    except SchemaError as exc:
        raise CLIError(f"step-ca db status: {exc}") from None
    if json_output:
        out = {"config": str(cfg.path)} | state.to_json()
        typer.echo(json.dumps(out | {"upgradeNeeded": state.upgrade_needed}, indent=2))
        return
    typer.echo("\n".join(status_lines(state, cfg.path)))
