"""The `zrealism` command: a thin face over the same functions the notebooks call. Each subcommand lives in its own
module and is registered here explicitly."""
from __future__ import annotations

import argparse
from typing import Sequence

from . import bench, demo, import_settings, metrics, models, profiles, report, run, sweep
from .common import EXIT_USAGE, Parser, run_main

COMMANDS = (run, models, demo, metrics, report, sweep, bench, import_settings, profiles)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="zrealism",
        description="Z-Realism Lab: turn 2D/anime character art into photoreal stills and clips, and measure the result.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return EXIT_USAGE if argv else 0
    return run_main(lambda: args.func(args), quiet=getattr(args, "quiet", False))


if __name__ == "__main__":
    import sys

    sys.exit(main())
