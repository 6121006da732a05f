"""`step-ca`: a first argument naming an operator command runs it; anything else is a CONFIG."""

from __future__ import annotations

import pytest

from cli.stepca import command_names, main


def test_version_is_an_operator_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("Stepstone step-ca/")
    assert "version" in command_names()


def test_any_other_first_argument_is_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-ca.json"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == (
        "step-ca: open no-such-ca.json: no such file or directory"
    )
