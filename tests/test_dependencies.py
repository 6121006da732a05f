"""Code and tests import only what pyproject.toml declares (a fresh install has nothing else)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = {
    "pki", "appliance", "keystores", "provisioners", "api", "cli", "migrations", "tests", "bench"
}
FOLDERS = sorted(OURS)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    return {_normalise(re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0]) for spec in specs}


def _imported_modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], path)
    return found


def test_every_third_party_import_is_declared() -> None:
    declared = _declared()
    distributions = packages_distributions()
    undeclared = []
    for module, path in sorted(_imported_modules().items()):
        if module in OURS or module in sys.stdlib_module_names:
            continue
        dists = {_normalise(d) for d in distributions.get(module, [])}
        if not dists & declared:
            undeclared.append(f"{module} ({path.relative_to(ROOT)}): from {sorted(dists)}")
    assert undeclared == []
