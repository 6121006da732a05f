"""`make profile`: where the workers' time goes under the signing load, reproducibly.

Runs the bench's file + SQLite scenario with py-spy sampling the gunicorn master and its
workers (`--subprocesses`) during the measured load, and writes to `profile/`:

- `sign.collapsed`: py-spy's collapsed stacks (feed them to any flame graph tool);
- `top.txt`: the functions with the most samples, by self time and by inclusive time,
  as shares of all samples, so two profiles compare at a glance.

`--gil` samples only threads holding the GIL: the Python work that competes for the one
interpreter lock of each worker (idle threads waiting on sockets are left out).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.load import Scenario, prepare, progress, run_load, scenario_server

ROOT = Path(__file__).resolve().parent.parent
PY_SPY = Path(sys.executable).parent / "py-spy"


def _function(frame: str) -> str:
    """`f (file.py:12)` -> `f (file.py)`: lines of one function add up."""
    return re.sub(r":\d+\)$", ")", frame)


def top(collapsed: str, limit: int = 30) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # py-spy labels a stack with its processes (master, then worker): not functions
        frames = [_function(f) for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples: was the load long enough?\n"
    out = [f"{total} samples of worker threads holding the GIL", "", "self time:"]
    out += [f"{100 * n / total:6.1f}%  {frame}" for frame, n in own.most_common(limit)]
    out += ["", "inclusive time:"]
    out += [f"{100 * n / total:6.1f}%  {frame}" for frame, n in inclusive.most_common(limit)]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000, help="signs while sampling")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--out", type=Path, default=ROOT / "profile", help="report folder")
    parser.add_argument(
        "--workers", type=int, default=None, help="gunicorn workers (default: the appliance's)"
    )
    parser.add_argument(
        "--rate", type=int, default=200, help="py-spy samples per second (more: finer, slower)"
    )
    args = parser.parse_args(argv)
    if not PY_SPY.exists():
        raise SystemExit(f"py-spy is not installed in {PY_SPY.parent} (make profile installs it)")
    args.out.mkdir(parents=True, exist_ok=True)
    collapsed = args.out / "sign.collapsed"
    work = Path(tempfile.mkdtemp(prefix="stepstone-profile-"))
    try:
        with scenario_server(work, Scenario("file", "sqlite"), None, args.workers) as server:
            run_load(server, prepare(server, 200), args.clients)  # warm-up, not sampled
            bodies = prepare(server, args.requests)
            progress(f"sampling {args.requests} signs from {args.clients} clients with py-spy")
            spy = subprocess.Popen(
                [
                    str(PY_SPY),
                    "record",
                    "--pid",
                    str(server.proc.pid),
                    "--subprocesses",
                    "--gil",
                    "--rate",
                    str(args.rate),
                    "--format",
                    "raw",
                    "--output",
                    str(collapsed),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            run_load(server, bodies, args.clients)
            spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
            _, errors = spy.communicate(timeout=60)
            if not collapsed.exists():
                raise SystemExit(f"py-spy wrote no profile: {errors.decode().strip()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = top(collapsed.read_text())
    (args.out / "top.txt").write_text(report)
    print(report, end="")
    print(f"(written to {args.out}/top.txt and {collapsed})")


if __name__ == "__main__":
    main()
