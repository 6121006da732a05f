"""`step-ca backup` and `step-ca restore`: the operator's side of `appliance.backup`.

Progress and the summary go to stderr for people (step's `✔ Name: value` lines); `--json`
prints one JSON object on stdout for programs and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from appliance.backup import MANIFEST, BackupError, BackupResult
from appliance.backup import backup as run_backup
from appliance.config import CAConfig, ConfigError
from appliance.restore import RestoreResult
from appliance.restore import restore as run_restore
from cli.ca import ui
from cli.common import CLIError, os_error_line, step_path
from cli.helptext import StepTyper

__all__ = ["backup", "register", "restore"]

_SECRETS_NOTE = (
    "Not in the backup: passwords and PINs (the --password-file, pin-source files, systemd "
    "credentials): keep them apart from it."
)


def register(app: StepTyper) -> None:
    """Add `backup` and `restore` to the `step-ca` operator commands."""
    app.command(name="backup")(backup)
    app.command(name="restore")(restore)


def _progress(quiet: bool) -> Any:
    return (lambda _: None) if quiet else (lambda text: ui.note(f"{text}..."))


def _key_line(key: dict[str, Any]) -> tuple[str, str]:
    name = f"{str(key['role']).capitalize()} key"
    if key.get("copied"):
        how = "encrypted" if key.get("encrypted") else "NOT encrypted"
        return name, f"{key['path']} (file, {how})"
    return name, (
        f"NOT copied: {key['key']} lives in the {key['store']} key store "
        f"{key['store_uri']}; HSM and YubiKey keys are never exported"
    )


def _database(db: dict[str, Any]) -> None:
    """One line on the database: its copy, or why it is not in the backup."""
    if not db.get("included"):
        ui.note(f"⚠️  Database: {db['type']}: {db['note']}")
        return
    counts = [f"{db[k]} {k}" for k in ("certificates", "revoked") if db.get(k) is not None]
    ui.selected("Database", ", ".join([f"SQLite {db['path']}", *counts]))


def _report_backup(res: BackupResult) -> None:
    manifest = res.manifest
    ui.selected("Backup", str(res.dest))
    ui.selected("Files", f"{len(manifest['files'])} (SHA-256 sums in {MANIFEST})")
    _database(manifest["database"])
    record = manifest.get("ceremony_record")
    if record is None:
        ui.note("⚠️  Ceremony record: none found")
    elif "error" in record:
        ui.note(f"⚠️  Ceremony record: {record['path']} copied, but its chain is broken: "
                f"{record['error']}")
    else:
        ui.selected(
            "Ceremony record",
            f"{record['path']} ({record['entries']} entries, head {record['head_sha256']})",
        )
    for key in manifest["keys"]:
        name, value = _key_line(key)
        if key.get("copied") and key.get("encrypted"):
            ui.selected(name, value)
        else:
            ui.note(f"⚠️  {name}: {value}")
    for skipped in manifest["not_copied"]:
        ui.note(f"⚠️  Not copied: {skipped['source']} ({skipped['reason']})")
    ui.selected("Manifest SHA-256", f"{res.manifest_sha256} (write it down)")
    ui.note(_SECRETS_NOTE)


def backup(
    dest: Path = typer.Argument(
        ..., metavar="DEST", help="The directory to create for the backup (0700)."
    ),
    config: Path | None = typer.Argument(
        None, metavar="CONFIG", help="The CA's ca.json (default $(step path)/config/ca.json)."
    ),
    record: Path | None = typer.Option(
        None, "--record", help="The ceremony record (default $STEPPATH/ceremony/record.jsonl)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Write into DEST even when it is not empty."
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print the result (with the manifest) as JSON on stdout."
    ),
) -> None:
    """Back up the CA, online: database, configuration, certificates, file keys.

    Copies into DEST, a new directory (0700, every file 0600): the SQLite database with
    SQLite's online backup API (the CA may keep running and signing: the copy is one
    consistent snapshot), $STEPPATH's config/, certs/ and templates/, the key files in
    secrets/ (encrypted at rest, copied as they are), the ceremony record, and any file
    CONFIG names outside $STEPPATH (under external/). manifest.json, written last, holds the
    SHA-256 of every file and says where each key of CONFIG lives.

    Never copied: a key held in an HSM or a YubiKey (the manifest names its key store), and
    passwords and PINs. A PostgreSQL database is not included: back it up with pg_dump.

    'step-ca restore DEST' puts a backup back. See docs/backup.md.

    Examples:

      $ step-ca backup /srv/backups/ca-$(date +%F)

      $ step-ca backup /media/usb/ca /etc/stepstone/config/ca.json --json

      $ sudo -u stepstone STEPPATH=/var/lib/stepstone step-ca backup /var/backups/stepstone/today
    """
    path = config if config is not None else step_path() / "config" / "ca.json"
    try:
        cfg = CAConfig.load(path)
        res = run_backup(cfg, dest, force=force, record=record, progress=_progress(json_output))
    except (ConfigError, BackupError) as exc:
        raise CLIError(f"step-ca backup: {exc}") from None
    except OSError as exc:
        raise CLIError(f"step-ca backup: {os_error_line(exc)}") from None
    if json_output:
        out = {"backup": str(res.dest), "manifest_sha256": res.manifest_sha256}
        typer.echo(json.dumps(out | {"manifest": res.manifest}, indent=2))
        return
    _report_backup(res)


def _report_restore(res: RestoreResult) -> None:
    manifest = res.manifest
    ui.selected("Verified", f"{len(manifest['files'])} files against {MANIFEST}")
    ui.selected("Restored", f"{res.steppath} (files 0600, folders 0700)")
    for target in res.files:
        if not target.is_relative_to(res.steppath):
            ui.selected("Restored outside STEPPATH", str(target))
    if res.moved:
        moved = ", ".join(str(p.relative_to(res.steppath)) for p in res.moved)
        ui.selected("Paths moved", f"from {manifest['steppath']} in {moved}")
    _database(manifest["database"])
    for key in res.keys_elsewhere:
        ui.note(
            f"⚠️  {str(key['role']).capitalize()} key: not in the backup: {key['key']} lives "
            f"in the {key['store']} key store {key['store_uri']}: it must be reachable"
        )
    for skipped in manifest["not_copied"]:
        ui.note(f"⚠️  Not in the backup: {skipped['source']} ({skipped['reason']}): "
                "put it back by hand if the CA needs it")
    ui.selected("Configuration", str(res.config))
    env = "" if res.steppath == step_path().absolute() else f"STEPPATH={res.steppath} "
    ui.note(f"\nStart the CA: {env}step-ca {res.config} --password-file FILE")


def restore(
    src: Path = typer.Argument(..., metavar="SRC", help="A backup made by 'step-ca backup'."),
    steppath: Path | None = typer.Option(
        None, "--steppath", metavar="DIR", help="Where to restore (default $(step path))."
    ),
    force: bool = typer.Option(
        False, "--force", help="Restore even when the target is not empty (files replaced)."
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print the result as JSON on stdout."
    ),
) -> None:
    """Restore a backup made by 'step-ca backup' onto an empty box.

    Checks every file of SRC against the SHA-256 sums and sizes of its manifest.json first:
    a damaged, truncated or altered backup is refused, naming the file, and nothing is
    written. Then puts the files back under the target STEPPATH (which must be empty, unless
    '--force'), files 0600 in folders 0700; files backed up from outside STEPPATH go back to
    their own paths. Restored to another STEPPATH than the one backed up, the paths in
    config/ca.json and config/defaults.json are moved to the new one.

    Keys held in an HSM or a YubiKey were never in the backup: the device must be reachable
    again, and PIN and password files put back by hand. Restore as the user the CA runs as.

    Examples:

      $ step-ca restore /srv/backups/ca-2025-01-31

      $ step-ca restore /media/usb/ca --steppath /var/lib/stepstone --json

      $ sudo -u stepstone step-ca restore /var/backups/stepstone/today --steppath /var/lib/stepstone
    """
    target = steppath if steppath is not None else step_path()
    try:
        res = run_restore(src, target, force=force, progress=_progress(json_output))
    except BackupError as exc:
        raise CLIError(f"step-ca restore: {exc}") from None
    except OSError as exc:
        raise CLIError(f"step-ca restore: {os_error_line(exc)}") from None
    if json_output:
        typer.echo(json.dumps(_restore_json(res), indent=2))
        return
    _report_restore(res)


def _restore_json(res: RestoreResult) -> dict[str, Any]:
    manifest = res.manifest
    return {
        "steppath": str(res.steppath),
        "config": str(res.config),
        "files": [str(p) for p in res.files],
        "moved": [str(p) for p in res.moved],
        "from_steppath": manifest["steppath"],
        "database": manifest["database"],
        "keys_not_restored": res.keys_elsewhere,
        "not_copied": manifest["not_copied"],
    }
