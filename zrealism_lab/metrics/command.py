"""The ``zrealism metrics`` subcommand: metrics of an image pair or a clip from files.

    zrealism metrics SOURCE OUTPUT [--mask MASK] [--json]
    zrealism metrics --clip CLIP [--reference CLIP] [--mask MASK] [--json]

CLIP is an MP4/GIF file or a folder of PNG frames. Exit codes: 0 measured, 2 bad arguments or unreadable files.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ZRealismError

EXIT_OK, EXIT_USAGE = 0, 2
_FRAME_SUFFIXES = (".png",)
_VIDEO_SUFFIXES = (".mp4", ".gif", ".webm", ".mov", ".avi", ".mkv")


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
    parser.add_argument("--clip", help="clip to measure: an MP4/GIF file or a folder of PNG frames")
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


def _check_pixels(size: tuple[int, int], path_text: str, what: str) -> None:
    """The intake's decompression-bomb cap, checked on the header before any pixel is decoded."""
    from ..intake import MAX_PIXELS_ENV, resolve_max_pixels

    cap = resolve_max_pixels()
    if size[0] * size[1] > cap:
        raise _UsageError(f"{what} '{path_text}' is {size[0]}x{size[1]} = {size[0] * size[1]:,} pixels, above the "
                          f"pixel cap of {cap:,}; downscale it, or raise ${MAX_PIXELS_ENV} if you trust the file")


def _read_image(path_text: str, what: str) -> Image.Image:
    path = _existing(path_text, what)
    if path.is_dir():
        raise _UsageError(f"{what} '{path_text}' is a folder; expected an image file")
    try:
        with Image.open(path) as image:
            _check_pixels(image.size, path_text, what)
            image.load()
            return image.convert("RGB") if image.mode != "RGB" else image.copy()
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise _UsageError(f"{what} '{path_text}' is not a readable image ({error})") from None


def _read_mask(path_text: str) -> np.ndarray:
    path = _existing(path_text, "mask")
    try:
        with Image.open(path) as image:
            _check_pixels(image.size, path_text, "mask")
            return np.asarray(image.convert("L")) > 0
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise _UsageError(f"mask '{path_text}' is not a readable image ({error})") from None


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class _FrameBudget:
    """Stops reading a clip that would not fit in memory (the same limits as video.read_clip), with a clear error
    instead of a killed process."""

    def __init__(self, path_text: str, what: str) -> None:
        self.path_text, self.what, self.frames, self.pixels = path_text, what, 0, 0

    def add(self, frame: Image.Image) -> Image.Image:
        from ..video import MAX_CLIP_PIXELS, MAX_DECODED_FRAMES

        _check_pixels(frame.size, self.path_text, f"{self.what} frame")
        self.frames += 1
        self.pixels += frame.width * frame.height
        if self.frames > MAX_DECODED_FRAMES or self.pixels > MAX_CLIP_PIXELS:
            raise _UsageError(f"{self.what} '{self.path_text}' is too long to measure at once ({self.frames:,} frames, "
                              f"{self.pixels:,} pixels so far; the limits are {MAX_DECODED_FRAMES:,} frames and "
                              f"{MAX_CLIP_PIXELS:,} pixels): cut it or take fewer frames")
        return frame


def read_clip(path_text: str, what: str = "clip") -> list[Image.Image]:
    """Frames of an MP4/GIF (imageio) or of a folder of PNG frames (in natural file-name order)."""
    path = _existing(path_text, what)
    budget = _FrameBudget(path_text, what)
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in _FRAME_SUFFIXES), key=_natural_key)
        if not files:
            raise _UsageError(f"{what} folder '{path_text}' holds no PNG frames")
        return [budget.add(_read_image(str(p), f"{what} frame")) for p in files]
    if path.suffix.lower() not in _VIDEO_SUFFIXES:
        raise _UsageError(f"{what} '{path_text}' is neither a folder of PNG frames nor one of "
                          f"{', '.join(_VIDEO_SUFFIXES)}")
    import imageio.v3 as iio

    try:
        frames = [budget.add(Image.fromarray(np.asarray(frame)[..., :3] if np.ndim(frame) == 3
                                             else np.asarray(frame)).convert("RGB"))
                  for frame in iio.imiter(path)]
    except _UsageError:
        raise
    except Exception as error:  # noqa: BLE001 - imageio raises many types for unreadable media
        raise _UsageError(f"{what} '{path_text}' could not be read as a video ({error})") from None
    if not frames:
        raise _UsageError(f"{what} '{path_text}' has no frames")
    return frames


def run_metrics_command(args: argparse.Namespace) -> int:
    """Measure and print; returns the exit code (0 ok, 2 bad arguments or files)."""
    from . import evaluate_clip, evaluate_pair

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
    except _UsageError as error:
        print(f"zrealism metrics: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ZRealismError as error:
        print(f"zrealism metrics: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    _print(json.dumps(report.to_dict(), indent=2) if args.json else report.as_table())
    return EXIT_OK


def _print(text: str) -> None:
    # The table uses ↑ ↓ ∞ ΔE; a pipe on a legacy code page must not turn a finished measurement into a crash.
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    print(text.encode(encoding, errors="replace").decode(encoding, errors="replace"))
