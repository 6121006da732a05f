"""Session fixtures: one CA made by `step ca init`, its server on a free 127.0.0.1 port, a
bootstrapped client STEPPATH, a token maker; and a factory for the few extra servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import CA, PROVISIONER_PASSWORD, CAFactory, ConfigEdit, run_step
from tests.e2e.tokens import TokenMaker


@pytest.fixture(scope="session")
def main_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CA]:
    """The CA most tests share, running for the whole session."""
    ca = CA.init(tmp_path_factory.mktemp("ca-main"))
    ca.start()
    try:
        yield ca
    finally:
        ca.stop()


@pytest.fixture(scope="session")
def http(main_ca: CA) -> Iterator[httpx.Client]:
    """httpx to the shared CA, TLS verified against its root."""
    with main_ca.http() as client:
        yield client


@pytest.fixture(scope="session")
def tokens(main_ca: CA, http: httpx.Client) -> TokenMaker:
    """Tokens of the shared CA's `admin` provisioner."""
    return TokenMaker.fetch(http, PROVISIONER_PASSWORD, main_ca.fingerprint)


@pytest.fixture(scope="session")
def client_steppath(main_ca: CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A client STEPPATH made by `step ca bootstrap --ca-url --fingerprint`."""
    steppath = tmp_path_factory.mktemp("client") / "step"
    run_step(
        ["ca", "bootstrap", "--ca-url", main_ca.url, "--fingerprint", main_ca.fingerprint],
        steppath,
    )
    return steppath


@pytest.fixture(scope="session")
def ca_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CAFactory]:
    """Make (and start) an extra CA, ca.json edited first; all are stopped at the end."""
    made: list[CA] = []

    def make(label: str, edit: ConfigEdit | None = None, start: bool = True) -> CA:
        ca = CA.init(tmp_path_factory.mktemp(f"ca-{label}"))
        made.append(ca)
        if edit is not None:
            ca.edit_config(edit)
        if start:
            ca.start()
        return ca

    try:
        yield make
    finally:
        for ca in made:
            ca.stop()
