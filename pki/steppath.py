"""Where step keeps its files ($STEPPATH) and how relative paths in configs resolve against it."""

from __future__ import annotations

import os
from pathlib import Path


def step_path() -> Path:
    """$STEPPATH, defaulting to ~/.step as step does."""
    env = os.environ.get("STEPPATH")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".step"


def resolve(path: str, base: Path | None = None) -> Path:
    """Resolve a config path as step does: `~/` expands, relative paths hang off the step path."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    return (base if base is not None else step_path()) / p
