"""Tools the tests drive for real (certbot, lego, caddy, OpenSSH, a private pcscd,
PostgreSQL). `make test` installs them (`make system-deps`), so a missing one fails the run
with one line saying so, rather than skipping what it would have tested."""

from __future__ import annotations

import shutil

import pytest


def missing(what: str) -> None:
    """Fail (at collection, or in a fixture) because `what` is missing."""
    pytest.fail(f"{what}: run 'make system-deps'", pytrace=False)


def required(tool: str) -> str:
    """The path of `tool` on PATH."""
    path = shutil.which(tool)
    if path is None:
        missing(f"{tool} is not installed")
    assert path is not None
    return path
