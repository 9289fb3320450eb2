"""The ``zrealism metrics`` subcommand: metrics of an image pair or a clip from files.

    zrealism metrics SOURCE OUTPUT [--mask MASK] [--json]
    zrealism metrics --clip CLIP [--reference CLIP] [--mask MASK] [--json]

CLIP is a video (MP4/MOV/WebM ...), an animated GIF/WebP or a folder of frames (PNG/JPG ...). Exit codes: 0 measured, 2 bad arguments or unreadable files.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ZRealismError
from .common import EXIT_USAGE

EXIT_OK = 0


def add_parser(subparsers: "argparse._SubParsersAction") -> None:
    parser = subparsers.add_parser(
        "metrics",
        help="measure an output against its source, or the stability of a clip",
        description=("Image pair: structure, edges, colour (CIEDE2000, L*a*b* moments) and texture of OUTPUT "
                     "against SOURCE. Clip (--clip): flicker, warping error and colour stability, beside the "
                     "same numbers on --reference when given."),
    )
    parser.add_argument("source", nargs="?", help="source image (PNG/JPEG/WebP...)")
    parser.add_argument("output", nargs="?", help="generated image to compare with the source")
    parser.add_argument("--mask", help="subject mask image (nonzero = subject); restricts colour metrics")
    parser.add_argument("--clip", help="clip to measure: a video, an animated GIF/WebP or a folder of frames (as for run temporal --clip)")
    parser.add_argument("--reference", help="reference (input) clip for --clip, same formats")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    parser.set_defaults(func=run_metrics_command)


class _UsageError(Exception):
    pass


def _existing(path_text: str, what: str) -> Path:
    path = Path(path_text).expanduser()
    if not path.exists():
        raise _UsageError(f"{what} '{path_text}' does not exist")
    return path


def _read_image(path_text: str, what: str) -> Image.Image:
    """Through the same intake as runs (orientation, bit depth, mode, pixel cap), so a file scores as a run reads it."""
    from ..source.intake import load_image

    path = _existing(path_text, what)
    if path.is_dir():
        raise _UsageError(f"{what} '{path_text}' is a folder; expected an image file")
    try:
        return load_image(path).image.convert("RGB")
    except ZRealismError as error:
        raise _UsageError(f"{what} '{path_text}' is not a readable image ({error})") from None


def _read_mask(path_text: str) -> np.ndarray:
    return np.asarray(_read_image(path_text, "mask").convert("L")) > 0


def read_clip(path_text: str, what: str = "clip") -> list[Image.Image]:
    """Every frame of a clip, read by the same reader as clip -> clip runs (``source.video.read_clip``). A clip too
    long to hold is refused rather than measured in part."""
    from ..source.video import read_clip as read_frames

    _existing(path_text, what)
    try:
        clip = read_frames(path_text)
    except ZRealismError as error:
        raise _UsageError(f"{what} '{path_text}' could not be read: {error}") from None
    stopped = [note for note in clip.notes if note.startswith("stopped reading")]
    if stopped:
        raise _UsageError(f"{what} '{path_text}' is too long to measure at once ({stopped[0]}): cut it or take fewer "
                          "frames")
    return clip.frames


def run_metrics_command(args: argparse.Namespace) -> int:
    """Measure and print; returns the exit code (0 ok, 2 bad arguments or files)."""
    from ..metrics import evaluate_clip, evaluate_pair

    try:
        clip = getattr(args, "clip", None)
        if clip:
            if args.source or args.output:
                raise _UsageError("give either SOURCE OUTPUT or --clip CLIP, not both")
            frames = read_clip(clip, "clip")
            reference = read_clip(args.reference, "reference") if args.reference else None
            mask = _read_mask(args.mask) if args.mask else None
            report = evaluate_clip(frames, reference=reference, mask=mask)
        else:
            if args.reference:
                raise _UsageError("--reference only goes with --clip")
            if not (args.source and args.output):
                raise _UsageError("give SOURCE and OUTPUT images, or --clip CLIP")
            source = _read_image(args.source, "source")
            output = _read_image(args.output, "output")
            mask = _read_mask(args.mask) if args.mask else None
            if mask is not None and mask.shape != (source.height, source.width):
                raise _UsageError(f"mask is {mask.shape[1]}x{mask.shape[0]} px but the source is "
                                  f"{source.width}x{source.height} px; they must match")
            report = evaluate_pair(source, output, mask=mask)
    except (_UsageError, ZRealismError) as error:
        print(f"zrealism metrics: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    _print(json.dumps(report.to_dict(), indent=2) if args.json else report.as_table())
    return EXIT_OK


def _print(text: str) -> None:
    # The table uses ↑ ↓ ∞ ΔE; a pipe on a legacy code page must not turn a finished measurement into a crash.
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    print(text.encode(encoding, errors="replace").decode(encoding, errors="replace"))
