"""Tests that call `appliance.logs.configure` change process-wide logging: put it back."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def root_logging_restored() -> Iterator[None]:
    """Remove handlers added meanwhile, restore the root level, stop capturing warnings."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)
