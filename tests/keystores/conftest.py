"""Shared fixtures for the key store tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from keystores.file import FileKeyStore

PASSWORD = b"correct horse battery staple"
STEP_TESTDATA = Path("/work/shared/reference/step-ca-testdata")
OPENSSL = "/usr/bin/openssl"

needs_openssl = pytest.mark.skipif(shutil.which(OPENSSL) is None, reason="needs /usr/bin/openssl")
needs_step_testdata = pytest.mark.skipif(
    not STEP_TESTDATA.is_dir(), reason="needs step-ca's testdata in /work/shared/reference"
)


@pytest.fixture
def store(tmp_path: Path) -> FileKeyStore:
    return FileKeyStore(PASSWORD, tmp_path)
