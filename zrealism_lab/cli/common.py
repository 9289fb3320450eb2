"""What the commands share: argument definitions drawn from the one table of specs, settings and model sets from
arguments, the result lines every run prints, and one way to turn errors into exit codes."""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from typing import Any, Callable, Iterator, Sequence

from ..errors import SettingsError, ZRealismError
from ..spec import Spec

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are two lines (what was wrong, where the help is), not the whole
    usage block; its subcommands' parsers are of the same class."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\nSee `{self.prog} --help` for what is allowed.\n")


def spec_help(spec: Spec, default: Any) -> str:
    return f"{spec.help}; {spec.allowed()} (default: {default})"


def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by static and temporal runs, with help text from the one table of specs."""
    from ..settings import SPECS, StaticSettings

    d = StaticSettings()
    parser.add_argument("--preset", default="realistic-vision",
                        help="model set: realistic-vision, tiny (offline, random weights) or a model folder")
    parser.add_argument("--component", action="append", default=[], metavar="ROLE=PATH",
                        help="point one component at your own files: base, vae, motion_adapter or controlnet:KIND "
                             "= hub id, diffusers folder or .safetensors file (repeatable)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="allow pickle checkpoints (.ckpt/.bin/.pt/.pth); only for files you trust")
    parser.add_argument("--prompt", default=None, help=spec_help(SPECS["prompt"], "a photoreal portrait prompt"))
    parser.add_argument("--negative-prompt", default=None, help=SPECS["negative_prompt"].help)
    parser.add_argument("--profile", default=None, help=SPECS["profile"].help)
    for name, flag in (("seed", "--seed"), ("steps", "--steps"), ("strength", "--strength"), ("cfg", "--cfg"),
                       ("size", "--size"), ("colour_strength", "--colour-strength")):
        spec = SPECS[name]
        parser.add_argument(flag, type=number_type(spec), default=None, help=spec_help(spec, getattr(d, name)))
    parser.add_argument("--scheduler", default=None, help=spec_help(SPECS["scheduler"], d.scheduler))
    parser.add_argument("--colour-method", default=None, help=spec_help(SPECS["colour_method"], d.colour_method))
    parser.add_argument("--controls", default=None,
                        help="control units: 'depth,canny' or 'depth=0.8,openpose=0.7:0.0:0.9' (scale[:start:end]), "
                             "a detector method after the kind ('openpose:mediapipe=0.8'); 'none' for plain img2img "
                             "(default: the preset's units)")
    parser.add_argument("--device", default="auto", help="auto, cuda, mps or cpu (default: auto)")
    parser.add_argument("--offload", default="auto", help="auto, none, model or sequential (default: auto)")
    parser.add_argument("--out", required=True, help="folder under which the run's own folder is created")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def number_type(spec: Spec) -> Callable[[str], Any]:
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
        from ..settings import parse_controls

        changes["controls"] = tuple(parse_controls(args.controls))
    return base.replace(**changes).validated()


def modelset_from_args(args: argparse.Namespace) -> Any:
    from ..models.modelset import resolve_modelset

    if args.preset not in ("tiny", "realistic-vision") and not os.path.isdir(args.preset):
        raise SettingsError("preset", args.preset, "tiny, realistic-vision or an existing model folder")
    models = resolve_modelset(args.preset)
    for item in args.component:
        role, sep, value = item.partition("=")
        if not sep:
            raise SettingsError("component", item, "ROLE=PATH, e.g. controlnet:depth=./my-depth-controlnet")
        models = models.with_component(role.strip(), value.strip())
    return models


def resolve_image_argument(value: str) -> str:
    """`sample:NAME` names a bundled sample character; anything else is a path."""
    if value.startswith("sample:"):
        from ..source.samples import sample_path

        return str(sample_path(value.split(":", 1)[1]))
    return value


def print_result(run_dir: Any, notes: Sequence[str], random_weights: bool, summary: str = "") -> None:
    """The lines every run prints: its notes, the random-weights note where it applies, and the run folder."""
    from ..models.modelset import RANDOM_WEIGHTS_NOTE

    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if random_weights:
        print(f"note: {RANDOM_WEIGHTS_NOTE}", file=sys.stderr)
    print(f"run folder: {run_dir}" + (f"  ({summary})" if summary else ""))


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is (as Ctrl-C raises KeyboardInterrupt), so a run ends the same way: within
    the step, with a 'cancelled' record and no partial files."""

    signum = signal.SIGTERM


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    def raise_terminated(signum: int, frame: Any) -> None:
        raise Terminated()

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_main(handler: Callable[[], int], interrupted: str = "interrupted", *, quiet: bool = False) -> int:
    """Run a command's handler with the exit codes every face of the command line gives: 0 done, 2 bad input (the
    error's own message, no traceback), 130 on Ctrl-C and 143 on SIGTERM (128 + the signal, as shells report)."""
    try:
        with terminate_as_interrupt():
            if quiet:
                from ..progress import quiet_libraries

                quiet_libraries()
            return int(handler() or 0)
    except ZRealismError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        print(interrupted, file=sys.stderr)
        return 128 + int(getattr(exc, "signum", signal.SIGINT))
