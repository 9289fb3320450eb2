"""`zrealism run static` (source image -> photoreal still) and `zrealism run temporal` (a still or an input clip
-> a live-action clip: MP4, GIF, PNG frames, record.json). Both take --batch-count N (N runs at seeds seed, seed+1,
..., with a grid of the outputs), and `run static --image FOLDER` runs every image of a folder."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
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
                        help="source image (PNG, JPEG, WebP, BMP, TIFF, GIF), sample:NAME for a bundled sample "
                             "(transparent, dark, light, scenic), or a folder of images: each png/jpg/jpeg/webp "
                             "in it (sorted, hidden files skipped) is run, and a summary table is printed and "
                             "written (summary.csv, summary.md); the exit code is 1 when any image failed")
    add_generation_arguments(static)
    add_batch_arguments(static)
    add_refinement_arguments(static)
    add_spec_flags(static, SPECS, StaticSettings())  # last: every setting without a flag of its own gets one
    static.set_defaults(func=cmd_run_static)
    add_temporal_parser(run_sub)


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """--batch-count, and -1 as the random seed (the seed flag itself comes from the shared arguments)."""
    from ..generate.batch import MAX_BATCH_COUNT, RANDOM_SEED

    parser.add_argument("--batch-count", type=int, default=1, metavar="N",
                        help=f"make N runs at seeds seed, seed+1, ... (from 1 to {MAX_BATCH_COUNT}; default 1): one "
                             "run folder each, plus a batch folder with grid.png of the outputs (a clip's first "
                             "frame) and batch.json. A failed or cancelled run stops the batch; finished runs stay")
    for action in parser._actions:
        if action.dest == "seed" and action.help:
            action.help += f"; {RANDOM_SEED} draws a random seed (a batch counts up from it)"


def _take_random_seed(args: argparse.Namespace) -> bool:
    """`--seed -1`: the settings are built without it, and the run (or batch) draws one."""
    from ..generate.batch import RANDOM_SEED

    if getattr(args, "seed", None) == RANDOM_SEED:
        args.seed = None
        return True
    return False


def _with_seed(settings: Any, random_seed: bool, count: int) -> Any:
    from ..generate.batch import draw_seed

    return settings.replace(seed=draw_seed(count)).validated() if random_seed else settings


def _print_run(number: int, count: int, result: Any) -> None:
    """One line per finished run of a batch, as it finishes."""
    from .common import print_result

    seconds = f"{result.timings.get('total', 0.0):.1f} s"
    summary = f"run {number} of {count}, seed {result.settings.seed}, {seconds}" if count > 1 else seconds
    print_result(result.run_dir, result.warnings, False, summary)
    sys.stdout.flush()


def _run_batch(run: Any, count: int, random_weights: bool) -> int:
    """Run a batch through ``run(on_run)`` and say where its runs and grid are; a stopped batch says what was kept,
    then its error ends the command as any run's would."""
    from ..models.modelset import RANDOM_WEIGHTS_NOTE

    try:
        batch = run(_print_run)
    except BaseException as exc:
        stopped = getattr(exc, "batch", None)
        if stopped is not None:
            where = f" (summary: {stopped.folder / 'batch.json'})" if stopped.folder is not None else ""
            print(f"batch stopped: {stopped.error}{where}", file=sys.stderr)
        raise
    if random_weights:
        print(f"note: {RANDOM_WEIGHTS_NOTE}", file=sys.stderr)
    seeds = f"seeds {batch.seeds[0]}..{batch.seeds[-1]}" + (" (drawn)" if batch.random_seed else "")
    print(f"batch folder: {batch.folder}  ({count} runs, {seeds}, {batch.seconds:.1f} s; grid.png, batch.json)")
    return 0


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
    from ..generate.batch import batch_seeds, list_images
    from ..source.intake import validate_image_path

    random_seed = _take_random_seed(args)
    settings = static_settings_from_args(args)
    count = args.batch_count
    batch_seeds(0 if random_seed else settings.seed, count)  # a bad count is refused before any model loads
    args.image = resolve_image_argument(args.image)
    folder = Path(args.image).expanduser().is_dir()
    if folder:
        list_images(args.image)  # a folder without images is refused before any model loads
    else:
        validate_image_path(args.image)
    models = modelset_from_args(args)
    from ..engine.engine import get_engine
    from ..generate.static import run_static

    engine = get_engine(models, device=args.device, offload=args.offload, dtype=args.dtype,
                        allow_pickle=args.allow_pickle, autocast=args.autocast, preview=args.preview)
    from ..progress import TqdmProgress

    progress = TqdmProgress(disable=args.quiet)
    try:
        if folder:
            return _run_folder(args, _with_seed(settings, random_seed, count), count, engine, progress,
                               models.random_weights)
        if count > 1:
            from ..generate.batch import RANDOM_SEED, run_static_batch

            if random_seed:
                settings = settings.replace(seed=RANDOM_SEED)  # the batch draws it, leaving room to count up
            return _run_batch(lambda on_run: run_static_batch(args.image, settings, count=count, engine=engine,
                                                              out_dir=args.out, on_step=progress, on_run=on_run),
                              count, models.random_weights)
        settings = _with_seed(settings, random_seed, 1)
        result = run_static(args.image, settings, engine=engine, out_dir=args.out, on_step=progress)
    finally:
        progress.close()
    print_result(result.run_dir, result.warnings, models.random_weights, f"{result.timings.get('total', 0.0):.1f} s"
                 + (f", seed {settings.seed} (drawn)" if random_seed else ""))
    return 0


def _run_folder(args: argparse.Namespace, settings: Any, count: int, engine: Any, progress: Any,
                random_weights: bool) -> int:
    """Every image of the folder (and --batch-count runs of each); the summary table is printed and written. Exit
    code 1 when any image failed: the summary says which and why."""
    from ..generate.batch import SUMMARY_CSV, run_static_folder
    from ..models.modelset import RANDOM_WEIGHTS_NOTE

    def on_image(image: Path, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if row["status"] != "completed":
                print(f"{image.name}: {row['status']}: {row['error']}", file=sys.stderr)

    try:
        done = run_static_folder(args.image, settings, count=count, out_dir=args.out, engine=engine,
                                 on_step=progress, on_run=_print_run,
                                 on_image=on_image)
    except BaseException as exc:
        partial = getattr(exc, "folder_result", None)
        if partial is not None and partial.folder is not None:
            print(f"stopped; the summary of what finished: {partial.folder / SUMMARY_CSV}", file=sys.stderr)
        raise
    if random_weights:
        print(f"note: {RANDOM_WEIGHTS_NOTE}", file=sys.stderr)
    print(done.table, end="")
    print(f"summary: {done.folder / SUMMARY_CSV}" if done.folder is not None else "")
    failed = {row["image"] for row in done.failed}
    if failed:
        print(f"error: {len(failed)} of {len({row['image'] for row in done.rows})} images failed: "
              + ", ".join(sorted(failed)), file=sys.stderr)
        return 1
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
    add_batch_arguments(parser)
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

    from ..generate.batch import batch_seeds

    random_seed = _take_random_seed(args)
    settings = temporal_settings_from_args(args)  # every setting is checked before any model loads
    count = args.batch_count
    batch_seeds(0 if random_seed else settings.seed, count)  # a bad count is refused before any model loads
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
        if count > 1:
            from ..generate.batch import RANDOM_SEED, run_temporal_batch

            if random_seed:
                settings = settings.replace(seed=RANDOM_SEED)  # the batch draws it, leaving room to count up
            return _run_batch(lambda on_run: run_temporal_batch(args.image, settings, clip=args.clip, count=count,
                                                                engine=engine, out_dir=args.out, on_step=progress,
                                                                on_run=on_run),
                              count, models.random_weights)
        settings = _with_seed(settings, random_seed, 1)
        result = run_temporal(args.image, settings, clip=args.clip, engine=engine, out_dir=args.out,
                              on_step=progress)
    finally:
        progress.close()
    print_result(result.run_dir, result.warnings, models.random_weights,
                 f"{len(result.frames)} frames at {result.fps:g} fps, {result.timings.get('total', 0.0):.1f} s")
    return 0
