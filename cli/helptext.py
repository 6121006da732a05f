"""The help of every `step` command, laid out in one place.

Help is written once, as a docstring of blank-line separated paragraphs whose line breaks are
only where the source was wrapped, and wrapped once, here, to the terminal: prose paragraphs
are joined and re-filled; the `Examples:` section and indented paragraphs keep their lines as
written. Flag value names are step's (`--root <file>`, `--not-after <time|duration>`), never
Python types, and switches show none. Every Typer app of the CLI is a `StepTyper`, so its
commands get this layout and `step COMMAND` without arguments prints its help.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.models import CommandFunctionType

from cli.common import CLIError

if TYPE_CHECKING:
    # typer 0.29 vendors click; its Context is the base of typer.Context.
    from typer._click import Context

__all__ = ["StepCommand", "StepGroup", "StepTyper", "help_for", "render_help", "value_name"]

EXAMPLES = "Examples:"
USAGE = "Usage: "
_DEFINITION_COLUMN = 30  # wider first columns put the description on the next line

# Value names for flags whose name alone does not say what they take (step's names).
_VALUE_NAMES = {
    "--ca-url": "uri",
    "--metadata-url": "uri",
    "--configuration-endpoint": "uri",
    "--root-kms": "uri",
    "--kms": "uri",
    "--root": "file",
    "--roots": "file",
    "--private-key": "file",
    "--san": "dns|ip|email|uri",
    "--provisioner": "name",
    "--not-before": "time|duration",
    "--not-after": "time|duration",
    "--expires-in": "duration",
    "--renew-period": "duration",
    "--retry-interval": "duration",
    "--x509-min-dur": "duration",
    "--x509-max-dur": "duration",
    "--x509-default-dur": "duration",
    "--instance-age": "duration",
    "--exec": "command",
    "--reason": "string",
    "--admin": "email",
    "--listen-address": "address",
    "--expect-head": "sha256",
    "--servername": "name",
    "--crv": "curve",
    "--client-id": "id",
    "--client-secret": "secret",
    "--tenant-id": "id",
    "--aws-account": "id",
    "--gcp-service-account": "email",
    "--gcp-project": "id",
    "--azure-tenant": "id",
    "--azure-resource-group": "name",
    "--azure-subscription-id": "id",
    "--azure-object-id": "id",
    "--azure-audience": "uri",
}


def _step_name(text: str) -> str:
    """`CRT_FILE` -> `crt-file`: the spelling step gives value names (`reasonCode` stays)."""
    text = text.strip("<>")
    return (text.lower() if text.isupper() else text).replace("_", "-")


def value_name(param: Any) -> str:
    """What a flag takes (`<file>`), or '' for a switch; `<name>` for an argument."""
    if isinstance(param, TyperOption) and (param.is_flag or param.count):
        return ""
    if param.metavar:
        return f"<{_step_name(param.metavar)}>"
    if isinstance(param, TyperArgument):
        return f"<{_step_name(param.name or 'value')}>"
    long_names = [o for o in param.opts if o.startswith("--")] or list(param.opts)
    flag = long_names[0].replace("--remove-", "--")  # `--remove-admin` takes what `--admin` does
    if flag in _VALUE_NAMES:
        return f"<{_VALUE_NAMES[flag]}>"
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None and descriptor.is_path:
        return "<file>"
    return f"<{_step_name(flag.lstrip('-'))}>"


# --- the docstring ----------------------------------------------------------------------------


def _paragraphs(text: str) -> list[list[str]]:
    out: list[list[str]] = []
    for block in inspect.cleandoc(text).split("\n\n"):
        lines = [line.rstrip() for line in block.splitlines() if line.strip()]
        if lines:
            out.append(lines)
    return out


def _split_help(help_text: str | None) -> tuple[list[list[str]], list[str]]:
    """(description paragraphs, example lines) of a docstring."""
    description: list[list[str]] = []
    examples: list[str] = []
    seen_examples = False
    for lines in _paragraphs(help_text or ""):
        if not seen_examples and lines[0].strip() == EXAMPLES:
            seen_examples = True
            lines = lines[1:]
            if not lines:
                continue
        if seen_examples:
            examples += [*([""] if examples else []), *lines]
        else:
            description.append(lines)
    return description, textwrap.dedent("\n".join(examples)).splitlines()


def _is_preformatted(lines: list[str]) -> bool:
    """Indented blocks and shell lines are laid out by their author: keep their lines."""
    return any(line[:1].isspace() or line.startswith("$") for line in lines)


def _summary(command: Any) -> str:
    """The first paragraph of a command's help, on one line."""
    description, _ = _split_help(command.help)
    return " ".join(line.strip() for line in description[0]) if description else ""


# --- writing ------------------------------------------------------------------------------------


def _fill(text: str, width: int, indent: int, hanging: int = 0) -> list[str]:
    """`text` filled to `width` (never breaking a word or a --flag-name)."""
    return textwrap.wrap(
        text,
        max(width, indent + hanging + 20),
        initial_indent=" " * indent,
        subsequent_indent=" " * (indent + hanging),
        break_long_words=False,
        break_on_hyphens=False,
    ) or [""]


def _definitions(rows: list[tuple[str, str]], width: int) -> list[str]:
    """`  name   description` rows, descriptions wrapped in their own column."""
    column = min(max((len(name) for name, _ in rows), default=0), _DEFINITION_COLUMN) + 4
    out: list[str] = []
    for name, text in rows:
        body = _fill(text, width - column, 0) if text else []
        if len(name) + 4 > column or not body:
            out.append(f"  {name}")
        else:
            out.append(f"  {name}".ljust(column) + body.pop(0))
        out += [" " * column + line for line in body]
    return out


def _default(param: Any, ctx: Context) -> str:
    if param.show_default is False or (isinstance(param, TyperOption) and param.is_flag):
        return ""
    if isinstance(param.show_default, str):
        return param.show_default
    value = param._extract_default_help_str(ctx=ctx)
    if value is None or value == "" or value == [] or value == () or callable(value):
        return ""
    return str(value)


def _parameter_rows(command: Any, ctx: Context) -> tuple[list[Any], list[Any]]:
    params = [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]
    arguments = [p for p in params if isinstance(p, TyperArgument)]
    options = [p for p in params if not isinstance(p, TyperArgument)]
    return arguments, options


def _option_label(param: Any) -> str:
    names = sorted(param.opts, key=lambda o: o.startswith("--")) + list(param.secondary_opts)
    value = value_name(param)
    return ", ".join(names) + (f" {value}" if value else "")


def _option_help(param: Any, ctx: Context) -> str:
    text = " ".join((param.help or "").split())
    extra = []
    default = _default(param, ctx)
    if default:
        extra.append(f"[default: {default}]")
    if param.required:
        extra.append("[required]")
    return " ".join([text, *extra]).strip()


def _usage(command: Any, ctx: Context, arguments: list[Any]) -> str:
    pieces = []
    for arg in arguments:
        name = value_name(arg) + ("..." if arg.nargs != 1 else "")
        pieces.append(name if arg.required else f"[{name}]")
    if isinstance(command, TyperGroup):
        pieces.append("<command> [arguments]")
    pieces.append("[flags]")
    return f"{ctx.command_path} " + " ".join(pieces)


def render_help(command: Any, ctx: Context, width: int) -> str:
    """The whole help page of `command`."""
    arguments, options = _parameter_rows(command, ctx)
    description, examples = _split_help(command.help)
    out = _fill(f"{USAGE}{_usage(command, ctx, arguments)}", width, 0, len(USAGE))
    for lines in description:
        out.append("")
        if _is_preformatted(lines):
            out += ["  " + line for line in textwrap.dedent("\n".join(lines)).splitlines()]
        else:
            out += _fill(" ".join(line.strip() for line in lines), width, 2)
    sections: list[tuple[str, list[tuple[str, str]]]] = [
        ("Arguments", [(value_name(a), " ".join((a.help or "").split())) for a in arguments]),
    ]
    if isinstance(command, TyperGroup):
        names = [n for n in command.list_commands(ctx) if not command.commands[n].hidden]
        sections.append(("Commands", [(n, _summary(command.commands[n])) for n in names]))
    sections.append(("Options", [(_option_label(p), _option_help(p, ctx)) for p in options]))
    for title, rows in sections:
        if rows:
            out += ["", f"{title}:", *_definitions(rows, width)]
    if examples:
        out += ["", EXAMPLES, *[f"  {line}".rstrip() for line in examples]]
    return "\n".join(out) + "\n"


class StepCommand(TyperCommand):
    """A command whose help is laid out by this module."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:  # so that usage errors name arguments as the help does
            if isinstance(param, TyperArgument):
                param.metavar = value_name(param)

    def format_help(self, ctx: Context, formatter: Any) -> None:
        formatter.write(render_help(self, ctx, formatter.width))


class StepGroup(TyperGroup):
    """A group whose help is laid out by this module; without arguments it prints that help
    (on stdout, status 0, as step does)."""

    def format_help(self, ctx: Context, formatter: Any) -> None:
        formatter.write(render_help(self, ctx, formatter.width))

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            typer.echo(ctx.get_help())
            raise typer.Exit(0)
        return list(super().parse_args(ctx, args))


class StepTyper(typer.Typer):
    """typer.Typer with step's help and habits: no completion commands, no pretty tracebacks
    (errors are one line, see `cli.common.run_cli`), help printed when arguments are missing."""

    def __init__(self, *, help: str, **kwargs: Any) -> None:
        kwargs.setdefault("no_args_is_help", True)
        super().__init__(
            help=help,
            cls=StepGroup,
            add_completion=False,
            pretty_exceptions_enable=False,
            rich_markup_mode=None,
            **kwargs,
        )

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        return super().command(name, cls=cls or StepCommand, **kwargs)


def help_for(ctx: Context, words: list[str]) -> str:
    """The help `step WORDS... --help` prints, from the context of the root command."""
    current = ctx
    for index, word in enumerate(words):
        command = current.command
        sub = command.get_command(current, word) if isinstance(command, TyperGroup) else None
        if sub is None:
            path = " ".join([ctx.command_path, *words[: index + 1]])
            raise CLIError(f"no help topic for '{path}'")
        current = typer.Context(sub, info_name=word, parent=current)
    return current.get_help()
