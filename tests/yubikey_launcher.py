"""Run `step` or `step-ca` with the emulated YubiKeys of tests/piv_emulator.py plugged in.

The provider is registered here, in the child, by the tests: production code has no hook
that loads a provider from the environment. Usage (the card files are named by
$STEPSTONE_PIV_EMULATOR_STATE, os.pathsep-separated):

    python -m tests.yubikey_launcher step ca init ...
    python -m tests.yubikey_launcher step-ca ca.json ...
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from keystores.yubikey import register_connection_provider
from tests.piv_emulator import provider_from_env


def _entry_point(program: str) -> Callable[[], object]:
    if program == "step":
        from cli.step import main as step_main

        return step_main
    if program == "step-ca":
        from cli.stepca import main as stepca_main

        return stepca_main
    raise SystemExit(f"yubikey_launcher: unknown program {program!r} (step or step-ca)")


def main() -> None:
    """Register the emulator's provider, then run the real entry point with the rest of argv."""
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m tests.yubikey_launcher step|step-ca ARGS...")
    program = sys.argv[1]
    entry = _entry_point(program)
    register_connection_provider(provider_from_env)
    sys.argv = [program, *sys.argv[2:]]
    result = entry()
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
