"""`step-ca --check CONFIG`: run appliance.check and show its report.

Problems and warnings go to stderr, one line each (`step-ca: ...`, so that a journal or a
script sees each one whole); the summary of a good configuration goes to stdout and fits on
one screen. `--json` prints the whole report as one JSON object on stdout instead.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from appliance.check import CertificateInfo, CheckReport, check_config
from appliance.db.state import DatabaseState

MAX_PROVISIONERS_SHOWN = 10


def run_check(config: Path, password: bytes | None, as_json: bool) -> int:
    """Check `config` and print the report; the exit status: 0 when there is no problem."""
    # Everything worth saying is in the report; keep library log records off the terminal.
    logging.getLogger().addHandler(logging.NullHandler())
    report = check_config(config, password)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        for problem in report.problems:
            typer.echo(f"step-ca: {problem}", err=True)
        for warning in report.warnings:
            typer.echo(f"step-ca: warning: {warning}", err=True)
        if report.ok:
            typer.echo(summary(report))
    return 0 if report.ok else 1


def _certificate(info: CertificateInfo) -> str:
    return f"{info.subject}, expires {info.not_after:%Y-%m-%d %H:%M:%S} UTC"


def _schema(db: DatabaseState) -> str:
    return f"schema {db.revision} ({db.state.value})"


def summary(report: CheckReport) -> str:
    """The configuration at a glance: name, certificates, key store, provisioners, database."""
    rows: list[tuple[str, str]] = [("CA", report.name or "")]
    rows += [("root", _certificate(c)) for c in report.roots]
    rows += [("intermediate", _certificate(c)) for c in report.intermediates]
    if report.key_store:
        where = f" in {report.store}" if report.store else ""
        rows.append(("key store", f"{report.key_store}: {report.key}{where}"))
    if report.secrets:
        rows.append(("secrets", ", ".join(report.secrets)))
    shown = report.provisioners[:MAX_PROVISIONERS_SHOWN]
    rows += [("provisioner", f"{p.name} ({p.type})") for p in shown]
    if len(report.provisioners) > len(shown):
        rows.append(("", f"... and {len(report.provisioners) - len(shown)} more"))
    if not report.provisioners:
        rows.append(("provisioner", "none"))
    db = report.database
    if db is not None:
        rows.append(("database", f"{db.driver} {db.location}, {_schema(db)}"))
    width = max(len(label) for label, _ in rows)
    lines = [f"{report.config_path}: OK"]
    lines += [f"  {label.ljust(width)}  {value}" for label, value in rows]
    return "\n".join(lines)
