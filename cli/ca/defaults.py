"""The flags every CA command shares (`--ca-url`, `--root`, `--fingerprint`) and their defaults.

As in step, a flag not given on the command line takes its value from the environment
(`STEP_CA_URL`, `STEP_ROOT`, `STEP_FINGERPRINT`) and then from $STEPPATH/config/defaults.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cli.common import CLIError, step_path

CA_URL_HELP = "URI of the targeted Step Certificate Authority."
ROOT_HELP = "The path to the PEM file used as the root certificate authority."


def defaults_path() -> Path:
    """$STEPPATH/config/defaults.json."""
    return step_path() / "config" / "defaults.json"


def load_defaults() -> dict[str, Any]:
    """defaults.json as a dict ({} when absent)."""
    path = defaults_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CLIError(f"error reading {path}: {exc}") from None
    if not isinstance(data, dict):
        raise CLIError(f"error reading {path}: not a JSON object")
    return data


def flag_value(given: str | None, name: str) -> str | None:
    """A flag's value: the command line, else STEP_<NAME>, else defaults.json."""
    if given:
        return given
    env = os.environ.get("STEP_" + name.upper().replace("-", "_"))
    if env:
        return env
    value = load_defaults().get(name)
    return str(value) if value else None


def require_ca_url(given: str | None) -> str:
    """--ca-url or its default; a clear error when there is none."""
    url = flag_value(given, "ca-url")
    if not url:
        raise CLIError("'--ca-url' is required: pass it or run 'step ca bootstrap' first")
    if "://" not in url:
        url = "https://" + url
    return url.rstrip("/")


def require_root(given: str | None) -> Path:
    """--root or its default; the file must exist."""
    root = flag_value(given, "root")
    if not root:
        raise CLIError("'--root' is required: pass it or run 'step ca bootstrap' first")
    path = Path(root).expanduser()
    if not path.is_file():
        raise CLIError(f"open {path}: no such file or directory")
    return path
