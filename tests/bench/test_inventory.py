"""The inventory benchmark runs end to end on a small table (a benchmark, not a timing test)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.inventory import main, scenarios


def test_it_fills_and_reports_every_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--rows", "3000", "--repeat", "1", "--db", str(tmp_path / "inv.db")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("filled 3,000 rows in ")
    labels = [label for label, _ in scenarios(datetime.now(UTC), "1")]
    body = lines[1:-1]
    assert [line[:40].rstrip() for line in body] == [*labels, "deep page of expired, admin"]
    assert all(" ms median " in line and " ms worst " in line for line in body)
    assert lines[-1].endswith("pages under 100 ms (3,000 rows)")
    # A full first page where the small table has enough rows for one.
    first = {line[:40].rstrip(): int(line.split(" rows")[0].split()[-1]) for line in body}
    assert first["newest, no filter"] == 50
    assert 0 < first["deep page of expired, admin"] <= 50
    assert first["serial"] == 1
