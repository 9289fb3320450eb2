"""`zrealism demo`: the whole lab on the tiny preset and the bundled sample characters, fully offline.

It builds the tiny bundle when it is missing, runs the static and the temporal report notebooks and prints where
their HTML pages are. ``quick`` makes one static run without reports.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..models.modelset import RANDOM_WEIGHTS_NOTE
REAL_WEIGHTS_HOWTO = ("For real pictures, fetch the weights once on a machine with internet access "
                      "(`zrealism models download realistic-vision`), then run the same with them, e.g.\n"
                      "  zrealism report static --image YOUR.png -p preset realistic-vision -p size 512 -p steps 30 "
                      "--out DIR\n"
                      "  zrealism report temporal --image YOUR.png -p preset realistic-vision -p size 512 "
                      "-p frames 16 -p steps 25 --out DIR")

# Small enough for a 2-core CPU in well under a minute per report; the pictures are not the point here.
STATIC_PARAMETERS: dict[str, Any] = {"preset": "tiny", "sample": "transparent", "size": 128, "steps": 8,
                                     "detect_resolution": 128}
TEMPORAL_PARAMETERS: dict[str, Any] = {"preset": "tiny", "sample": "dark", "size": 64, "frames": 8, "steps": 4,
                                       "detect_resolution": 64}


def add_parser(subparsers: Any) -> None:
    demo = subparsers.add_parser("demo", help="transform bundled sample characters offline with the tiny preset")
    demo.add_argument("--out", default="zrealism-demo", help="output folder (default: ./zrealism-demo)")
    demo.add_argument("--quick", action="store_true", help="one still only, no reports")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(out=args.out, quick=args.quick)


def run_demo(out: str = "zrealism-demo", quick: bool = False) -> int:
    start = time.perf_counter()
    out_dir = Path(out).expanduser()
    print("finding or building the tiny model bundle ...", flush=True)
    from ..models.modelset import tiny_modelset

    bundle = tiny_modelset().base.location
    print(f"  tiny bundle: {bundle}")
    if quick:
        _quick_static(out_dir)
    else:
        _reports(out_dir)
    print(f"\n{RANDOM_WEIGHTS_NOTE}\n{REAL_WEIGHTS_HOWTO}")
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return 0


def _quick_static(out_dir: Path) -> None:
    from ..engine import get_engine
    from ..generate.static import run_static
    from ..progress import TqdmProgress
    from ..settings import StaticSettings
    from ..source.samples import sample_path

    settings = StaticSettings(size=STATIC_PARAMETERS["size"], steps=STATIC_PARAMETERS["steps"],
                              detect_resolution=STATIC_PARAMETERS["detect_resolution"])
    progress = TqdmProgress()
    try:
        result = run_static(sample_path(STATIC_PARAMETERS["sample"]), settings, engine=get_engine("tiny"),
                            out_dir=out_dir / "runs", on_step=progress)
    finally:
        progress.close()
    print(f"static run: {result.run_dir}")
    print(f"  output image: {result.run_dir / 'output.png'}")


def _reports(out_dir: Path) -> None:
    from ..reports.execute import run_report

    pages = []
    print("static report (bundled sample 'transparent') ...", flush=True)
    pages.append(("static", run_report("static", STATIC_PARAMETERS, out_dir / "runs")))
    print("temporal report (bundled sample 'dark') ...", flush=True)
    pages.append(("temporal", run_report("temporal", TEMPORAL_PARAMETERS, out_dir / "runs")))
    print()
    for kind, result in pages:
        print(f"{kind} report: {result.html}  ({result.seconds:.0f} s; run folder {result.run_dir})")
