"""The repository micro-benchmark runs, on both databases and with every variant (a
benchmark, not a timing test)."""

from __future__ import annotations

import pytest

from bench.db_issue import main


def test_it_reports_every_database_and_variant(capsys: pytest.CaptureFixture[str]) -> None:
    main(
        [
            "--count",
            "8",
            "--repeat",
            "1",
            "--processes",
            "2",
            "--threads",
            "2",
            "--build-us",
            "10",
            "--request-us",
            "10",
            "--variants",
            "raw,group,nolock",
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        [db, variant] for db in ("sqlite", "postgresql") for variant in ("raw", "group", "nolock")
    ]
    assert all("µs/cert" in line for line in lines)
