"""`make bench` runs end to end on a small load (a benchmark, not a timing test: no figure is
asserted beyond being measured)."""

from __future__ import annotations

import json

import pytest

from bench.load import main, parse_scenarios
from bench.profile import top


def test_the_bench_measures_every_figure_on_a_small_load() -> None:
    lines: list[str] = []
    results = main(
        ["--requests", "12", "--warmup", "4", "--clients", "2", "--scenarios", "file+sqlite",
         "--workers", "1"],
        emit=lines.append,
    )
    assert [r.scenario for r in results] == ["file+sqlite"]
    result = results[0]
    assert result.requests_per_second > 0
    assert result.p50_ms <= result.p90_ms <= result.p99_ms
    assert result.cpu_ms_per_cert > 0
    assert result.worker_peak_rss_mb > 0
    assert result.client_cpu_ms_per_cert > 0 and result.machine_busy > 0
    assert 0 <= result.front_ms_per_cert <= result.cpu_ms_per_cert
    assert lines[0].startswith("scenario")
    line = json.loads(lines[-1])
    assert line["results"][0]["scenario"] == "file+sqlite"
    assert line["machine"]["cpus"] >= 1 and line["date"].endswith("Z")


def test_a_scenario_is_store_plus_database() -> None:
    assert [s.label for s in parse_scenarios("pkcs11+postgresql")] == ["pkcs11+postgresql"]
    with pytest.raises(Exception, match="STORE\\+DATABASE"):
        parse_scenarios("file+mysql")


def test_the_profile_report_adds_lines_of_one_function() -> None:
    collapsed = (
        'process 1:"step-ca";a (x.py:1);b (y.py:2) 3\n'
        'process 1:"step-ca";a (x.py:1);b (y.py:9) 1\n'
    )
    report = top(collapsed)
    assert "4 samples" in report
    assert "100.0%  b (y.py)" in report
