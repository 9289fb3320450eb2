"""`zrealism run temporal`: a still or an input clip -> a live-action clip (MP4, GIF, PNG frames, record.json)."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from .spec import Spec

# Temporal flags beyond the shared generation arguments: (setting, flag).
_TEMPORAL_FLAGS = (("frames", "--frames"), ("fps", "--fps"), ("context_length", "--context-length"),
                   ("context_stride", "--context-stride"), ("free_init_iters", "--free-init-iters"),
                   ("every", "--every"), ("max_frames", "--max-frames"), ("decode_chunk", "--decode-chunk"))


def _help(spec: Spec, default: Any) -> str:
    return f"{spec.help}; {spec.allowed()} (default: {default})"


def _integer(spec: Spec) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{spec.name} must be {spec.allowed()}, got {text!r}") from None

    convert.__name__ = spec.name
    return convert


def add_parser(run_subparsers: Any) -> argparse.ArgumentParser:
    """Add the `temporal` mode to `zrealism run`."""
    from .cli import add_generation_arguments
    from .temporal import TEMPORAL_SPECS, TemporalSettings

    d = TemporalSettings()
    parser = run_subparsers.add_parser(
        "temporal", help="still or clip -> live-action clip (AnimateDiff)",
        description="Animate a still (the source image, prepared) or turn an input clip into a live-action clip. "
                    "Writes clip.mp4 (H.264), clip.gif, frames/*.png and record.json into a new run folder.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="source image to animate (PNG, JPEG, WebP, BMP, TIFF, GIF), or "
                                        "sample:NAME for a bundled sample")
    source.add_argument("--clip", help="input clip: MP4/MOV/WebM/GIF/WebP file or a folder of PNG/JPG frames")
    add_generation_arguments(parser)
    # The shared arguments describe still-image defaults and ranges; show the temporal ones instead.
    for action in parser._actions:
        if action.dest in TEMPORAL_SPECS and action.dest not in ("prompt", "negative_prompt") and action.help:
            action.help = _help(TEMPORAL_SPECS[action.dest], getattr(d, action.dest))
    for name, flag in _TEMPORAL_FLAGS:
        spec = TEMPORAL_SPECS[name]
        parser.add_argument(flag, type=_integer(spec), default=None, help=_help(spec, getattr(d, name)))
    parser.add_argument("--motion-prompt", default=None,
                        help=_help(TEMPORAL_SPECS["motion_prompt"], repr(d.motion_prompt)))
    parser.add_argument("--free-init", action="store_true", default=None, help=TEMPORAL_SPECS["free_init"].help)
    parser.add_argument("--clip-fit", default=None, help=_help(TEMPORAL_SPECS["clip_fit"], d.clip_fit))
    parser.set_defaults(func=cmd_run_temporal)
    return parser


def temporal_settings_from_args(args: argparse.Namespace) -> Any:
    from .cli import settings_from_args
    from .temporal import TemporalSettings

    changes = {}
    for name in [n for n, _ in _TEMPORAL_FLAGS] + ["motion_prompt", "free_init", "clip_fit"]:
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    return settings_from_args(args, TemporalSettings().replace(**changes))


def cmd_run_temporal(args: argparse.Namespace) -> int:
    from .cli import TqdmProgress, modelset_from_args, resolve_image_argument

    settings = temporal_settings_from_args(args)  # every setting is checked before any model loads
    if args.image is not None:
        from .intake import validate_image_path

        args.image = resolve_image_argument(args.image)
        validate_image_path(args.image)
    else:
        from .video import validate_clip_path

        validate_clip_path(args.clip)
    models = modelset_from_args(args)
    from .engine import get_engine
    from .temporal import run_temporal

    engine = get_engine(models, device=args.device, offload=args.offload, allow_pickle=args.allow_pickle)
    progress = TqdmProgress(disable=args.quiet)
    try:
        result = run_temporal(args.image, settings, clip=args.clip, engine=engine, out_dir=args.out,
                              on_step=progress)
    finally:
        progress.close()
    for note in result.warnings:
        print(f"note: {note}", file=sys.stderr)
    if models.random_weights:
        print("note: the tiny preset has random weights: its clips show the plumbing, not realism.", file=sys.stderr)
    print(f"run folder: {result.run_dir}  ({len(result.frames)} frames at {result.fps:g} fps, "
          f"{result.timings.get('total', 0.0):.1f} s)")
    return 0
