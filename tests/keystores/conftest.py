"""Shared fixtures for the key store tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from keystores.file import FileKeyStore
from tests.fixtures import STEP_CA_TESTDATA

PASSWORD = b"correct horse battery staple"
STEP_TESTDATA = STEP_CA_TESTDATA
OPENSSL = "/usr/bin/openssl"


@pytest.fixture
def store(tmp_path: Path) -> FileKeyStore:
    return FileKeyStore(PASSWORD, tmp_path)
