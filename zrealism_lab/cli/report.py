"""`zrealism report` and `zrealism rerun`: thin faces over reports.run_report and rerun.rerun."""
from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    report = subparsers.add_parser(
        "report", help="run a report notebook (papermill) and export it to self-contained HTML",
        description="Execute a report notebook with papermill on this Python's kernel. The executed notebook "
                    "(report.ipynb) and an HTML export that opens with no network (report.html) are written into "
                    "the run folder, next to record.json.")
    report.add_argument("kind", choices=["static", "temporal", "walkthrough"],
                        help="which notebook: the static or temporal report, or the teaching walkthrough")
    report.add_argument("--image", default=None, help="source image (default: a bundled sample character)")
    report.add_argument("--clip", default=None, help="temporal only: an input clip for a clip -> clip run")
    report.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a notebook parameter, e.g. -p steps 20 -p preset realistic-vision; VALUE is read as "
                             "JSON when it parses (8, 0.5, true, null, [\"depth\"]), else as text (repeatable)")
    report.add_argument("--out", required=True,
                        help="folder under which the run's own folder (holding the report) is created")
    report.add_argument("--quiet", action="store_true", help="no progress bar")
    report.add_argument("--show-code", action="store_true",
                        help="show the notebook's code cells in the HTML too (default: outputs only)")
    report.set_defaults(func=cmd_report)

    rerun = subparsers.add_parser(
        "rerun", help="repeat a run exactly from its record and compare the outputs",
        description="Repeat a run from its record.json alone. The source file and every weight file are checked "
                    "against the sha256 in the record before anything runs. Exit status 0 when every output is "
                    "identical, 1 when some differ.")
    rerun.add_argument("record_dir", metavar="RECORD_DIR", help="the run folder (holding record.json)")
    rerun.add_argument("--out", default=None, help="folder for the new run (default: beside the recorded run)")
    rerun.add_argument("--image", default=None,
                       help="the source file, if it moved since the run (its sha256 must match the record)")
    rerun.add_argument("--allow-changed-weights", action="store_true",
                       help="run even if weight files differ from the record (the outputs will likely differ)")
    rerun.add_argument("--quiet", action="store_true", help="no progress bar")
    rerun.set_defaults(func=cmd_rerun)


def cmd_report(args: argparse.Namespace) -> int:
    from ..reports.execute import parse_value, run_report

    parameters = {name: parse_value(value) for name, value in args.parameter}
    if args.image is not None:
        parameters["image"] = args.image
    if args.clip is not None:
        parameters["clip"] = args.clip
    result = run_report(args.kind, parameters, args.out, progress=not args.quiet,
                        show_code=getattr(args, "show_code", False))
    print(f"{args.kind} report ({result.seconds:.1f} s)")
    if result.run_dir is not None:
        print(f"  run folder: {result.run_dir}")
    print(f"  notebook:   {result.notebook}")
    print(f"  html:       {result.html}")
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    from ..progress import TqdmProgress
    from ..generate.rerun import rerun

    progress = TqdmProgress(disable=args.quiet)
    try:
        result = rerun(args.record_dir, args.out, image=args.image, allow_changed_weights=args.allow_changed_weights,
                       on_step=progress)
    finally:
        progress.close()
    print(result.summary())
    if not result.identical:
        print("Some outputs differ. Same settings, seed, weights and source give the same pixels on the same device "
              "and library versions; a different GPU, dtype or library version can change them.", file=sys.stderr)
        return 1
    return 0
