"""`zrealism bench`: speed and memory of the lab against bare diffusers, as a Markdown table (and JSON)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..files import atomic_write_json

BENCH_SUMMARY = ("Measure the lab's speed and memory against bare diffusers on the same machine: tiny-bundle "
                 "overhead, full-size SD1.5 with random weights, metrics and hot paths, and GPU rows with --gpu.")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench", help="measure speed and memory against bare diffusers (tiny bundle, full-size random weights, GPU)",
        description=BENCH_SUMMARY + " Prints a Markdown table; --json also writes it as JSON.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny-bundle overhead rows, metrics and hot paths only (about 2 minutes)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows and the machine description as JSON")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per figure (default 3 quick, 5 full)")
    parser.add_argument("--sizes", default="64,256", help="tiny-bundle image sizes, comma separated (default 64,256)")
    parser.add_argument("--gpu", action="store_true", help="add the CUDA rows (fp16 512 px, 6 GiB low-memory mode)")
    parser.add_argument("--fullsize-dir", metavar="DIR",
                        help="keep the full-size random weights in DIR (written once, reused by later runs; ~9 GB)")
    parser.add_argument("--clip-frames", default="16,32,48", help="frame counts of the clip-length memory points")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for every measurement (default: torch's choice, usually the core count)")
    parser.add_argument("--only", choices=["refine", "fast", "adapters"], default=None,
                        help="one section alone: 'refine' measures the full-size hires and face passes (~10 minutes); "
                             "'fast' the fast modes: the 512 px still and the 16-frame clip end to end in each "
                             "speed mode, 512 px fp32 / bf16 steps, TAESD / VAE, 48 / 16-frame memory, temporal "
                             "overhead (~45 minutes); 'adapters' two rank-32 LoRAs: load, switch, fuse, memory, "
                             "steps (~5 minutes)")
    parser.set_defaults(func=cmd_bench)


def _int_list(text: str, name: str) -> list[int]:
    from ..errors import SettingsError

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v <= 0 for v in values):
        raise SettingsError(name, text, "positive integers separated by commas, e.g. 64,256")
    return values


def cmd_bench(args: argparse.Namespace) -> int:
    from ..errors import SettingsError

    if args.repeats is not None and args.repeats < 1:
        raise SettingsError("repeats", args.repeats, "an integer of at least 1")
    if args.threads is not None and args.threads < 1:
        raise SettingsError("threads", args.threads, "an integer of at least 1")
    from ..bench import run_bench

    report = run_bench(quick=args.quick, repeats=args.repeats, sizes=_int_list(args.sizes, "sizes"), gpu=args.gpu,
                       fullsize_dir=args.fullsize_dir, clip_frames=_int_list(args.clip_frames, "clip-frames"),
                       threads=args.threads, only=args.only,
                       on_line=lambda text: print(text, file=sys.stderr, flush=True))
    print(report.to_markdown())
    if args.json:
        atomic_write_json(args.json, report.to_dict())
    return 0
