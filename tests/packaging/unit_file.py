"""Read a systemd unit as systemd would, for what the package tests need (no systemd runs
on the test machine): its settings, the environment its commands get (Environment=, then
EnvironmentFile=, which overrides it), and its Exec*= command lines expanded with it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

_SPLIT_VAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_WORD_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
EXEC_PREFIXES = "-@:+!"


@dataclass
class Unit:
    """A unit file's settings: section -> [(key, value)] in file order, drop-ins appended."""

    settings: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path, *dropins: Path) -> Unit:
        unit = cls()
        for source in (path, *dropins):
            unit._add(source.read_text())
        return unit

    def _add(self, text: str) -> None:
        section = ""
        pending = ""
        for raw in text.splitlines():
            line = (pending + raw.strip()) if pending else raw.strip()
            if line.endswith("\\"):  # a continuation: the next line joins with a space
                pending = line[:-1] + " "
                continue
            pending = ""
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            key, _, value = line.partition("=")
            self.settings.setdefault(section, []).append((key.strip(), value.strip()))

    def values(self, key: str, section: str = "Service") -> list[str]:
        """Every value of a list setting; an empty assignment resets the list, as in systemd."""
        found: list[str] = []
        for name, value in self.settings.get(section, []):
            if name == key:
                found = [] if value == "" else [*found, value]
        return found

    def value(self, key: str, section: str = "Service") -> str | None:
        """A single-valued setting: the last assignment wins."""
        found = [v for k, v in self.settings.get(section, []) if k == key]
        return found[-1] if found else None

    def environment(self, root: Path = Path("/")) -> dict[str, str]:
        """Environment= assignments, then each EnvironmentFile= (read under `root`; a leading
        '-' means it may be missing)."""
        env: dict[str, str] = {}
        for value in self.values("Environment"):
            for assignment in shlex.split(value):
                name, _, val = assignment.partition("=")
                env[name] = val
        for value in self.values("EnvironmentFile"):
            optional = value.startswith("-")
            path = root / value.lstrip("-").lstrip("/")
            if optional and not path.exists():
                continue
            env.update(read_environment_file(path))
        return env

    def commands(self, key: str, env: Mapping[str, str]) -> list[list[str]]:
        """The Exec*= command lines of `key`, prefixes dropped and variables expanded."""
        return [expand_command(line, env) for line in self.values(key)]


def read_environment_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; '#' and ';' comments; quotes removed as systemd does."""
    env: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        name, _, value = line.partition("=")
        env[name.strip()] = " ".join(shlex.split(value.strip()))
    return env


def expand_command(line: str, env: Mapping[str, str]) -> list[str]:
    """systemd's rules: a word that is exactly `$NAME` becomes the value split at white space
    (no words when empty or unset); `${NAME}` is replaced inside its word, which stays one."""
    words: list[str] = []
    for word in shlex.split(line.lstrip(EXEC_PREFIXES)):
        whole = _SPLIT_VAR.fullmatch(word)
        if whole:
            words.extend(env.get(whole.group(1), "").split())
        else:
            words.append(_WORD_VAR.sub(lambda m: env.get(m.group(1), ""), word))
    return words
