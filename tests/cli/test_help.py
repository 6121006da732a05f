"""The help of every `step` command: step's value names, a description and examples, wrapped
once to the terminal, and `step help COMMAND...` equal to `step COMMAND... --help`."""

from __future__ import annotations

import itertools
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from typer.core import TyperGroup, TyperOption
from typer.testing import CliRunner

from cli.ca.init import FEEDBACK
from cli.step import app
from tests.e2e.harness import STEP, clean_env

runner = CliRunner()
ROOT = typer.main.get_command(app)
# Python type names that typer would print as value names.
PYTHON_TYPES = re.compile(r"<(bool|str|int|float|path|text|integer|list|dict|tuple|datetime)\b")
SECTIONS = ("Arguments:", "Commands:", "Options:", "Examples:")


def _walk(command: object, path: list[str]) -> Iterator[tuple[list[str], object]]:
    yield path, command
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            yield from _walk(sub, [*path, name])


COMMANDS = list(_walk(ROOT, []))
IDS = [" ".join(p) or "step" for p, _ in COMMANDS]


def _help(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def _help_at(path: list[str], width: int) -> str:
    """The help of `step PATH...` laid out for a terminal `width` columns wide."""
    ctx = typer.Context(ROOT, info_name="step", terminal_width=width)
    for name in path:
        ctx = typer.Context(ctx.command.commands[name], info_name=name, parent=ctx)  # type: ignore[attr-defined]
    return ctx.get_help() + "\n"


def _step(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(STEP), *args], capture_output=True, text=True,
                          env=clean_env(tmp / "step"), timeout=60, check=False)


def _section(text: str, title: str) -> list[str]:
    """The lines of a section (up to the next heading)."""
    lines = text.splitlines()
    if title not in lines:
        return []
    out = []
    for line in lines[lines.index(title) + 1 :]:
        if line in SECTIONS:
            break
        out.append(line)
    return out


def _description(text: str) -> list[list[str]]:
    """The paragraphs between the usage line and the first section."""
    lines = text.splitlines()
    start = lines.index("")  # after the usage line(s)
    end = min(lines.index(s) for s in SECTIONS if s in lines)
    paragraphs: list[list[str]] = [[]]
    for line in lines[start:end]:
        if line:
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return [p for p in paragraphs if p]


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_help_has_usage_description_and_examples(path: list[str], command: object) -> None:
    text = _help([*path, "--help"])
    assert text.startswith(f"Usage: {' '.join(['step', *path])} "), text
    assert not PYTHON_TYPES.search(text), PYTHON_TYPES.search(text)
    description = _description(text)
    assert description and description[0][0].startswith("  "), text
    if isinstance(command, TyperGroup):
        listed = [line.split()[0] for line in _section(text, "Commands:") if line[2:3].strip()]
        assert listed == list(command.commands), text
    else:
        examples = [line for line in _section(text, "Examples:") if line.strip()]
        assert examples and all(line.startswith("  ") for line in examples), text
        assert any(line.strip().startswith("$ ") for line in examples), text


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_options_show_step_value_names(path: list[str], command: object) -> None:
    """Switches show no value name; every other flag shows `<name>`, never a type."""
    options = "\n".join(_section(_help([*path, "--help"]), "Options:"))
    ctx = typer.Context(ROOT)
    for param in command.get_params(ctx):  # type: ignore[attr-defined]
        if not isinstance(param, TyperOption) or param.hidden:
            continue
        names = ", ".join(sorted(param.opts, key=lambda o: o.startswith("--")))
        label = re.search(rf"^  {re.escape(names)}(, --\S+)*( <[^>]+>)?(  |$)", options, re.M)
        assert label, (names, options)
        if param.is_flag:
            assert label.group(2) is None, label.group(0)
        else:
            assert label.group(2) and not PYTHON_TYPES.search(label.group(2)), label.group(0)


def test_value_names_are_steps() -> None:
    options = "\n".join(_section(_help(["ca", "certificate", "--help"]), "Options:"))
    for label in ("--root <file>", "--ca-url <uri>", "--not-after <time|duration>",
                  "--san <dns|ip|email|uri>", "--password-file, --provisioner-password-file "
                  "<file>", "--size <size>", "-f, --force  "):
        assert f"  {label}" in options, label
    usage = _help(["ca", "certificate", "--help"]).splitlines()[0]
    # <key-file> is optional: none with --attestation-uri (the key stays on the device)
    assert usage == "Usage: step ca certificate <subject> <crt-file> [<key-file>] [flags]"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_step_help_prints_the_same_help(path: list[str], command: object) -> None:
    assert _help(["help", *path]) == _help([*path, "--help"])


@pytest.mark.parametrize("width", [58, 98])
@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_description_is_wrapped_once(path: list[str], command: object, width: int) -> None:
    """Each prose line is as full as the width allows (no line break kept from the source),
    and the words are the same at any width."""
    text = _help_at(path, width)
    for paragraph in _description(text):
        if any(line.startswith("  $") or line.startswith("   ") for line in paragraph):
            continue  # a preformatted block, laid out by its author
        for line, following in itertools.pairwise(paragraph):
            assert len(line) <= width, line
            assert len(line) + 1 + len(following.split()[0]) > width, (line, following)
    words = " ".join(" ".join(p) for p in _description(text)).split()
    assert words == " ".join(" ".join(p) for p in _description(_help_at(path, 78))).split()


def test_examples_keep_their_lines() -> None:
    """Examples are printed as written: continuation lines stay, at any width."""
    narrow = _section(_help_at(["ca", "init"], 58), "Examples:")
    wide = _section(_help_at(["ca", "init"], 98), "Examples:")
    assert narrow == wide
    assert "  $ M=/usr/lib/softhsm/libsofthsm2.so" in narrow
    assert "      --provisioner ops --password-file pw.txt \\" in narrow


def test_help_for_an_unknown_command(tmp_path: Path) -> None:
    proc = _step("help", "ca", "nope", tmp=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == "no help topic for 'step ca nope'\n"


def test_ca_init_suggests_a_help_that_works(tmp_path: Path) -> None:
    assert "'step help ca'" in FEEDBACK
    proc = _step("help", "ca", tmp=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("Usage: step ca <command>")
    assert "  certificate  " in proc.stdout


def test_a_group_without_a_command_prints_its_help(tmp_path: Path) -> None:
    proc = _step("ca", tmp=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout == _step("ca", "--help", tmp=tmp_path).stdout
    assert proc.stdout.startswith("Usage: step ca <command>")
