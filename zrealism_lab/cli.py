"""The `zrealism` command: a thin face over the same functions the notebooks call."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Sequence

from .errors import SettingsError, ZRealismError
from .spec import Spec

EXIT_USAGE = 2


def _spec_help(spec: Spec, default: Any) -> str:
    return f"{spec.help}; {spec.allowed()} (default: {default})"


def parse_controls(text: str) -> list[Any]:
    """'depth,canny' or 'depth=0.8,openpose=0.6:0.0:0.8' (scale[:start:end])."""
    from .settings import ControlUnit

    units = []
    if text.strip().lower() in ("", "none"):
        return units
    for item in text.split(","):
        kind, _, rest = item.strip().partition("=")
        values: dict[str, Any] = {"kind": kind}
        if rest:
            parts = rest.split(":")
            try:
                numbers = [float(p) for p in parts]
            except ValueError:
                raise SettingsError("controls", item, "KIND or KIND=SCALE or KIND=SCALE:START:END with numbers") from None
            if len(numbers) not in (1, 3):
                raise SettingsError("controls", item, "KIND=SCALE or KIND=SCALE:START:END")
            values["scale"] = numbers[0]
            if len(numbers) == 3:
                values["start"], values["end"] = numbers[1], numbers[2]
        units.append(ControlUnit(**values))
    return units


def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by static and temporal runs, with help text from the one table of specs."""
    from .settings import SPECS, StaticSettings

    d = StaticSettings()
    parser.add_argument("--preset", default="realistic-vision",
                        help="model set: realistic-vision, tiny (offline, random weights) or a model folder")
    parser.add_argument("--component", action="append", default=[], metavar="ROLE=PATH",
                        help="point one component at your own files: base, vae, motion_adapter or controlnet:KIND "
                             "= hub id, diffusers folder or .safetensors file (repeatable)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="allow pickle checkpoints (.ckpt/.bin/.pt/.pth); only for files you trust")
    parser.add_argument("--prompt", default=None, help=_spec_help(SPECS["prompt"], "a photoreal portrait prompt"))
    parser.add_argument("--negative-prompt", default=None, help=SPECS["negative_prompt"].help)
    parser.add_argument("--profile", default=None, help=SPECS["profile"].help)
    for name, flag in (("seed", "--seed"), ("steps", "--steps"), ("strength", "--strength"), ("cfg", "--cfg"),
                       ("size", "--size"), ("colour_strength", "--colour-strength")):
        spec = SPECS[name]
        parser.add_argument(flag, type=_number(spec), default=None, help=_spec_help(spec, getattr(d, name)))
    parser.add_argument("--scheduler", default=None, help=_spec_help(SPECS["scheduler"], d.scheduler))
    parser.add_argument("--colour-method", default=None, help=_spec_help(SPECS["colour_method"], d.colour_method))
    parser.add_argument("--controls", default=None,
                        help="control units: 'depth,canny' or 'depth=0.8,openpose=0.7:0.0:0.9' (scale[:start:end]); "
                             "'none' for plain img2img (default: the preset's units)")
    parser.add_argument("--device", default="auto", help="auto, cuda, mps or cpu (default: auto)")
    parser.add_argument("--offload", default="auto", help="auto, none, model or sequential (default: auto)")
    parser.add_argument("--out", required=True, help="folder under which the run's own folder is created")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _number(spec: Spec) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return int(text) if spec.kind is int else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{spec.name} must be {spec.allowed()}, got {text!r}") from None

    convert.__name__ = spec.name
    return convert


def settings_from_args(args: argparse.Namespace, base: Any) -> Any:
    changes: dict[str, Any] = {}
    for name in ("prompt", "negative_prompt", "profile", "seed", "steps", "strength", "cfg", "size", "scheduler",
                 "colour_method", "colour_strength"):
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    if args.controls is not None:
        changes["controls"] = tuple(parse_controls(args.controls))
    return base.replace(**changes).validated()


def modelset_from_args(args: argparse.Namespace) -> Any:
    from .models.modelset import resolve_modelset

    if args.preset not in ("tiny", "realistic-vision") and not os.path.isdir(args.preset):
        raise SettingsError("preset", args.preset, "tiny, realistic-vision or an existing model folder")
    models = resolve_modelset(args.preset)
    for item in args.component:
        role, sep, value = item.partition("=")
        if not sep:
            raise SettingsError("component", item, "ROLE=PATH, e.g. controlnet:depth=./my-depth-controlnet")
        models = models.with_component(role.strip(), value.strip())
    return models


class TqdmProgress:
    """A tqdm bar per stage, fed by the uniform step events."""

    def __init__(self, disable: bool = False) -> None:
        self.disable, self.bar, self.stage = disable, None, None

    def __call__(self, event: Any) -> None:
        from tqdm.auto import tqdm

        if self.disable or event.stage == "load":
            return
        if self.bar is None or self.stage != event.stage:
            self.close()
            self.bar = tqdm(total=event.total, desc=event.stage, unit="step", file=sys.stderr)
            self.stage = event.stage
        self.bar.n = event.step
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def cmd_run_static(args: argparse.Namespace) -> int:
    from .intake import validate_image_path
    from .settings import StaticSettings

    settings = settings_from_args(args, StaticSettings())
    args.image = resolve_image_argument(args.image)
    validate_image_path(args.image)
    models = modelset_from_args(args)
    from .engine import get_engine
    from .static import run_static

    engine = get_engine(models, device=args.device, offload=args.offload, allow_pickle=args.allow_pickle)
    progress = TqdmProgress(disable=args.quiet)
    try:
        result = run_static(args.image, settings, engine=engine, out_dir=args.out, on_step=progress)
    finally:
        progress.close()
    _print_result(result.run_dir, result.warnings, models.random_weights, result.timings.get("total"))
    return 0


def resolve_image_argument(value: str) -> str:
    """`sample:NAME` names a bundled sample character; anything else is a path."""
    if value.startswith("sample:"):
        from .samples import sample_path

        return str(sample_path(value.split(":", 1)[1]))
    return value


def _print_result(run_dir: Any, notes: Sequence[str], random_weights: bool, seconds: float | None) -> None:
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if random_weights:
        print("note: the tiny preset has random weights: its pictures show the plumbing, not realism.", file=sys.stderr)
    print(f"run folder: {run_dir}" + (f"  ({seconds:.1f} s)" if seconds is not None else ""))


def cmd_models_check(args: argparse.Namespace) -> int:
    from .models.loading import locate
    from .models.modelset import resolve_modelset

    models = resolve_modelset(args.preset)
    statuses = [locate(ref) for ref in models.components()]
    print(f"model set {models.name}:")
    for status in statuses:
        print("  " + status.line())
    missing = [s for s in statuses if not s.present]
    if missing:
        print(f"{len(missing)} component(s) missing. Fetch them with `zrealism models download {models.name}` on a "
              "machine with internet access, or point them at local files with --component ROLE=PATH.")
    return 1 if missing else 0


def cmd_models_download(args: argparse.Namespace) -> int:
    from .models.download import download_modelset

    download_modelset(args.preset)
    return 0


def cmd_models_tiny(args: argparse.Namespace) -> int:
    from .models.tiny import build_tiny_bundle

    path = build_tiny_bundle(args.out, seed=args.seed, overwrite=args.overwrite)
    print(f"tiny bundle: {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(out=args.out, quick=getattr(args, "quick", False))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zrealism",
        description="Z-Realism Lab: turn 2D/anime character art into photoreal stills and clips, and measure the result.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="transform an image (static) or make a clip (temporal)")
    run_sub = run.add_subparsers(dest="mode", metavar="MODE")
    static = run_sub.add_parser("static", help="source image -> photoreal still",
                                description="Source image -> photoreal still; writes PNGs, control maps and record.json.")
    static.add_argument("--image", required=True, help="source image (PNG, JPEG, WebP, BMP, TIFF, GIF), or sample:NAME for a bundled "
                             "sample (transparent, dark, light, scenic)")
    add_generation_arguments(static)
    static.set_defaults(func=cmd_run_static)
    _add_optional("zrealism_lab.temporal_cli", "add_parser", run_sub)

    models = sub.add_parser("models", help="check, download or build model weights")
    models_sub = models.add_subparsers(dest="action", metavar="ACTION")
    check = models_sub.add_parser("check", help="list each component of a preset as present/missing with its size")
    check.add_argument("preset", nargs="?", default="realistic-vision")
    check.set_defaults(func=cmd_models_check)
    download = models_sub.add_parser("download", help="fetch a preset's weights (needs internet access)")
    download.add_argument("preset", nargs="?", default="realistic-vision")
    download.set_defaults(func=cmd_models_download)
    tiny = models_sub.add_parser("tiny", help="build the tiny random-weight bundle (offline)")
    tiny.add_argument("--out", required=True, help="folder to write the bundle into")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--overwrite", action="store_true")
    tiny.set_defaults(func=cmd_models_tiny)

    demo = sub.add_parser("demo", help="transform bundled sample characters offline with the tiny preset")
    demo.add_argument("--out", default="zrealism-demo", help="output folder (default: ./zrealism-demo)")
    demo.add_argument("--quick", action="store_true", help="one still only, no reports")
    demo.set_defaults(func=cmd_demo)

    _add_optional("zrealism_lab.metrics.command", "add_parser", sub)
    for module in ("zrealism_lab.reports_cli", "zrealism_lab.sweep_cli", "zrealism_lab.bench"):
        _add_optional(module, "add_parser", sub)
    return parser


def _add_optional(module: str, attr: str, subparsers: Any) -> None:
    """Subcommands contributed by feature modules (each keeps its own argument definitions)."""
    import importlib
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return
    getattr(importlib.import_module(module), attr)(subparsers)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return EXIT_USAGE if argv else 0
    try:
        code = args.func(args)
    except ZRealismError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
