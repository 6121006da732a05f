"""An in-process CA for the ACME tests: `step ca init`'s layout (JWK provisioner `admin`,
CA password `ca-pw`) with the given provisioners appended to ca.json, opened with STEPPATH
pointing at it for as long as the test module needs it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from appliance.authority import Authority
from appliance.config import CAConfig
from appliance.pki import InitRequest, init_pki

PASSWORD = b"ca-pw"


def acme_ca_json(base: Path, *provisioners: dict[str, Any], **authority: Any) -> Path:
    """A fresh CA under `base`; `provisioners` appended, `authority` fields set; its ca.json."""
    init_pki(InitRequest(base, "ACME", ["127.0.0.1"], "127.0.0.1:9", "admin", PASSWORD,
                         b"prov-pw"))  # fmt: skip
    path = base / "config" / "ca.json"
    cfg = json.loads(path.read_text())
    cfg["authority"]["provisioners"] += list(provisioners)
    cfg["authority"].update(authority)
    path.write_text(json.dumps(cfg))
    return path


@contextmanager
def steppath(base: Path) -> Iterator[Path]:
    """STEPPATH set to `base` meanwhile."""
    mp = pytest.MonkeyPatch()
    mp.setenv("STEPPATH", str(base))
    try:
        yield base
    finally:
        mp.undo()


@contextmanager
def acme_authority(base: Path, *provisioners: dict[str, Any]) -> Iterator[Authority]:
    """The opened authority of :func:`acme_ca_json`, STEPPATH set meanwhile."""
    with steppath(base):
        yield Authority.open(CAConfig.load(acme_ca_json(base, *provisioners)), password=PASSWORD)
