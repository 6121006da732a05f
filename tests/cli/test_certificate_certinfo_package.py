"""cli.certinfo is a package of single-purpose, documented modules behind one public API."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import cli.certinfo


def test_every_module_is_documented_and_defines_what_it_exports() -> None:
    modules = [
        importlib.import_module(f"cli.certinfo.{info.name}")
        for info in pkgutil.iter_modules(cli.certinfo.__path__)
    ]
    assert len(modules) >= 10
    for module in modules:
        assert module.__doc__, module.__name__
    for name in cli.certinfo.__all__:
        value = getattr(cli.certinfo, name)
        if inspect.isfunction(value) or inspect.isclass(value):
            assert value.__module__.startswith("cli.certinfo."), name
