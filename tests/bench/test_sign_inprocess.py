"""The in-process signing micro-benchmark runs (a benchmark, not a timing test)."""

from __future__ import annotations

import pytest

from bench.sign_inprocess import main


@pytest.mark.parametrize("flags", [[], ["--no-db"]])
def test_it_measures_every_round(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    figures = main(["--count", "3", "--rounds", "2", *flags])
    assert len(figures) == 2 and all(f > 0 for f in figures)
    assert "µs of CPU per certificate" in capsys.readouterr().out
