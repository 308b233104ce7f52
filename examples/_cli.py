"""The command line every example shares: ``python examples/NAME.py [--out DIR] [--small]``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "examples"
"""Where the full-size runs put the figures the README shows."""


def run(main: Callable[..., Path], doc: str | None) -> None:
    """Parse ``--out DIR`` (default docs/examples) and ``--small`` and call ``main``."""
    parser = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS,
                        help=f"directory of the figure and the run files (default {DOCS})")
    parser.add_argument("--small", action="store_true",
                        help="tiny sizes: a few seconds, for tests (the figure is not meaningful)")
    args = parser.parse_args()
    print(main(args.out, small=args.small))
