"""`zrealism import-settings PNG|TEXT`: settings from an A1111 infotext (A1111's, Civitai's or the lab's own), printed
as JSON that `zrealism run static|temporal --settings FILE` takes, with the fields that could not be mapped."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import-settings", help="read an A1111 infotext (a PNG or its text) back into settings",
        description="Read the A1111 `parameters` infotext of a PNG (A1111's, Civitai's or the lab's own) or a text "
                    "file holding it, and print the settings as JSON; fields with no setting here are listed on "
                    "stderr. `zrealism run static --settings FILE` runs them.")
    parser.add_argument("source", help="a PNG with a `parameters` text chunk, or a text file with the infotext")
    parser.add_argument("--out", default=None, help="write the settings JSON to this file instead of stdout")
    parser.add_argument("--full", action="store_true",
                        help="print kind, models named and unmapped fields as well (default: the settings only)")
    parser.set_defaults(func=cmd_import_settings)


def cmd_import_settings(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import IntakeError
    from ..files import atomic_write_json
    from ..infotext import read_settings, unmapped_lines

    path = Path(args.source).expanduser()
    if not path.is_file():
        raise IntakeError(f"no such file: {path}: give a PNG with infotext or a text file holding it")
    source: Any = path if path.suffix.lower() == ".png" else path.read_text(encoding="utf-8", errors="replace")
    imported = read_settings(source)
    data = imported.to_dict() if args.full else {"kind": imported.kind, **imported.settings.to_dict()}
    for line in unmapped_lines(imported):
        print(line, file=sys.stderr)
    if args.out:
        atomic_write_json(args.out, data)
        print(f"settings ({imported.kind}) written to {args.out}")
    else:
        print(json.dumps(data, indent=2, default=list))
    return 0
