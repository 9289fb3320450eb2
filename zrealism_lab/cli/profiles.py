"""`zrealism profiles list|show NAME`: the character profiles (the package's and those in ZREALISM_PROFILE_DIRS)."""
from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("profiles", help="list character profiles or show one",
                                   description="Character profiles: prompt, negative prompt, suggested strength and "
                                               "control scales. `--profile NAME` on `zrealism run` uses one.")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    listing = sub.add_parser("list", help="every profile: name, aliases, strength and where it was read from")
    listing.add_argument("--json", action="store_true", help="as JSON")
    listing.set_defaults(func=cmd_profiles_list)
    show = sub.add_parser("show", help="one profile's fields (by name or alias)")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="as JSON")
    show.set_defaults(func=cmd_profiles_show)


def cmd_profiles_list(args: argparse.Namespace) -> int:
    from ..profiles import ENV_VAR, load_profiles

    profiles = sorted(load_profiles().values(), key=lambda p: p.name)
    if args.json:
        print(json.dumps([{**p.to_dict(), "source": p.source} for p in profiles], indent=2))
        return 0
    for p in profiles:
        strength = f"strength {p.strength:g}" if p.strength is not None else "no strength"
        aliases = f" (aliases: {', '.join(p.aliases)})" if p.aliases else ""
        print(f"{p.name:22s} {strength:14s} {p.description or p.prompt[:60]}{aliases}")
    print(f"{len(profiles)} profiles; add your own to a folder listed in {ENV_VAR}.")
    return 0


def cmd_profiles_show(args: argparse.Namespace) -> int:
    from ..profiles import get_profile

    profile = get_profile(args.name)
    data = {**profile.to_dict(), "source": profile.source}
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v:g}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(value) or "-"
        print(f"{key:16s} {value if value not in (None, '') else '-'}")
    return 0
