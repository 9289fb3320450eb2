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
                        help="model set: realistic-vision, tiny (offline, random weights), a model folder or a "
                             "single-file checkpoint (.safetensors)")
    parser.add_argument("--component", action="append", default=[], metavar="ROLE=PATH",
                        help="point one component at your own files: base, vae, motion_adapter or controlnet:KIND "
                             "= hub id, diffusers folder or .safetensors file (A1111 or diffusers layout; repeatable)")
    parser.add_argument("--component-config", action="append", default=[], metavar="ROLE=FOLDER",
                        help="the config of a single-file component: a diffusers folder (or hub id) of the same "
                             "architecture (default: the SD1.5 configs the package ships; repeatable)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="allow pickle checkpoints (.ckpt/.bin/.pt/.pth); only for files you trust")
    parser.add_argument("--settings", default=None, metavar="FILE",
                        help="start from these settings: a JSON file (as `zrealism import-settings --out` writes) "
                             "or a PNG with A1111 infotext; the other flags override them")
    parser.add_argument("--prompt", default=None, help=spec_help(SPECS["prompt"], "a photoreal portrait prompt"))
    parser.add_argument("--negative-prompt", default=None, help=SPECS["negative_prompt"].help)
    parser.add_argument("--profile", default=None, help=SPECS["profile"].help)
    for name, flag in (("seed", "--seed"), ("steps", "--steps"), ("strength", "--strength"), ("cfg", "--cfg"),
                       ("size", "--size"), ("colour_strength", "--colour-strength")):
        spec = SPECS[name]
        parser.add_argument(flag, type=number_type(spec), default=None, help=spec_help(spec, getattr(d, name)))
    parser.add_argument("--scheduler", default=None, help=spec_help(SPECS["scheduler"], d.scheduler))
    parser.add_argument("--colour-method", default=None, help=spec_help(SPECS["colour_method"], d.colour_method))
    parser.add_argument("--background-kind", default=None,
                        help=spec_help(SPECS["background_kind"], d.background_kind))
    parser.add_argument("--controls", default=None,
                        help="control units: 'depth,canny' or 'depth=0.8,openpose=0.7:0.0:0.9' (scale[:start:end]), "
                             "a detector method after the kind ('openpose:mediapipe=0.8'), or a control map of your "
                             "own after '@' instead of a detector ('openpose=0.8@skeleton.png', 'depth@map.png'; "
                             "clips also take a folder of one map per frame); 'none' for plain img2img "
                             "(default: the preset's units)")
    parser.add_argument("--device", default="auto", help="auto, cuda, mps or cpu (default: auto)")
    parser.add_argument("--offload", default="auto", help="auto, none, model or sequential (default: auto)")
    parser.add_argument("--dtype", default=None, choices=("float16", "bfloat16", "float32"),
                        help="weights' dtype (default: float16 on CUDA and MPS, float32 on CPU)")
    parser.add_argument("--autocast", default="off", choices=("off", "bf16", "auto"),
                        help="CPU: run the UNet and ControlNets under bf16 autocast over fp32 weights ('auto': where "
                             "the processor computes bf16 natively; default: off)")
    parser.add_argument("--preview", default="auto", choices=("auto", "taesd", "linear"),
                        help="live previews: the tiny autoencoder (TAESD) when the model set has it, or the linear "
                             "latent projection (default: auto)")
    parser.add_argument("--out", required=True, help="folder under which the run's own folder is created")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    from .adapter_flags import add_adapter_arguments

    add_adapter_arguments(parser)


# Settings whose values are compound (lists, boxes, adapters): hand-written flags parse them.
COMPOUND_SETTINGS = ("controls", "face_boxes", "loras", "embeddings")


def add_spec_flags(parser: argparse.ArgumentParser, specs: dict[str, Spec], defaults: Any) -> None:
    """A flag for every setting of the table that has none yet, so a new setting reaches the CLI without anyone
    writing its flag (run last: hand-written flags, e.g. for compound values, take precedence)."""
    taken = set(parser._option_string_actions)
    names = list(parser.get_default("spec_flags") or [])
    group = None
    for name, spec in specs.items():
        flag = "--" + name.replace("_", "-")
        if name in COMPOUND_SETTINGS or flag in taken or not hasattr(defaults, name):
            continue
        group = group or parser.add_argument_group("more settings", "every other setting of the table")
        default = getattr(defaults, name)
        if spec.kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                               help=f"{spec.help} (default: {'on' if default else 'off'})")
        elif spec.kind is str:
            group.add_argument(flag, default=None, help=spec_help(spec, default))
        else:
            group.add_argument(flag, type=number_type(spec), default=None, help=spec_help(spec, default))
        names.append(name)
    parser.set_defaults(spec_flags=tuple(names))


def spec_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given through the flags ``add_spec_flags`` made."""
    return {name: getattr(args, name) for name in getattr(args, "spec_flags", ()) or ()
            if getattr(args, name, None) is not None}


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
                 "colour_method", "colour_strength", "background_kind"):
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    changes.update(spec_changes(args))
    from .adapter_flags import adapter_changes

    changes.update(adapter_changes(args))
    if args.controls is not None:
        from ..settings import parse_controls

        changes["controls"] = tuple(parse_controls(args.controls))
    return base.replace(**changes).validated()


def base_settings(args: argparse.Namespace, cls: Any) -> Any:
    """The settings a run starts from: the defaults, or those of --settings (JSON, or a PNG's infotext)."""
    path = getattr(args, "settings", None)
    if not path:
        return cls()
    import json
    from pathlib import Path

    from ..errors import IntakeError

    file = Path(path).expanduser()
    if not file.is_file():
        raise IntakeError(f"--settings {path}: no such file (a settings JSON or a PNG with A1111 infotext)")
    if file.suffix.lower() == ".png":
        from ..infotext import read_settings, unmapped_lines

        imported = read_settings(file)
        for line in unmapped_lines(imported):
            print(f"note: {line}", file=sys.stderr)
        data = imported.settings.to_dict()
    else:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IntakeError(f"--settings {path} is not a settings JSON file: {exc}") from None
        if not isinstance(data, dict):
            raise IntakeError(f"--settings {path} holds a JSON {type(data).__name__}, not an object of settings")
        data.pop("kind", None)
    known = set(cls.__dataclass_fields__)
    return cls.from_dict({k: v for k, v in data.items() if k in known})  # a still's file may feed a clip run


def modelset_from_args(args: argparse.Namespace) -> Any:
    from ..models.modelset import resolve_modelset

    if args.preset not in ("tiny", "realistic-vision") and not os.path.exists(args.preset):
        raise SettingsError("preset", args.preset, "tiny, realistic-vision, an existing model folder or a "
                            "single-file checkpoint (.safetensors)")
    configs = dict(_role_value("component-config", item, "ROLE=FOLDER, e.g. base=./stable-diffusion-v1-5")
                   for item in getattr(args, "component_config", None) or [])
    components = dict(_role_value("component", item, "ROLE=PATH, e.g. controlnet:depth=./my-depth-controlnet")
                      for item in args.component)
    for role in configs:
        if role not in components:
            raise SettingsError("component-config", role, "the role of a --component given too: "
                                + (", ".join(components) or "none given"))
    models = resolve_modelset(args.preset)
    for role, value in components.items():
        models = models.with_component(role, value, config=configs.get(role))
    return models


def _role_value(flag: str, item: str, allowed: str) -> tuple[str, str]:
    role, sep, value = item.partition("=")
    if not sep or not role.strip() or not value.strip():
        raise SettingsError(flag, item, allowed)
    return role.strip(), value.strip()


def resolve_image_argument(value: str) -> str:
    """`sample:NAME` names a bundled sample character; anything else is a path."""
    from ..source.samples import resolve_source

    return str(resolve_source(value))


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
