"""appliance.logs: one line per record in both formats, whatever the client sent; `quiet`
keeps warnings and errors only."""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Iterator

import pytest

from appliance.logs import REQUEST_ID, configure, escape
from tests.logging_state import root_logging_restored

FORGED = "GET /root/abc\n2020-01-01 FORGED-LINE"


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    """configure()'s stream; the root logger and warning capture restored afterwards."""
    with root_logging_restored():
        yield io.StringIO()


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


@pytest.mark.parametrize(
    "raw,escaped",
    [
        ("a\nb", "a\\nb"),
        ("a\rb", "a\\rb"),
        ("a\x00b", "a\\x00b"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("del\x7f", "del\\x7f"),
        ("nel\x85", "nel\\x85"),
        ("ls\u2028ps\u2029", "ls\\u2028ps\\u2029"),
        ("tab\tx", "tab\\tx"),
        ("plain /root/{sha} é", "plain /root/{sha} é"),
    ],
)
def test_escape(raw: str, escaped: str) -> None:
    assert escape(raw) == escaped
    assert len(escape(raw).splitlines()) == 1


def test_json_is_one_object_per_line(out: io.StringIO) -> None:
    configure("json", stream=out)
    log = logging.getLogger("stepstone.test")
    log.info("%s", FORGED, extra={"path": "/root/abc\x00\n", "status": 404})
    try:
        raise ValueError("boom\nline")
    except ValueError:
        log.exception("failed")
    [first, second] = lines(out)
    record = json.loads(first)
    assert set(record) == {"time", "level", "logger", "msg", "path", "status"}
    assert record["level"] == "info" and record["logger"] == "stepstone.test"
    assert record["msg"] == FORGED and record["path"] == "/root/abc\x00\n"
    assert record["status"] == 404
    assert record["time"].endswith("Z") and "T" in record["time"]
    assert "\\u0000" in first and "\\n" in first
    failed = json.loads(second)
    assert failed["level"] == "error" and "ValueError: boom\nline" in failed["exc"]


def test_text_escapes_every_part(out: io.StringIO) -> None:
    configure("text", stream=out)
    log = logging.getLogger("stepstone.test")
    log.warning(FORGED, extra={"path": "/a b\n2020 FORGED", "provisioner": None, "n": 3})
    try:
        raise ValueError("boom\x00")
    except ValueError:
        log.exception("failed\r\nagain")
    [first, second] = lines(out)
    assert " WARNING stepstone.test: GET /root/abc\\n2020-01-01 FORGED-LINE " in first
    assert 'path="/a b\\n2020 FORGED"' in first
    assert first.endswith("provisioner=- n=3")
    assert "failed\\r\\nagain" in second and "boom\\x00" in second and "exc=" in second


def test_records_carry_the_request_id_of_the_request_being_served(out: io.StringIO) -> None:
    configure("json", stream=out)
    log = logging.getLogger("stepstone.test")
    token = REQUEST_ID.set("req-1")
    try:
        log.info("inside")
        log.info("explicit", extra={"request_id": "given"})
    finally:
        REQUEST_ID.reset(token)
    log.info("outside")
    inside, explicit, outside = map(json.loads, lines(out))
    assert inside["request_id"] == "req-1"
    assert explicit["request_id"] == "given"
    assert "request_id" not in outside


def test_quiet_keeps_warnings_and_errors(out: io.StringIO) -> None:
    configure("text", quiet=True, stream=out)
    log = logging.getLogger("stepstone.test")
    log.info("chatter")
    log.warning("careful")
    log.error("broken")
    assert [line.split(" ", 2)[1] for line in lines(out)] == ["WARNING", "ERROR"]


def test_configure_replaces_its_handler(out: io.StringIO) -> None:
    configure("text", stream=io.StringIO())
    configure("json", stream=out)
    logging.getLogger("stepstone.test").info("once")
    assert len(lines(out)) == 1
    assert sum(getattr(h, "_stepstone", False) for h in logging.getLogger().handlers) == 1


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="json or text"):
        configure("xml")


def test_python_warnings_go_through_the_log(out: io.StringIO) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        configure("text", stream=out)
        warnings.warn("old\ncode", UserWarning, stacklevel=1)
    [line] = lines(out)
    assert " WARNING py.warnings: " in line and "UserWarning: old\\ncode" in line
