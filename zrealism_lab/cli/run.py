"""`zrealism run static` (source image -> photoreal still) and `zrealism run temporal` (a still or an input clip
-> a live-action clip: MP4, GIF, PNG frames, record.json)."""
from __future__ import annotations

import argparse
from typing import Any

from .common import (add_generation_arguments, add_spec_flags, base_settings, modelset_from_args, number_type, print_result,
                     resolve_image_argument, settings_from_args, spec_help)

# Temporal flags beyond the shared generation arguments: (setting, flag).
_TEMPORAL_FLAGS = (("frames", "--frames"), ("fps", "--fps"), ("context_length", "--context-length"),
                   ("context_stride", "--context-stride"), ("free_init_iters", "--free-init-iters"),
                   ("every", "--every"), ("max_frames", "--max-frames"), ("decode_chunk", "--decode-chunk"))



def add_parser(subparsers: Any) -> None:
    """`zrealism run static|temporal`."""
    run = subparsers.add_parser("run", help="transform an image (static) or make a clip (temporal)")
    run_sub = run.add_subparsers(dest="mode", metavar="MODE")
    from ..settings import SPECS, StaticSettings

    static = run_sub.add_parser("static", help="source image -> photoreal still", conflict_handler="resolve",
                                description="Source image -> photoreal still; writes PNGs, control maps and record.json.")
    static.add_argument("--image", required=True,
                        help="source image (PNG, JPEG, WebP, BMP, TIFF, GIF), or sample:NAME for a bundled sample "
                             "(transparent, dark, light, scenic)")
    add_generation_arguments(static)
    add_refinement_arguments(static)
    add_spec_flags(static, SPECS, StaticSettings())  # last: every setting without a flag of its own gets one
    static.set_defaults(func=cmd_run_static)
    add_temporal_parser(run_sub)


def refinement_specs(temporal: bool = False) -> tuple[dict[str, Any], Any]:
    """The refinement specs a run kind takes (clips: a hires factor and face detail) and its default settings."""
    from ..settings import REFINE_SPECS, TEMPORAL_SPECS, StaticSettings, TemporalSettings

    if temporal:
        return {n: s for n, s in TEMPORAL_SPECS.items() if n.startswith(("face_", "hires"))}, TemporalSettings()
    return dict(REFINE_SPECS), StaticSettings()


def add_refinement_arguments(parser: argparse.ArgumentParser, temporal: bool = False) -> None:
    """The hires-fix and face-detail flags, with help from the one table of specs."""
    specs, d = refinement_specs(temporal)
    group = parser.add_argument_group("refinement passes", "hires fix of every frame (e.g. --hires 1.5) and "
                                      "face detail (--face-detail)" if temporal else "hires fix (e.g. --hires 2.0 --hires-strength 0.35) and face detail "
                                      "(--face-detail)")
    for name, spec in specs.items():
        flag = "--" + name.replace("_", "-")
        if spec.kind is bool:
            group.add_argument(flag, action="store_true", default=None, help=spec.help)
        elif spec.kind is str:
            group.add_argument(flag, default=None, help=spec_help(spec, getattr(d, name)))
        else:
            group.add_argument(flag, type=number_type(spec), default=None, help=spec_help(spec, getattr(d, name)))
    group.add_argument("--face-box", action="append", default=None, metavar="X0,Y0,X1,Y1",
                       help="face detail: a face box in pixels of the output frames (repeatable: one per face, "
                            "each tracked)" if temporal else
                       "face detail: a face box in pixels of the final output, instead of the detector (repeatable)")


def refinement_changes(args: argparse.Namespace, temporal: bool = False) -> dict[str, Any]:
    from ..settings import parse_box

    specs, _ = refinement_specs(temporal)
    changes = {name: getattr(args, name) for name in specs if getattr(args, name, None) is not None}
    if getattr(args, "face_box", None):
        changes["face_boxes"] = tuple(parse_box(text) for text in args.face_box)
        changes.setdefault("face_detail", True)  # a face box asks for the pass
    return changes


def static_settings_from_args(args: argparse.Namespace) -> Any:
    from ..settings import StaticSettings

    return settings_from_args(args, base_settings(args, StaticSettings).replace(**refinement_changes(args)))


def cmd_run_static(args: argparse.Namespace) -> int:
    from ..source.intake import validate_image_path

    settings = static_settings_from_args(args)
    args.image = resolve_image_argument(args.image)
    validate_image_path(args.image)
    models = modelset_from_args(args)
    from ..engine.engine import get_engine
    from ..generate.static import run_static

    engine = get_engine(models, device=args.device, offload=args.offload, dtype=args.dtype,
                        allow_pickle=args.allow_pickle, autocast=args.autocast, preview=args.preview)
    from ..progress import TqdmProgress

    progress = TqdmProgress(disable=args.quiet)
    try:
        result = run_static(args.image, settings, engine=engine, out_dir=args.out, on_step=progress)
    finally:
        progress.close()
    print_result(result.run_dir, result.warnings, models.random_weights, f"{result.timings.get('total', 0.0):.1f} s")
    return 0


def add_temporal_parser(run_subparsers: Any) -> argparse.ArgumentParser:
    """The `temporal` mode of `zrealism run`."""
    from ..settings import TEMPORAL_SPECS, TemporalSettings

    d = TemporalSettings()
    parser = run_subparsers.add_parser(
        "temporal", help="still or clip -> live-action clip (AnimateDiff)", conflict_handler="resolve",
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
            action.help = spec_help(TEMPORAL_SPECS[action.dest], getattr(d, action.dest))
    for name, flag in _TEMPORAL_FLAGS:
        spec = TEMPORAL_SPECS[name]
        parser.add_argument(flag, type=number_type(spec), default=None, help=spec_help(spec, getattr(d, name)))
    parser.add_argument("--motion-prompt", default=None,
                        help=spec_help(TEMPORAL_SPECS["motion_prompt"], repr(d.motion_prompt)))
    parser.add_argument("--free-init", action="store_true", default=None, help=TEMPORAL_SPECS["free_init"].help)
    parser.add_argument("--fast-decode", action="store_true",
                        help="decode the clip with the model set's tiny autoencoder (TAESD) instead of the VAE: "
                             "much faster, slightly softer frames")
    parser.add_argument("--clip-fit", default=None, help=spec_help(TEMPORAL_SPECS["clip_fit"], d.clip_fit))
    add_refinement_arguments(parser, temporal=True)
    add_spec_flags(parser, TEMPORAL_SPECS, d)  # last: every setting without a flag of its own gets one
    parser.set_defaults(func=cmd_run_temporal)
    return parser


def temporal_settings_from_args(args: argparse.Namespace) -> Any:
    from ..settings import TemporalSettings

    changes = {}
    for name in [n for n, _ in _TEMPORAL_FLAGS] + ["motion_prompt", "free_init", "clip_fit"]:
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    changes.update(refinement_changes(args, temporal=True))
    return settings_from_args(args, base_settings(args, TemporalSettings).replace(**changes))


def cmd_run_temporal(args: argparse.Namespace) -> int:
    from ..progress import TqdmProgress

    settings = temporal_settings_from_args(args)  # every setting is checked before any model loads
    if args.image is not None:
        from ..source.intake import validate_image_path

        args.image = resolve_image_argument(args.image)
        validate_image_path(args.image)
    else:
        from ..source.video import validate_clip_path

        validate_clip_path(args.clip)
    models = modelset_from_args(args)
    from ..engine.engine import get_engine
    from ..generate.temporal import run_temporal

    engine = get_engine(models, device=args.device, offload=args.offload, dtype=args.dtype,
                        allow_pickle=args.allow_pickle, autocast=args.autocast, preview=args.preview,
                        fast_decode=args.fast_decode)
    progress = TqdmProgress(disable=args.quiet)
    try:
        result = run_temporal(args.image, settings, clip=args.clip, engine=engine, out_dir=args.out,
                              on_step=progress)
    finally:
        progress.close()
    print_result(result.run_dir, result.warnings, models.random_weights,
                 f"{len(result.frames)} frames at {result.fps:g} fps, {result.timings.get('total', 0.0):.1f} s")
    return 0
