"""The adapter flags of `zrealism run static|temporal`: LoRAs and embeddings take lists, so they are written here;
`--ip-adapter`, `--ip-adapter-*` and `--lora-fuse` come from the settings table like every other setting."""
from __future__ import annotations

import argparse
from typing import Any

from ..settings import LORA_WEIGHT_SPEC, SPECS


def add_adapter_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("adapters", "LoRAs, textual-inversion embeddings and IP-Adapter")
    group.add_argument("--lora", action="append", default=[], metavar="NAME[:W]",
                       help="a LoRA by name (found in $ZREALISM_LORA_DIRS and the preset's LoRA folder), path or hub "
                            f"id, with its weight ({LORA_WEIGHT_SPEC.allowed()}; default 1); repeatable. "
                            "<lora:NAME:W> in the prompt does the same")
    group.add_argument("--embedding", action="append", default=[], metavar="NAME|PATH",
                       help="a textual-inversion embedding (A1111 .safetensors); its file name is the token to put "
                            "in the prompt or negative prompt; repeatable")
    group.add_argument("--ip-scale", type=float, default=None, metavar="X",
                       help="IP-Adapter scale (same as --ip-adapter-scale): " + SPECS["ip_adapter_scale"].allowed())
    group.add_argument("--ip-image", default=None, metavar="PATH",
                       help="IP-Adapter reference image (same as --ip-adapter-image; default: the source)")


def adapter_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the adapter flags give (only those given)."""
    changes: dict[str, Any] = {}
    if getattr(args, "lora", None):
        changes["loras"] = ",".join(args.lora)
    if getattr(args, "embedding", None):
        changes["embeddings"] = tuple(args.embedding)
    if getattr(args, "ip_scale", None) is not None:
        changes["ip_adapter_scale"] = args.ip_scale
    if getattr(args, "ip_image", None) is not None:
        changes["ip_adapter_image"] = args.ip_image
    return changes
