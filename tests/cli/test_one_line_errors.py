"""How `step` ends a failure: one line on stderr and a non-zero status, whatever went wrong,
and a traceback only with STEPDEBUG=1; and how output paths are checked before any work."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest
import typer

from cli.common import CLIError, check_writable, run_cli, write_output
from cli.helptext import StepTyper
from tests.e2e.harness import STEP, clean_env

demo = StepTyper(help="Commands that fail in every way a command can.")


@demo.command(name="fail")
def fail_command(
    how: str = typer.Argument(..., help="cli, isdir, read, bug or ok."),
    path: Path = typer.Option(Path("/srv/x.crt"), "--path", help="The file involved."),
) -> None:
    """Fail as asked.

    Examples:

      $ demo fail isdir
    """
    if how == "cli":
        raise CLIError("a user error")
    if how == "isdir":
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    if how == "read":
        path.read_bytes()  # a real OSError from the operating system
    if how == "bug":
        raise KeyError("no-such-key")


@demo.command(name="other")
def other_command() -> None:
    """Be a second command, so that `fail` is a subcommand.

    Examples:

      $ demo other
    """


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = run_cli(demo, list(args))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.err.splitlines()


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (["fail", "cli"], 1, "a user error"),
        (["fail", "isdir"], 1, "/srv/x.crt: is a directory"),
        (["fail", "bug"], 1, "'no-such-key'"),
        (["fail"], 2, "Missing argument '<how>'."),
        (["fail", "ok", "--nope"], 2, "No such option: --nope"),
        (["nope"], 2, "No such command 'nope'."),
    ],
)
def test_every_failure_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    args: list[str], code: int, line: str,
) -> None:
    monkeypatch.delenv("STEPDEBUG", raising=False)
    assert _run(capsys, *args) == (code, [line])


def test_a_real_os_error_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STEPDEBUG", raising=False)
    assert _run(capsys, "fail", "read", "--path", str(tmp_path)) == (
        1, [f"{tmp_path}: is a directory"]
    )


def test_success_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "fail", "ok") == (0, [])
    assert run_cli(demo, ["fail", "--help"]) == 0
    assert capsys.readouterr().out.startswith("Usage: ")


def test_stepdebug_shows_the_traceback(capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPDEBUG", "1")
    assert run_cli(demo, ["fail", "bug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "KeyError" in err
    assert err.splitlines()[-1] == "'no-such-key'"


def test_step_itself_has_one_line_and_debug_traceback(tmp_path: Path) -> None:
    """The installed `step`: a refused output path, without and with STEPDEBUG=1."""
    pw = tmp_path / "pw"
    pw.write_text("password\n")
    args = [str(STEP), "kms", "create", str(tmp_path), "--password-file", str(pw)]
    env = clean_env(tmp_path / "step")
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60,
                          check=False)
    assert (proc.returncode, proc.stderr) == (1, f"open {tmp_path}: is a directory\n")
    debug = subprocess.run(args, capture_output=True, text=True, env={**env, "STEPDEBUG": "1"},
                           timeout=60, check=False)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert debug.stderr.splitlines()[-1] == f"open {tmp_path}: is a directory"


# --- output paths -----------------------------------------------------------------------------


def test_check_writable_refuses_what_a_write_would_fail_on(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CLIError) as below:
        check_writable(blocker / "sub" / "x.crt")
    assert str(below.value) == f"open {blocker / 'sub' / 'x.crt'}: not a directory"
    with pytest.raises(CLIError) as directory:
        check_writable(tmp_path / "ok.crt", tmp_path)
    assert str(directory.value) == f"open {tmp_path}: is a directory"


def test_check_writable_accepts_new_and_existing_files(tmp_path: Path) -> None:
    existing = tmp_path / "old.crt"
    existing.write_text("old")
    check_writable(existing, tmp_path / "new" / "dirs" / "x.crt", None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.crt"]  # the check left nothing


def test_write_output_fails_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(CLIError) as exc:
        write_output(tmp_path, b"data")
    assert str(exc.value) == f"open {tmp_path}: is a directory"
    write_output(tmp_path / "a" / "b.crt", b"data", mode=0o644)
    assert (tmp_path / "a" / "b.crt").read_bytes() == b"data"
