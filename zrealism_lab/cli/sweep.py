"""`zrealism sweep SPEC --out DIR [--report]`: a thin face over sweep.run_sweep (also `python -m zrealism_lab.sweep`,
which `accelerate launch -m` starts once per process)."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

from ..models.modelset import RANDOM_WEIGHTS_NOTE
from .common import Parser, run_main

DESCRIPTION = ("Expand a sweep spec (of stills, or of clips with kind: temporal) into a manifest of fully "
               "specified jobs (validated before anything runs), run the ones not finished yet (each with its own run "
               "record; a failed job is recorded and the sweep goes on), then write results.json and a labelled "
               "contact sheet.")
EPILOG = """spec (JSON or YAML):
  {"image": "sample:transparent", "preset": "tiny", "base": {"size": 64, "steps": 4},
   "axes": {"strength": [0.5, 0.6, 0.7], "controls.depth.scale": [0.5, 1.0]}, "seeds": [0, 1]}
axes: any setting (strength, cfg, seed, scheduler, colour_method, profile, ...), controls.KIND.scale|start|end|method,
or controls (values like "depth,canny"). First axis = contact sheet X, second = Y, the rest = pages.
image axis: "axes": {"image": "my-characters/"} (a folder: its png/jpg/jpeg/webp files) or a list of image paths,
instead of "image"; every file is checked before the sweep starts, and the sheet labels each by its file name.
clips: "kind": "temporal" makes each job a still -> clip run; base and axes are then temporal settings
(frames, motion_prompt, context_length, ...), and results and sheets show each clip's first frame:
  {"kind": "temporal", "image": "sample:light", "preset": "tiny", "base": {"size": 64, "frames": 8, "steps": 2},
   "axes": {"motion_prompt": ["waves", "blinks"]}}

scale out: accelerate launch --multi_gpu --num_processes N -m zrealism_lab.sweep SPEC --out DIR
(on a machine without CUDA the same command runs N CPU processes over gloo)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="sweep spec file (.json, .yaml or .yml)")
    parser.add_argument("--out", required=True, help="the sweep folder (a rerun with the same folder resumes)")
    parser.add_argument("--report", action="store_true",
                        help="also execute notebooks/sweep_report.ipynb (papermill) and export it to HTML")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate, write manifest.json and list the jobs without running them")
    parser.add_argument("--skip-failed", action="store_true",
                        help="on a rerun, leave jobs that failed before alone (default: run them again)")
    parser.add_argument("--device", default="auto",
                        help="auto, cuda, mps or cpu (default: auto; under accelerate each process uses its own)")
    parser.add_argument("--offload", default="auto", help="auto, none, model or sequential (default: auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "sweep", help="sweep settings over a grid, with resume, contact sheet and report",
        description=DESCRIPTION,
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=cmd_sweep)
    return parser


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..sweep import load_spec, prepare_sweep, run_sweep

    spec = load_spec(args.spec)
    if args.dry_run:
        if int(os.environ.get("RANK", "0")) != 0:  # under a launcher, one process writes the manifest
            return 0
        manifest = prepare_sweep(spec, args.out, device=args.device, offload=args.offload)
        print(f"manifest: {args.out}/manifest.json ({len(manifest['jobs'])} jobs)")
        for job in manifest["jobs"]:
            coords = ", ".join(f"{k}={v}" for k, v in job["coords"].items())
            print(f"  {job['id']}  {coords}")
        return 0
    result = run_sweep(spec, args.out, device=args.device, offload=args.offload, progress=not args.quiet,
                       report=args.report, retry_failed=not args.skip_failed)
    if result.is_main:
        if result.manifest.get("random_weights"):
            print(f"note: {RANDOM_WEIGHTS_NOTE}", file=sys.stderr)
        print(result.summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m zrealism_lab.sweep`, with the `zrealism` command's error handling."""
    parser = Parser(prog="python -m zrealism_lab.sweep", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_main(lambda: cmd_sweep(args), interrupted="interrupted: rerun the same command to resume",
                    quiet=args.quiet)
